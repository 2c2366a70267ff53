package fleet

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/amtd-project/amtd/internal/legacy/setupbin"
	"github.com/amtd-project/amtd/sim/firmware"
	"github.com/amtd-project/amtd/sim/hello"
)

// Setup modes of Options.SetupMode.
const (
	SetupPKI = "pki"
	SetupPSK = "psk"
)

// PSKPairsName is the file (in the fleet folder) listing the PID/PPS pairs
// of devices in PSK setup, one "PID,PPS" line each — the list an OEM hands
// to its customer, in the format `amtd psk import` reads.
const PSKPairsName = "psk-pairs.csv"

// Hellos is the fleet's hello scheduler.
func (f *Fleet) Hellos() *hello.Scheduler { return f.hellos }

// legacySetup prepares the devices still in pre-provisioning for legacy
// remote configuration, in index order: from the setup.bin, or as the MEBx
// would for SetupMode. Devices already in setup or provisioned keep their
// state (a restart with the same options consumes nothing).
func (f *Fleet) legacySetup(ctx context.Context) error {
	o := f.opts
	if o.SetupBin == "" && o.SetupMode == "" {
		return nil
	}
	var fresh []*Device
	for _, d := range f.devices {
		if d.Firmware.ProvisioningState() == firmware.StatePre && d.Firmware.ControlMode() == firmware.ModePre {
			fresh = append(fresh, d)
		} else {
			f.log.Info("legacy setup: device already set up or provisioned; left as is", "index", d.Index, "uuid", d.UUID)
		}
	}
	switch {
	case o.SetupBin != "":
		avail, err := firmware.SetupBinAvailable(o.SetupBin)
		if err != nil {
			return fmt.Errorf("fleet: %w", err)
		}
		if avail >= 0 && avail < len(fresh) {
			return fmt.Errorf("fleet: %s has %d unused record(s) for %d device(s) to set up; nothing applied", o.SetupBin, avail, len(fresh))
		}
		for _, d := range fresh {
			res, err := d.Firmware.ApplySetupBin(ctx, o.SetupBin)
			if err != nil {
				return fmt.Errorf("fleet: device %d (%s): %w", d.Index, d.UUID, err)
			}
			f.log.Info("setup.bin applied", "index", d.Index, "uuid", d.UUID, "record", res.Record+1, "consumed", res.Consumed,
				"started", res.Started, "warnings", strings.Join(res.Warnings, "; "))
		}
	case o.SetupMode == SetupPKI:
		for _, d := range fresh {
			if st := d.Firmware.SetZeroTouchEnabled(true); st != 0 {
				return fmt.Errorf("fleet: device %d: SetZeroTouchEnabled: status %d", d.Index, st)
			}
			if st := d.Firmware.StartConfigurationEx(false); st != 0 {
				return fmt.Errorf("fleet: device %d: StartConfigurationEx: status %d", d.Index, st)
			}
		}
	case o.SetupMode == SetupPSK:
		for _, d := range fresh {
			var pid string
			d.Firmware.View(func(s *firmware.State) { pid = s.Legacy.PID })
			if pid == "" {
				pid, pps, err := setupbin.GeneratePIDPPS(rand.Reader)
				if err != nil {
					return err
				}
				switch st := d.Firmware.SetPIDPPS(pid, pps); st {
				case 0:
				case firmware.PTUnsupported:
					return fmt.Errorf("fleet: device %d runs AMT %s, which has no PSK (removed in %d.0): choose an older version (e.g. 10.0.55)",
						d.Index, d.Firmware.Snapshot().Versions.AMT, firmware.PSKRemovedIn)
				default:
					return fmt.Errorf("fleet: device %d: PID/PPS: status %d", d.Index, st)
				}
			}
			if st := d.Firmware.StartConfigurationEx(false); st != 0 {
				return fmt.Errorf("fleet: device %d: StartConfigurationEx: status %d", d.Index, st)
			}
		}
	}
	return f.writePSKPairs()
}

// writePSKPairs lists the PID/PPS of every device that has one.
func (f *Fleet) writePSKPairs() error {
	var b strings.Builder
	for _, d := range f.devices {
		d.Firmware.View(func(s *firmware.State) {
			if s.Legacy.PID != "" && s.Legacy.PPS != "" {
				b.WriteString(s.Legacy.PID + "," + s.Legacy.PPS + "\n")
			}
		})
	}
	path := filepath.Join(f.dir, PSKPairsName)
	if b.Len() == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("fleet: %w", err)
		}
		return nil
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	return nil
}
