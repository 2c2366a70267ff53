package wsman

// allClasses is the table of implemented classes. Adding a class means
// writing its *Class constructor and listing it here.
func allClasses() []*Class {
	return append([]*Class{
		// provisioning
		generalSettings(),
		hostBasedSetup(),
		setupAndConfiguration(),
		authorization(),
		softwareIdentity(),
		bootCapabilities(),
		timeSynchronization(),
		// network
		ethernetPortSettings(),
		wifiPortConfiguration(),
		wifiEndpointSettings(),
		wifiPort(),
		wifiEndpoint(),
		ips8021xSettings(),
		cim8021xSettings(),
		httpProxyService(),
		httpProxyAccessPoint(),
		// certificates and TLS
		publicKeyManagement(),
		publicKeyCertificate(),
		publicPrivateKeyPair(),
		tlsSettingData(),
		tlsCredentialContext(),
		tlsProtocolEndpointCollection(),
		concreteDependency(),
		credentialContext(),
		// CIRA
		remoteAccessService(),
		managementPresenceRemoteSAP(),
		remoteAccessPolicyRule(),
		remoteAccessPolicyAppliesToMPS(),
		remoteAccessCapabilities(),
		userInitiatedConnection(),
		environmentDetection(),
		// redirection and user consent
		redirectionService(),
		kvmRedirectionSAP(),
		optInService(),
		kvmRedirectionSettingData(),
		screenSettingData(),
		// power
		ipsPowerManagementService(),
		systemPowerScheme(),
		cimPowerManagementService(),
		associatedPowerManagementService(),
		serviceAvailableToElement(),
		powerManagementCapabilities(),
		// boot
		bootSettingData(),
		bootConfigSetting(),
		bootService(),
		bootSourceSetting(),
		// logs and alarms
		auditLog(),
		messageLog(),
		alarmClockService(),
		alarmClockOccurrence(),
	}, hardwareClasses()...)
}
