package firmware

import "time"

// SchemaVersion is the version of the persisted State layout.
const SchemaVersion = 1

// Control modes (PTHI GetControlMode, IPS_HostBasedSetupService.CurrentControlMode).
const (
	ModePre uint32 = 0
	ModeCCM uint32 = 1
	ModeACM uint32 = 2
)

// Provisioning states (PTHI GetProvisioningState, AMT_SetupAndConfigurationService).
const (
	StatePre  uint32 = 0
	StateIn   uint32 = 1
	StatePost uint32 = 2
)

// State is everything a simulated device remembers across restarts. It is
// persisted as indented JSON; field names are chosen to be read by a person.
// Handlers change it only through Firmware.Update.
type State struct {
	SchemaVersion int      `json:"schemaVersion"`
	UUID          string   `json:"uuid"` // canonical lower-case text form
	Versions      Versions `json:"versions"`
	// TLSEnforced: local WS-MAN only over TLS (AMT 19+, watchdog flag 0x40).
	TLSEnforced bool `json:"tlsEnforced"`

	ControlMode       uint32     `json:"controlMode"`       // 0 pre, 1 CCM, 2 ACM
	ProvisioningState uint32     `json:"provisioningState"` // 0 PRE, 1 IN, 2 POST
	ActivatedAt       *time.Time `json:"activatedAt,omitempty"`

	// Realm is "Digest:" + 32 upper-case hex digits, fixed per device.
	Realm string `json:"realm"`
	// Admin is the digest administrator (HA1 only, never the password).
	Admin AdminAccount `json:"admin"`
	// MEBxPasswordSHA256 is a hash of the MEBx password ("" = factory "admin").
	MEBxPasswordSHA256 string `json:"mebxPasswordSha256,omitempty"`
	Users              []User `json:"users,omitempty"`
	// PowerScheme is the InstanceID of the selected AMT power package
	// (AMT_SystemPowerScheme.SetPowerScheme); "" = the factory default.
	PowerScheme string `json:"powerScheme,omitempty"`

	// Legacy is the enterprise-mode (PKI/PSK) setup configuration.
	Legacy LegacySetup `json:"legacy"`

	Network    Network      `json:"network"`
	CertHashes []CertHash   `json:"certHashes"`
	Certs      []StoredCert `json:"certificates,omitempty"`
	Keys       []StoredKey  `json:"keys,omitempty"`

	TLS         TLSState       `json:"tls"`
	CIRA        CIRAState      `json:"cira"`
	WiFi        WiFiState      `json:"wifi"`
	IEEE8021x   IEEE8021xState `json:"ieee8021x"`
	Proxies     []Proxy        `json:"proxies,omitempty"`
	NextProxy   int            `json:"nextProxy"`
	Redirection Redirection    `json:"redirection"`
	OptIn       OptIn          `json:"optIn"`

	PowerState int `json:"powerState"` // CIM PowerState: 2 on, 8 off-soft, …
	// OSPowerSaving is IPS_PowerManagementService.OSPowerSavingState while
	// the host is on: 2 full power, 3 OS power saving (modern standby).
	OSPowerSaving      int   `json:"osPowerSavingState"`
	ClockOffsetSeconds int64 `json:"clockOffsetSeconds"`

	Boot   BootState   `json:"boot"`
	Alarms []Alarm     `json:"alarms,omitempty"`
	KVM    KVMSettings `json:"kvm"`

	AuditLog []AuditRecord `json:"auditLog,omitempty"`
	EventLog []EventRecord `json:"eventLog,omitempty"`
}

// Versions is the firmware identity reported by PTHI GetCodeVersions and
// CIM_SoftwareIdentity.
type Versions struct {
	AMT   string `json:"amt"`   // e.g. 16.1.25
	Build string `json:"build"` // e.g. 2050
	SKU   string `json:"sku"`   // decimal, e.g. 16392
	BIOS  string `json:"bios"`
}

// AdminAccount is the digest administrator set by Setup/AdminSetup/SetAdminAclEntryEx.
type AdminAccount struct {
	Username string `json:"username,omitempty"`
	HA1      string `json:"ha1,omitempty"` // hex MD5(user:realm:password); "" = not set
}

