package wsman

import (
	"strconv"

	"github.com/amtd-project/amtd/sim/firmware"
)

// The hardware inventory classes (spec/mps.md §6.5 GET /amt/hardwareInfo),
// shaped on the real-device fixtures, with each device's own values
// (firmware.Hardware).

func chassisRef() *EPR {
	return Ref("CIM_Chassis", "CreationClassName", "CIM_Chassis", "Tag", "CIM_Chassis")
}

func computerSystemPackageInstance(hw firmware.Hardware) *Instance {
	return NewInstance("CIM_ComputerSystemPackage").R("Antecedent", chassisRef()).R("Dependent", computerSystemRef()).
		S("PlatformGUID", hw.PlatformGUID)
}

func chassisInstance(hw firmware.Hardware) *Instance {
	p := hw.Chassis
	return NewInstance("CIM_Chassis").I("ChassisPackageType", 0).S("CreationClassName", "CIM_Chassis").S("ElementName", "Managed System Chassis").
		S("Manufacturer", p.Manufacturer).S("Model", p.Model).I("OperationalStatus", 0).I("PackageType", 3).
		S("SerialNumber", p.SerialNumber).S("Tag", "CIM_Chassis").S("Version", p.Version)
}

func cardInstance(hw firmware.Hardware) *Instance {
	p := hw.Board
	return NewInstance("CIM_Card").B("CanBeFRUed", true).S("CreationClassName", "CIM_Card").S("ElementName", "Managed System Base Board").
		S("Manufacturer", p.Manufacturer).S("Model", p.Model).I("OperationalStatus", 0).I("PackageType", 9).
		S("SerialNumber", p.SerialNumber).S("Tag", "CIM_Card").S("Version", p.Version)
}

// hardwareClass is a read-only class whose instances come from the inventory.
func hardwareClass(name string, instances func(hw firmware.Hardware) []*Instance) *Class {
	return &Class{
		Name: name,
		Instances: func(c *Call) ([]*Instance, error) {
			return instances(c.FW.Hardware()), nil
		},
	}
}

func hardwareClasses() []*Class {
	return []*Class{
		hardwareClass("CIM_ComputerSystemPackage", func(hw firmware.Hardware) []*Instance {
			return []*Instance{computerSystemPackageInstance(hw)}
		}),
		// CIM_SystemPackaging enumerates its subclass instances
		hardwareClass("CIM_SystemPackaging", func(hw firmware.Hardware) []*Instance {
			return []*Instance{computerSystemPackageInstance(hw)}
		}),
		hardwareClass("CIM_Chassis", func(hw firmware.Hardware) []*Instance { return []*Instance{chassisInstance(hw)} }),
		hardwareClass("CIM_Card", func(hw firmware.Hardware) []*Instance { return []*Instance{cardInstance(hw)} }),
		// CIM_PhysicalPackage enumerates the board and the chassis
		hardwareClass("CIM_PhysicalPackage", func(hw firmware.Hardware) []*Instance {
			return []*Instance{cardInstance(hw), chassisInstance(hw)}
		}),
		hardwareClass("CIM_BIOSElement", func(hw firmware.Hardware) []*Instance {
			b := hw.BIOS
			return []*Instance{NewInstance("CIM_BIOSElement").S("ElementName", "Primary BIOS").S("Manufacturer", b.Manufacturer).
				S("Name", "Primary BIOS").I("OperationalStatus", 0).B("PrimaryBIOS", true).D("ReleaseDate", cimDatetime(b.ReleaseDate)).
				S("SoftwareElementID", b.Version).I("SoftwareElementState", 2).I("TargetOperatingSystem", 66).S("Version", b.Version)}
		}),
		hardwareClass("CIM_Processor", func(hw firmware.Hardware) []*Instance {
			var out []*Instance
			for i, p := range hw.CPUs {
				out = append(out, NewInstance("CIM_Processor").I("CPUStatus", 1).S("CreationClassName", "CIM_Processor").
					I("CurrentClockSpeed", int64(p.CurrentSpeed)).S("DeviceID", "CPU "+strconv.Itoa(i)).S("ElementName", "Managed System CPU").
					I("EnabledState", 2).I("ExternalBusClockSpeed", int64(p.ExternalBus)).I("Family", int64(p.Family)).I("HealthState", 0).
					I("MaxClockSpeed", int64(p.MaxSpeed)).I("OperationalStatus", 0).S("OtherFamilyDescription", "").I("RequestedState", 12).
					S("Role", "Central").I("Stepping", int64(p.Stepping)).S("SystemCreationClassName", "CIM_ComputerSystem").
					S("SystemName", "ManagedSystem").I("UpgradeMethod", 52))
			}
			return out
		}),
		hardwareClass("CIM_Chip", func(hw firmware.Hardware) []*Instance {
			var out []*Instance
			for i, p := range hw.CPUs {
				out = append(out, NewInstance("CIM_Chip").B("CanBeFRUed", true).S("CreationClassName", "CIM_Chip").
					S("ElementName", "Managed System Processor Chip").S("Manufacturer", p.Manufacturer).I("OperationalStatus", 0).
					S("Tag", "CPU "+strconv.Itoa(i)).S("Version", p.Version))
			}
			return out
		}),
		hardwareClass("CIM_PhysicalMemory", func(hw firmware.Hardware) []*Instance {
			var out []*Instance
			for _, m := range hw.Memory {
				out = append(out, NewInstance("CIM_PhysicalMemory").S("BankLabel", m.Bank).S("Capacity", strconv.FormatUint(m.Capacity, 10)).
					I("ConfiguredMemoryClockSpeed", int64(m.Speed)).S("CreationClassName", "CIM_PhysicalMemory").
					S("ElementName", "Managed System Memory Chip").I("FormFactor", 13).B("IsSpeedInMhz", true).S("Manufacturer", m.Manufacturer).
					I("MaxMemorySpeed", int64(m.Speed)).I("MemoryType", 26).S("PartNumber", m.PartNumber).S("SerialNumber", m.SerialNumber).
					I("Speed", 0).S("Tag", m.Tag))
			}
			return out
		}),
		hardwareClass("CIM_MediaAccessDevice", func(hw firmware.Hardware) []*Instance {
			var out []*Instance
			for _, d := range hw.Disks {
				out = append(out, NewInstance("CIM_MediaAccessDevice").I("Capabilities", 4).S("CreationClassName", "CIM_MediaAccessDevice").
					S("DeviceID", d.DeviceID).S("ElementName", "Managed System Media Access Device").I("EnabledDefault", 2).I("EnabledState", 0).
					S("MaxMediaSize", strconv.FormatUint(d.MaxMediaSize, 10)).I("OperationalStatus", 0).I("RequestedState", 12).I("Security", 2).
					S("SystemCreationClassName", "CIM_ComputerSystem").S("SystemName", "ManagedSystem"))
			}
			return out
		}),
	}
}
