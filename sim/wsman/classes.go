package wsman

// allClasses is the table of implemented classes. Adding a class means
// writing its *Class constructor and listing it here.
func allClasses() []*Class {
	return []*Class{
		// provisioning
		generalSettings(),
		hostBasedSetup(),
		setupAndConfiguration(),
		authorization(),
		softwareIdentity(),
		bootCapabilities(),
		timeSynchronization(),
	}
}