// User is an additional digest user (AMT_AuthorizationService.AddUserAclEntryEx).
type User struct {
	Handle           int    `json:"handle"`
	Username         string `json:"username"`
	HA1              string `json:"ha1"`
	AccessPermission int    `json:"accessPermission"`
	Realms           []int  `json:"realms,omitempty"`
	Enabled          bool   `json:"enabled"`
}

// Network holds AMT_GeneralSettings and the two ports.
type Network struct {
	HostName                string `json:"hostName"`
	DomainName              string `json:"domainName"`
	DHCPDomain              string `json:"dhcpDomain"`   // DHCP option 15
	PKIDNSSuffix            string `json:"pkiDnsSuffix"` // MEBx / setup.bin / SetPkiFQDNSuffix
	SharedFQDN              bool   `json:"sharedFqdn"`
	AMTNetworkEnabled       int    `json:"amtNetworkEnabled"`
	PingResponseEnabled     bool   `json:"pingResponseEnabled"`
	RmcpPingResponseEnabled bool   `json:"rmcpPingResponseEnabled"`
	DDNSUpdateEnabled       bool   `json:"ddnsUpdateEnabled"`
	DDNSUpdateByDHCPServer  bool   `json:"ddnsUpdateByDhcpServer"`
	DDNSTTL                 int    `json:"ddnsTtl"`
	DDNSPeriodicInterval    int    `json:"ddnsPeriodicUpdateInterval"`
	IdleWakeTimeout         int    `json:"idleWakeTimeout"`
	PresenceNotification    int    `json:"presenceNotificationInterval"`
	PrivacyLevel            int    `json:"privacyLevel"`
	PreferredAddressFamily  int    `json:"preferredAddressFamily"`
	HostOSFQDN              string `json:"hostOsFqdn"`
	WsmanOnlyMode           bool   `json:"wsmanOnlyMode"`

	Wired    Port  `json:"wired"`
	Wireless *Port `json:"wireless,omitempty"` // nil: no wireless adapter
}

// Port is one AMT_EthernetPortSettings instance.
type Port struct {
	MAC                          string `json:"mac"` // aa-bb-cc-dd-ee-ff
	LinkUp                       bool   `json:"linkUp"`
	DHCPEnabled                  bool   `json:"dhcpEnabled"`
	IpSyncEnabled                bool   `json:"ipSyncEnabled"`
	SharedStaticIP               bool   `json:"sharedStaticIp"`
	SharedMAC                    bool   `json:"sharedMac"`
	SharedDynamicIP              bool   `json:"sharedDynamicIp"`
	IPAddress                    string `json:"ipAddress,omitempty"`
	SubnetMask                   string `json:"subnetMask,omitempty"`
	DefaultGateway               string `json:"defaultGateway,omitempty"`
	PrimaryDNS                   string `json:"primaryDns,omitempty"`
	SecondaryDNS                 string `json:"secondaryDns,omitempty"`
	ConsoleTcpMaxRetransmissions int    `json:"consoleTcpMaxRetransmissions,omitempty"`
	LinkPreference               int    `json:"linkPreference,omitempty"`
	LinkControl                  int    `json:"linkControl,omitempty"`
	WLANLinkProtectionLevel      int    `json:"wlanLinkProtectionLevel,omitempty"`
}

// CertHash is one entry of the trusted root hash table (PTHI handles).
type CertHash struct {
	Handle    uint32 `json:"handle"`
	Name      string `json:"name"`
	Algorithm uint8  `json:"algorithm"` // 1 SHA-1, 2 SHA-256, 3 SHA-384
	Hash      string `json:"hash"`      // lower-case hex
	Default   bool   `json:"default"`
	Active    bool   `json:"active"`
}

// StoredCert is an AMT_PublicKeyCertificate.
type StoredCert struct {
	Handle      int    `json:"handle"`
	DER         []byte `json:"der"`
	TrustedRoot bool   `json:"trustedRoot"`
	ReadOnly    bool   `json:"readOnly,omitempty"`
}

// StoredKey is an AMT_PublicPrivateKeyPair; the private key never leaves the
// simulated device over WS-MAN (only DERKey, the public part).
type StoredKey struct {
	Handle     int    `json:"handle"`
	PrivatePK8 []byte `json:"privatePkcs8"`
}

