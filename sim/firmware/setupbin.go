package firmware

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"

	"github.com/amtd-project/amtd/internal/legacy/setupbin"
)

// ErrNoSetupRecord: the setup.bin has no unused record to apply.
var ErrNoSetupRecord = errors.New("firmware: setup.bin has no unused record")

// SetupBinRefusal is a record the MEBx refuses (legacy.md §11.4); the
// device and the file are unchanged.
type SetupBinRefusal struct {
	Record int // index of the record (0-based)
	Reason string
}

func (e *SetupBinRefusal) Error() string {
	return fmt.Sprintf("setup.bin record %d refused: %s", e.Record+1, e.Reason)
}

// SetupBinResult reports what ApplySetupBin did.
type SetupBinResult struct {
	// Record is the index of the record applied (0-based), Number its
	// RecordNumber.
	Record int
	Number uint32
	// Consumed: the record was marked used in the file (false for files
	// whose FileFlags say records are not consumed).
	Consumed bool
	// Applied and Ignored list the variables ("2.3 PKI DNS suffix"), values
	// never shown; Ignored ones have no effect on the simulated device.
	Applied, Ignored []string
	// Warnings say what the MEBx skipped (e.g. too many user hashes).
	Warnings []string
	// Started: configuration started (2.28 = 1): the device is in setup and
	// sends hellos.
	Started bool
}

// ApplySetupBin applies the setup.bin at path as the BIOS and the MEBx do
// with a USB key (legacy.md §11): the first unused record (the one at
// DataRecordsConsumed) is checked and applied with the current-MEBx-password
// rules, then marked used in the file (valid bit cleared, body zeroed,
// DataRecordsConsumed incremented, unless the file keeps its records),
// rewritten atomically. A refused record (*SetupBinRefusal) changes
// neither the device nor the file; ErrNoSetupRecord when every record is
// used. The file is locked while it is read and rewritten, so devices (and
// processes) sharing a file take successive records.
//
// Decisions where the MEBx's behaviour is not public: the whole record is
// checked before anything is applied (a bad value refuses the record); a
// new MEBx password (1.2) that breaks AMT's password rules refuses the
// record, one longer than 32 characters is ignored; when the current
// password is the factory default, version 2+ files must carry a new one;
// PID/PPS (2.1/2.2) refuse the record on firmware from 11.0 on (no PSK
// there); the configuration starts (2.28 = 1) only from pre-provisioning.
// The file is written before the device state: a crash in between loses
// the record rather than giving it to two devices.
func (f *Firmware) ApplySetupBin(ctx context.Context, path string) (*SetupBinResult, error) {
	unlock, err := lockSetupFile(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("firmware: setup.bin: %w", err)
	}
	defer unlock()
	img, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("firmware: setup.bin: %w", err)
	}
	file, err := setupbin.Decode(img)
	if err != nil {
		return nil, fmt.Errorf("firmware: setup.bin %s: %w", path, err)
	}
	idx, ok := file.Next()
	if !ok {
		return nil, fmt.Errorf("%w (%s: %d records, %d consumed)", ErrNoSetupRecord, path, len(file.Records), file.RecordsConsumed)
	}
	rec := &file.Records[idx]

	f.mu.Lock()
	next, res, refusal := f.planSetupRecord(file, rec)
	if refusal != "" {
		f.recordLegacyLocked(LegacySetupBinRefused, fmt.Sprintf("record %d of %s: %s", idx+1, filepath.Base(path), refusal))
		f.mu.Unlock()
		f.emit(EventLegacyLog)
		return nil, &SetupBinRefusal{Record: idx, Reason: refusal}
	}
	res.Record, res.Number = idx, rec.Number
	changed, err := setupbin.MarkUsed(img, idx)
	if err == nil && changed {
		err = writeFileAtomic(path, img)
	}
	if err != nil {
		f.mu.Unlock()
		return nil, fmt.Errorf("firmware: setup.bin: marking record %d used: %w", idx+1, err)
	}
	res.Consumed = changed
	wasIn, wasMode := f.st.ProvisioningState, f.legacyModeLocked()
	err = f.updateLocked(func(s *State) error { *s = *next; return nil })
	if err == nil {
		if res.Started {
			f.openWindowLocked()
		}
		detail := fmt.Sprintf("record %d of %s applied (%d variables", idx+1, filepath.Base(path), len(res.Applied))
		if len(res.Ignored) > 0 {
			detail += fmt.Sprintf(", %d without effect", len(res.Ignored))
		}
		detail += ")"
		if res.Started {
			detail += "; configuration started (" + f.legacyModeLocked().String() + ")"
		}
		f.recordLegacyLocked(LegacySetupBinApplied, detail)
		for _, w := range res.Warnings {
			f.recordLegacyLocked(LegacySetupCommand, "setup.bin: "+w)
		}
	}
	nowIn, nowMode := f.st.ProvisioningState, f.legacyModeLocked()
	f.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("firmware: setup.bin: the record was consumed but the device state was not saved: %w", err)
	}
	if wasIn != nowIn {
		f.emit(EventProvisioningChanged)
	}
	if wasMode != nowMode || res.Started {
		f.emit(EventLegacySetupChanged)
	}
	f.emit(EventLegacyLog)
	return res, nil
}

