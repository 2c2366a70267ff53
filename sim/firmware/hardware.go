package firmware

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Hardware is the platform inventory the firmware reports (the hardware
// inventory classes: CIM_Chassis, CIM_Card, CIM_BIOSElement, CIM_Processor,
// CIM_Chip, CIM_PhysicalMemory, CIM_MediaAccessDevice, …) and the screens of
// IPS_ScreenSettingData. It is derived from the device's UUID, so every
// simulated device has its own plausible, stable values.
type Hardware struct {
	PlatformGUID string // SMBIOS UUID bytes, upper-case hex (CIM_ComputerSystemPackage)
	Chassis      Package
	Board        Package
	BIOS         BIOS
	CPUs         []CPU
	Memory       []DIMM
	Disks        []Disk
	Displays     []Display
}

// Package is a chassis or a board.
type Package struct {
	Manufacturer, Model, SerialNumber, Version string
}

// BIOS is the primary BIOS.
type BIOS struct {
	Manufacturer, Version string
	ReleaseDate           time.Time
}

// CPU is one processor.
type CPU struct {
	Manufacturer string
	Version      string // brand string, e.g. "Intel(R) Core(TM) i7-9850H CPU @ 2.60GHz"
	Family       int    // CIM family code (198 Core i7, 205 Core i5, …)
	MaxSpeed     int    // MHz
	CurrentSpeed int    // MHz
	ExternalBus  int    // MHz
	Stepping     int
}

// DIMM is one memory module.
type DIMM struct {
	Bank         string
	Capacity     uint64 // bytes
	Speed        int    // MHz
	Manufacturer string // JEDEC id as AMT shows it, e.g. 859B
	PartNumber   string
	SerialNumber string
	Tag          string
}

// Disk is one media access device.
type Disk struct {
	DeviceID     string
	MaxMediaSize uint64 // kilobytes
}

// Display is one screen the KVM can show.
type Display struct {
	X, Y, Width, Height int
}

type platformModel struct {
	vendor, model, boardVendor, board, biosVendor string
	cpu                                           string
	family, baseMHz, maxMHz                       int
}

var platformModels = []platformModel{
	{"Intel(R) Client Systems", "NUC9V7QNX", "Intel Corporation", "NUC9V7QNB", "Intel Corp.", "Intel(R) Core(TM) i7-9850H CPU @ 2.60GHz", 198, 2600, 4600},
	{"Dell Inc.", "OptiPlex 7090", "Dell Inc.", "0K0D5K", "Dell Inc.", "11th Gen Intel(R) Core(TM) i7-11700 @ 2.50GHz", 198, 2500, 4900},
	{"LENOVO", "11T3S0AG00", "LENOVO", "3346", "LENOVO", "12th Gen Intel(R) Core(TM) i5-12500T", 205, 2000, 4400},
	{"HP", "HP EliteDesk 800 G6 Desktop Mini PC", "HP", "8757", "HP", "Intel(R) Core(TM) i7-10700T CPU @ 2.00GHz", 198, 2000, 4500},
	{"Intel(R) Client Systems", "NUC13ANHv7", "Intel Corporation", "NUC13ANBv7", "Intel Corp.", "13th Gen Intel(R) Core(TM) i7-1370P", 198, 1900, 5200},
}

var memoryParts = []struct{ maker, part string }{
	{"859B", "CT16G4SFD824A.M16FE "},
	{"80CE", "M471A2K43DB1-CWE    "},
	{"80AD", "HMAA2GS6CJR8N-XN    "},
	{"0198", "KF432S20IB/16       "},
}

// Hardware returns the device's inventory.
func (f *Firmware) Hardware() Hardware {
	f.mu.Lock()
	uuid, biosVersion := f.st.UUID, f.st.Versions.BIOS
	f.mu.Unlock()
	return hardwareFor(uuid, biosVersion)
}

// hardwareFor derives the inventory from the UUID (deterministic).
func hardwareFor(uuid, biosVersion string) Hardware {
	seed := sha256.Sum256([]byte("amtd-sim-hardware:" + uuid))
	pick := func(i, n int) int { return int(seed[i]) % n }
	serial := func(i, n int) string { return strings.ToUpper(hex.EncodeToString(seed[i : i+n])) }
	m := platformModels[pick(0, len(platformModels))]
	var hw Hardware
	if raw, err := ParseUUID(uuid); err == nil {
		hw.PlatformGUID = strings.ToUpper(hex.EncodeToString(raw[:]))
	}
	hw.Chassis = Package{Manufacturer: m.vendor, Model: m.model, SerialNumber: serial(1, 6), Version: fmt.Sprintf("K%05d-%03d", binary.BigEndian.Uint16(seed[7:9]), 400+pick(9, 10))}
	hw.Board = Package{Manufacturer: m.boardVendor, Model: m.board, SerialNumber: serial(10, 6), Version: fmt.Sprintf("K%05d-%03d", binary.BigEndian.Uint16(seed[16:18]), 400+pick(18, 10))}
	hw.BIOS = BIOS{Manufacturer: m.biosVendor, Version: biosVersion,
		ReleaseDate: time.Date(2020+pick(19, 5), time.Month(1+pick(20, 12)), 1+pick(21, 28), 0, 0, 0, 0, time.UTC)}
	hw.CPUs = []CPU{{Manufacturer: "Intel(R) Corporation", Version: m.cpu, Family: m.family, MaxSpeed: m.maxMHz,
		CurrentSpeed: m.baseMHz, ExternalBus: 100, Stepping: 1 + pick(22, 13)}}
	dimms := 1 + pick(23, 2)
	size := uint64(8<<30) << pick(24, 3) // 8, 16 or 32 GiB
	part := memoryParts[pick(25, len(memoryParts))]
	speed := []int{2400, 2666, 3200}[pick(26, 3)]
	for i := range dimms {
		tag := "9876543210"
		if i > 0 {
			tag += fmt.Sprintf(" (#%d)", i)
		}
		hw.Memory = append(hw.Memory, DIMM{Bank: fmt.Sprintf("BANK %d", 2*i), Capacity: size, Speed: speed, Manufacturer: part.maker,
			PartNumber: part.part, SerialNumber: serial(27+i, 4), Tag: tag})
	}
	disks := 1 + pick(31, 2)
	for i := range disks {
		kb := []uint64{250059350, 500107862, 960197124, 1953514584}[pick(2+i, 4)]
		hw.Disks = append(hw.Disks, Disk{DeviceID: fmt.Sprintf("MEDIA DEV %d", i), MaxMediaSize: kb})
	}
	screens := 1 + pick(3, 2)
	for i := range screens {
		hw.Displays = append(hw.Displays, Display{X: 1920 * i, Y: 0, Width: 1920, Height: 1080})
	}
	return hw
}