// TLSSetting is one AMT_TLSSettingData instance.
type TLSSetting struct {
	Enabled                    bool     `json:"enabled"`
	AcceptNonSecureConnections bool     `json:"acceptNonSecureConnections"`
	MutualAuthentication       bool     `json:"mutualAuthentication"`
	TrustedCN                  []string `json:"trustedCn,omitempty"`
}

// TLSState holds pending (Put) and committed (CommitChanges) TLS settings.
type TLSState struct {
	Remote         TLSSetting   `json:"remote"`         // "Intel(r) AMT 802.3 TLS Settings"
	Local          TLSSetting   `json:"local"`          // "Intel(r) AMT LMS TLS Settings"
	CredentialCert int          `json:"credentialCert"` // handle in the TLS credential context, -1 none
	Committed      TLSCommitted `json:"committed"`
}

// TLSCommitted is what the device's TLS server actually uses.
type TLSCommitted struct {
	Remote TLSSetting `json:"remote"`
	Local  TLSSetting `json:"local"`
	Cert   int        `json:"cert"` // -1 none
}

// MPServer is an AMT_ManagementPresenceRemoteSAP.
type MPServer struct {
	Name       string `json:"name"`
	AccessInfo string `json:"accessInfo"`
	InfoFormat int    `json:"infoFormat"`
	Port       int    `json:"port"`
	AuthMethod int    `json:"authMethod"`
	Username   string `json:"username,omitempty"`
	// Password is what the simulated device presents to the MPS (APF USERAUTH);
	// a real device stores it too.
	Password    string `json:"password,omitempty"`
	CN          string `json:"cn,omitempty"`
	Certificate string `json:"certificate,omitempty"` // client certificate InstanceID (mutual auth)
}

// PolicyRule is an AMT_RemoteAccessPolicyRule.
type PolicyRule struct {
	Name           string `json:"name"` // "User Initiated", "Alert", "Periodic"
	Trigger        int    `json:"trigger"`
	TunnelLifeTime int    `json:"tunnelLifeTime"`
	ExtendedData   string `json:"extendedData"` // base64
}

// AppliesTo is an AMT_RemoteAccessPolicyAppliesToMPS association.
type AppliesTo struct {
	Policy        string `json:"policy"`
	MPServer      string `json:"mpServer"`
	MpsType       int    `json:"mpsType"`
	OrderOfAccess int    `json:"orderOfAccess"`
}

// CIRAState is the remote access configuration.
type CIRAState struct {
	MPServers            []MPServer   `json:"mpServers,omitempty"`
	NextMPServer         int          `json:"nextMpServer"`
	Policies             []PolicyRule `json:"policies,omitempty"`
	AppliesTo            []AppliesTo  `json:"appliesTo,omitempty"`
	DetectionStrings     []string     `json:"detectionStrings,omitempty"`
	UserInitiatedState   int          `json:"userInitiatedState"` // 32768–32771
	LastConnectionReason string       `json:"lastConnectionReason,omitempty"`
}

// WiFiProfile is a CIM_WiFiEndpointSettings.
type WiFiProfile struct {
	InstanceID           string `json:"instanceId"`
	ElementName          string `json:"elementName"`
	SSID                 string `json:"ssid"`
	Priority             int    `json:"priority"`
	AuthenticationMethod int    `json:"authenticationMethod"`
	EncryptionMethod     int    `json:"encryptionMethod"`
	BSSType              int    `json:"bssType"`
	// PSKSet records that a passphrase was given; the passphrase itself is
	// not kept (nothing on the device side reads it back).
	PSKSet           bool   `json:"pskSet,omitempty"`
	IEEE8021x        string `json:"ieee8021x,omitempty"` // InstanceID of a CIM_IEEE8021xSettings
	ClientCredential string `json:"clientCredential,omitempty"`
	CACredential     string `json:"caCredential,omitempty"`
}

// WiFiState is the wireless configuration.
type WiFiState struct {
	PortEnabledState   int           `json:"portEnabledState"`   // CIM_WiFiPort EnabledState
	PortRequestedState int           `json:"portRequestedState"` // CIM_WiFiPort RequestedState
	LocalProfileSync   int           `json:"localProfileSync"`   // 0 off, 1 …, 3 unrestricted
	UEFIProfileShare   bool          `json:"uefiProfileShare"`
	Profiles           []WiFiProfile `json:"profiles,omitempty"`
}