// SetupBinAvailable reports how many devices the setup.bin at path can
// still set up: the records not consumed yet, or unlimited (-1) when the
// file keeps its records.
func SetupBinAvailable(path string) (int, error) {
	img, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("firmware: setup.bin: %w", err)
	}
	file, err := setupbin.Decode(img)
	if err != nil {
		return 0, fmt.Errorf("firmware: setup.bin %s: %w", path, err)
	}
	if _, ok := file.Next(); ok && file.DoNotConsume() {
		return -1, nil
	}
	n := 0
	for _, r := range file.Records[file.RecordsConsumed:] {
		if !r.Used {
			n++
		}
	}
	return n, nil
}

// planSetupRecord checks a record against the device and returns the state
// after applying it, or the reason the MEBx refuses it. Called with f.mu held.
func (f *Firmware) planSetupRecord(file *setupbin.File, rec *setupbin.Record) (*State, *SetupBinResult, string) {
	res := &SetupBinResult{}
	if rec.Type != setupbin.RecordTypeData {
		return nil, nil, fmt.Sprintf("record type %d is not a data record", rec.Type)
	}
	// work on a copy: nothing changes unless the whole record is accepted
	data, err := json.Marshal(&f.st)
	if err != nil {
		return nil, nil, "internal error: " + err.Error()
	}
	s := new(State)
	if err := json.Unmarshal(data, s); err != nil {
		return nil, nil, "internal error: " + err.Error()
	}
	name := func(v setupbin.Var) string {
		if info, ok := setupbin.Lookup(v.ID); ok {
			return v.ID.String() + " " + info.Name
		}
		return v.ID.String() + " (unknown)"
	}
	u8 := func(v setupbin.Var) uint32 { n, _ := v.Uint(); return n }

	for _, v := range rec.Vars {
		if err := setupbin.CheckVar(v); err != nil {
			return nil, nil, err.Error()
		}
	}
	cur, ok := rec.Get(setupbin.CurrentMEBxPassword)
	if !ok {
		return nil, nil, "1.1 (current MEBx password) is missing"
	}
	if !mebxMatches(s, cur.Text()) {
		return nil, nil, "the current MEBx password (1.1) does not match the device's"
	}
	if v, ok := rec.Get(setupbin.ManualSetup); ok && u8(v) == 1 {
		return nil, nil, "2.29 manual setup and configuration = 1: the MEBx refuses the record"
	}
	if v, ok := rec.Get(setupbin.ManageabilitySelection); ok && u8(v) != 1 {
		return nil, nil, fmt.Sprintf("1.3 manageability feature selection = %d, must be 1 (Intel AMT)", u8(v))
	}
	newPW := ""
	if v, ok := rec.Get(setupbin.NewMEBxPassword); ok {
		switch {
		case len(v.Value) > 32:
			res.Warnings = append(res.Warnings, "1.2 new MEBx password longer than 32 characters ignored")
		case !StrongPassword(v.Text()):
			return nil, nil, "the new MEBx password (1.2) does not follow AMT's password rules (8-32 characters, upper and lower case, digit, symbol)"
		default:
			newPW = v.Text()
		}
	}
	if s.MEBxPasswordSHA256 == "" && newPW == "" && file.Version >= 2 {
		return nil, nil, "the current MEBx password is the factory default: the record must set a new one (1.2)"
	}
	pid, hasPID := rec.Get(setupbin.PID)
	pps, hasPPS := rec.Get(setupbin.PPS)
	if hasPID != hasPPS {
		return nil, nil, "2.1 (PID) and 2.2 (PPS) must come together"
	}
	if hasPID && !f.pskCapableLocked() {
		return nil, nil, fmt.Sprintf("PID/PPS (2.1/2.2): AMT %s has no PSK (removed in %d.0)", s.Versions.AMT, PSKRemovedIn)
	}
	var dhcp uint32
	var static []byte
	var hashes []setupbin.Var
	start := -1
	for _, v := range rec.Vars {
		applied := true
		switch v.ID {
		case setupbin.CurrentMEBxPassword, setupbin.NewMEBxPassword, setupbin.ManageabilitySelection:
		case setupbin.PID:
			s.Legacy.PID = pid.Text()
		case setupbin.PPS:
			s.Legacy.PPS = pps.Text()
		case setupbin.PKIDNSSuffix:
			if len(v.Value) > maxPKISuffixLength {
				return nil, nil, fmt.Sprintf("2.3 PKI DNS suffix of %d characters; the firmware holds at most %d", len(v.Value), maxPKISuffixLength)
			}
			s.Network.PKIDNSSuffix = v.Text()
		case setupbin.ConfigServerFQDN:
			s.Legacy.ServerFQDN = v.Text()
		case setupbin.ProvisioningServerAddr:
			a, _ := v.ServerAddress()
			s.Legacy.ServerAddress = a.Unmap().String()
		case setupbin.ProvisioningServerPort:
			s.Legacy.ServerPort = int(u8(v))
		case setupbin.RemoteConfigEnabled:
			if s.Network.PrivacyLevel == 2 { // "extreme"
				applied = false
				res.Warnings = append(res.Warnings, "2.5 remote configuration ignored: privacy level is extreme")
				break
			}
			s.Legacy.RemoteConfigDisabled = u8(v) == 0
		case setupbin.PreInstalledCertsEnabled:
			for i := range s.CertHashes {
				if s.CertHashes[i].Default {
					s.CertHashes[i].Active = u8(v) == 1
				}
			}
		case setupbin.UserDefinedCertConfig:
			switch u8(v) {
			case 0, 1:
				for i := range s.CertHashes {
					if !s.CertHashes[i].Default {
						s.CertHashes[i].Active = u8(v) == 1
					}
				}
			case 2:
				s.CertHashes = slices.DeleteFunc(s.CertHashes, func(h CertHash) bool { return !h.Default })
			default:
				return nil, nil, fmt.Sprintf("2.7 user-defined certificate configuration = %d (0, 1 or 2)", u8(v))
			}
		case setupbin.UserDefinedCertAdd:
			hashes = append(hashes, v) // added together below
		case setupbin.Redirection:
			n := u8(v)
			if n&4 != 0 {
				res.Warnings = append(res.Warnings, "2.10 bit 2 (user/password authentication) is deprecated")
			}
			s.Redirection.EnabledState = 32768 + int(n&2>>1) + 2*int(n&1) // 32769 IDE-R, 32770 SOL, 32771 both
			s.Redirection.ListenerEnabled = n&3 != 0
		case setupbin.Hostname:
			s.Network.HostName = v.Text()
		case setupbin.DomainName:
			s.Network.DomainName = v.Text()
		case setupbin.DHCP:
			dhcp = u8(v)
			if dhcp != 1 && dhcp != 2 {
				return nil, nil, fmt.Sprintf("2.13 DHCP = %d (1 static, 2 DHCP)", dhcp)
			}
		case setupbin.StaticIPv4:
			static = v.Value
		case setupbin.SharedFQDN:
			s.Network.SharedFQDN = u8(v) == 1
		case setupbin.DynamicDNSUpdate:
			s.Network.DDNSUpdateEnabled = u8(v) == 1
		case setupbin.KVMState:
			s.Redirection.KVMEnabled = u8(v) == 1
		case setupbin.UserConsent:
			switch u8(v) {
			case 0:
				s.OptIn.Required = 0
			case 1:
				s.OptIn.Required = 1
			case 0xFF:
				s.OptIn.Required = 4294967295
			default:
				return nil, nil, fmt.Sprintf("2.26 user consent = %d (0, 1 or 255)", u8(v))
			}
		case setupbin.MEBxPasswordPolicy:
			p := int(u8(v))
			s.Legacy.MEBxPasswordPolicy = &p
		case setupbin.ProvisionHaltActive:
			start = int(u8(v))
		default:
			applied = false
		}
		if applied {
			res.Applied = append(res.Applied, name(v))
		} else {
			res.Ignored = append(res.Ignored, name(v))
		}
	}
	if dhcp == 1 {
		if len(static) != 20 {
			return nil, nil, "2.13 DHCP = 1 (static) needs 2.19 static IPv4 parameters"
		}
		ip := func(i int) string {
			var b [4]byte
			binary.BigEndian.PutUint32(b[:], binary.LittleEndian.Uint32(static[4*i:])) // byte-reversed as 2.17 (unverified for 2.19)
			return netip.AddrFrom4(b).String()
		}
		w := &s.Network.Wired
		w.DHCPEnabled = false
		w.IPAddress, w.SubnetMask, w.DefaultGateway, w.PrimaryDNS, w.SecondaryDNS = ip(0), ip(1), ip(2), ip(3), ip(4)
	} else if dhcp == 2 {
		s.Network.Wired.DHCPEnabled = true
	}
	skipStart := false
	if len(hashes) > 0 {
		users := 0
		for _, h := range s.CertHashes {
			if !h.Default {
				users++
			}
		}
		if users+len(hashes) > MaxUserHashes {
			skipStart = true
			res.Warnings = append(res.Warnings, fmt.Sprintf("2.8: %d user-defined hashes plus %d new exceed %d: none added and the start of configuration (2.28) skipped", users, len(hashes), MaxUserHashes))
		} else {
			for _, v := range hashes {
				alg, h, hn, _ := v.CertHash()
				if _, err := addUserHash(s, alg, h, hn); errors.Is(err, errHashDuplicate) {
					res.Warnings = append(res.Warnings, fmt.Sprintf("2.8: hash %x is already in the table", h))
				}
			}
		}
	}
	switch {
	case start == 1 && skipStart:
	case start == 1 && s.ProvisioningState != StatePre:
		res.Warnings = append(res.Warnings, "2.28 = 1: configuration not started, the device is not in pre-provisioning")
	case start == 1:
		pskOK := s.Legacy.PID != "" && s.Legacy.PPS != "" && f.pskCapableLocked()
		if !pskOK && s.Legacy.RemoteConfigDisabled {
			res.Warnings = append(res.Warnings, "2.28 = 1: configuration not started, neither PKI remote configuration nor PID/PPS is set")
			break
		}
		s.ProvisioningState = StateIn
		s.Legacy.Started = true
		res.Started = true
	case start == 0 && s.ProvisioningState == StateIn && s.Legacy.Started:
		// stop configuration: back to pre-provisioning (the MEBx waits for it)
		s.ProvisioningState = StatePre
		s.Legacy.Started = false
		s.Admin = AdminAccount{}
	}
	if newPW != "" { // applied last
		s.MEBxPasswordSHA256 = hashPassword(newPW)
	}
	return s, res, ""
}

func mebxMatches(s *State, pw string) bool {
	if s.MEBxPasswordSHA256 == "" {
		return pw == "admin"
	}
	return s.MEBxPasswordSHA256 == hashPassword(pw)
}

// writeFileAtomic replaces path with data: temporary file in the same
// folder, fsync, rename, fsync of the folder. The file keeps its mode.
func writeFileAtomic(path string, data []byte) error {
	mode := os.FileMode(0o600)
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".setupbin-*.tmp")
	if err != nil {
		return err
	}
	name := tmp.Name()
	err = tmp.Chmod(mode)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(name, path)
	}
	if err != nil {
		os.Remove(name)
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