// Wired8021x is IPS_IEEE8021xSettings.
type Wired8021x struct {
	Enabled                  int    `json:"enabled"` // 2 enabled, 3 disabled, 6 enabled without certificates
	AvailableInS0            bool   `json:"availableInS0"`
	PxeTimeout               int    `json:"pxeTimeout"`
	AuthenticationProtocol   int    `json:"authenticationProtocol"`
	Username                 string `json:"username,omitempty"`
	PasswordSet              bool   `json:"passwordSet,omitempty"`
	Domain                   string `json:"domain,omitempty"`
	RoamingIdentity          string `json:"roamingIdentity,omitempty"`
	ServerCertificateName    string `json:"serverCertificateName,omitempty"`
	ServerCertificateCompare int    `json:"serverCertificateNameComparison,omitempty"`
	ServerCertificateIssuer  string `json:"serverCertificateIssuer,omitempty"` // certificate InstanceID
	ClientCertificate        string `json:"clientCertificate,omitempty"`       // certificate InstanceID
}

// Wireless8021x is a CIM_IEEE8021xSettings (wireless profile credentials).
type Wireless8021x struct {
	InstanceID               string `json:"instanceId"`
	ElementName              string `json:"elementName"`
	AuthenticationProtocol   int    `json:"authenticationProtocol"`
	Username                 string `json:"username,omitempty"`
	PasswordSet              bool   `json:"passwordSet,omitempty"`
	Domain                   string `json:"domain,omitempty"`
	RoamingIdentity          string `json:"roamingIdentity,omitempty"`
	ServerCertificateName    string `json:"serverCertificateName,omitempty"`
	ServerCertificateCompare int    `json:"serverCertificateNameComparison,omitempty"`
}

// IEEE8021xState holds wired and wireless 802.1x settings.
type IEEE8021xState struct {
	Wired    Wired8021x      `json:"wired"`
	Wireless []Wireless8021x `json:"wireless,omitempty"`
}

// Proxy is an IPS_HTTPProxyAccessPoint.
type Proxy struct {
	Name             string `json:"name"`
	AccessInfo       string `json:"accessInfo"`
	InfoFormat       int    `json:"infoFormat"`
	Port             int    `json:"port"`
	NetworkDnsSuffix string `json:"networkDnsSuffix"`
}

// Redirection is AMT_RedirectionService and CIM_KVMRedirectionSAP.
type Redirection struct {
	EnabledState    int  `json:"enabledState"` // 32768 none, 32769 IDER, 32770 SOL, 32771 both
	ListenerEnabled bool `json:"listenerEnabled"`
	KVMEnabled      bool `json:"kvmEnabled"`
	KVMRequested    int  `json:"kvmRequestedState"`
}

// OptIn is IPS_OptInService.
type OptIn struct {
	Required       uint32 `json:"optInRequired"` // 0 none, 1 KVM, 4294967295 all
	CodeTimeout    int    `json:"optInCodeTimeout"`
	DisplayTimeout int    `json:"optInDisplayTimeout"`
}

// AuditRecord is one AMT_AuditLog entry. AppID and EventID are AMT's
// audit application and event numbers (e.g. 17/2 "Performed Power Cycle").
type AuditRecord struct {
	Time    time.Time `json:"time"`
	AppID   int       `json:"appId"`
	EventID int       `json:"eventId"`
	// InitiatorType: 0 HTTP digest user, 1 Kerberos, 2 local, 3 KVM default port.
	InitiatorType int    `json:"initiatorType"`
	Initiator     string `json:"initiator"` // the digest user name
	NetAddress    string `json:"netAddress,omitempty"`
	// Extended is the event's extended data as AMT encodes it.
	Extended []byte `json:"extended,omitempty"`
	// Event is a description for people reading the state file.
	Event string `json:"event"`
}

// EventRecord is one AMT_MessageLog (event log) entry: a platform event
// (PET) record.
type EventRecord struct {
	Time           time.Time `json:"time"`
	DeviceAddress  int       `json:"deviceAddress"`
	Sensor         int       `json:"sensorType"`
	EventType      int       `json:"eventType"`
	Offset         int       `json:"eventOffset"`
	SourceType     int       `json:"eventSourceType"`
	Severity       int       `json:"severity"`
	SensorNumber   int       `json:"sensorNumber"`
	Entity         int       `json:"entity"`
	EntityInstance int       `json:"entityInstance"`
	Data           [8]byte   `json:"eventData"`
	Description    string    `json:"description"`
}

// BootState is AMT_BootSettingData, the boot order of CIM_BootConfigSetting
// and CIM_BootService.
type BootState struct {
	Settings BootSettings `json:"settings"`
	// Source is the CIM_BootSourceSetting InstanceID placed first in the
	// boot order by ChangeBootOrder ("" = no forced source).
	Source string `json:"source,omitempty"`
	// ConfigRole is what SetBootConfigRole set: 1 IsNext (the settings apply
	// at the next boot), 32768 not next.
	ConfigRole int `json:"configRole"`
	// ServiceState is CIM_BootService.EnabledState (OCR: 32768 disabled,
	// 32769 enabled, 32770 …, 32771 …; 2 on firmware without OCR).
	ServiceState int `json:"serviceState"`
	// Last is the most recent simulated boot.
	Last *BootRecord `json:"lastBoot,omitempty"`
}

// BootSettings are the writable AMT_BootSettingData properties.
type BootSettings struct {
	BIOSPause               bool   `json:"biosPause"`
	BIOSSetup               bool   `json:"biosSetup"`
	BootMediaIndex          int    `json:"bootMediaIndex"`
	ConfigurationDataReset  bool   `json:"configurationDataReset"`
	EnforceSecureBoot       bool   `json:"enforceSecureBoot"`
	FirmwareVerbosity       int    `json:"firmwareVerbosity"`
	ForcedProgressEvents    bool   `json:"forcedProgressEvents"`
	IDERBootDevice          int    `json:"iderBootDevice"`
	LockKeyboard            bool   `json:"lockKeyboard"`
	LockPowerButton         bool   `json:"lockPowerButton"`
	LockResetButton         bool   `json:"lockResetButton"`
	LockSleepButton         bool   `json:"lockSleepButton"`
	PlatformErase           bool   `json:"platformErase"`
	ReflashBIOS             bool   `json:"reflashBios"`
	SecureErase             bool   `json:"secureErase"`
	UefiBootNumberOfParams  int    `json:"uefiBootNumberOfParams"`
	UefiBootParametersArray string `json:"uefiBootParametersArray,omitempty"` // base64 TLV
	UseIDER                 bool   `json:"useIder"`
	UseSOL                  bool   `json:"useSol"`
	UseSafeMode             bool   `json:"useSafeMode"`
	UserPasswordBypass      bool   `json:"userPasswordBypass"`
	// OptionsCleared: the BIOS consumed (cleared) the options at the last boot.
	OptionsCleared bool `json:"optionsCleared"`
}

// BootRecord describes one simulated boot of the host.
type BootRecord struct {
	Time     time.Time    `json:"time"`
	Action   int          `json:"action"`           // the CIM power state requested
	Source   string       `json:"source,omitempty"` // forced boot source, "" = normal boot
	Settings BootSettings `json:"settings"`         // the settings the BIOS used
}

// Alarm is an IPS_AlarmClockOccurrence: the host is woken at StartTime
// (and every IntervalMinutes after it, when set).
type Alarm struct {
	InstanceID         string    `json:"instanceId"`
	ElementName        string    `json:"elementName"`
	StartTime          time.Time `json:"startTime"`
	IntervalMinutes    int       `json:"intervalMinutes"`
	DeleteOnCompletion bool      `json:"deleteOnCompletion"`
	// Fired marks a one-time alarm that went off and was kept.
	Fired bool `json:"fired,omitempty"`
}

// KVMSettings is IPS_KVMRedirectionSettingData.
type KVMSettings struct {
	DefaultScreen      int  `json:"defaultScreen"`
	Is5900PortEnabled  bool `json:"is5900PortEnabled"`
	OptInPolicyTimeout int  `json:"optInPolicyTimeout"`
	SessionTimeout     int  `json:"sessionTimeout"` // minutes
	BackToBackFbMode   bool `json:"backToBackFbMode"`
	// RFBPasswordSet records that an RFB (port 5900) password was given; the
	// password itself is not kept.
	RFBPasswordSet bool `json:"rfbPasswordSet,omitempty"`
}
