package server_test

import (
	"strings"
	"testing"

	"github.com/amtd-project/amtd/internal/devcreds"
	"github.com/amtd-project/amtd/internal/legacy/legacytest"
	"github.com/amtd-project/amtd/internal/legacy/psk"
	"github.com/amtd-project/amtd/internal/legacy/server"
	"github.com/amtd-project/amtd/internal/store"
	"github.com/amtd-project/amtd/internal/tlspsk"
	"github.com/amtd-project/amtd/sim/digest"
	"github.com/amtd-project/amtd/sim/firmware"
)

func TestPSKRemoteConfiguration(t *testing.T) {
	w := newPKIWorld(t)
	ctx := t.Context()
	k := &psk.Keeper{Store: w.st, Secrets: w.sec}
	rows, err := k.Generate(ctx, "", 2)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := k.Lookup(ctx, rows[0].PID)
	if err != nil {
		t.Fatal(err)
	}
	devCfg, err := tlspsk.PIDPPSConfig(pair.PID, pair.PPS)
	if err != nil {
		t.Fatal(err)
	}
	fw := legacytest.NewFirmware(t, legacytest.FirmwareOptions{UUID: uuidB, Version: "10.0.55"})
	dev := legacytest.NewSetupDevice(t, fw, legacytest.DeviceOptions{PSK: devCfg, AnySetupPassword: true})
	w.allow(t, store.LegacyDevice{GUID: uuidB, Hostname: "pc-psk", DNSSuffix: "corp.example.com", ProfileName: "acm"},
		store.LegacyDevice{GUID: uuidA, ProfileName: "acm"})
	e := newEnvOn(t, w.st, w.sec, envOptions{devicePort: dev.Addr().Port})

	// A PID amtd never generated.
	e.send("127.0.0.1", legacytest.PSKHello(t, uuidA, "ZZZZ0000", 0))
	ev := e.next()
	if ev.Outcome != server.OutcomeRefused || !strings.Contains(ev.Detail, "not one of amtd's PID/PPS pairs") {
		t.Fatalf("unknown PID: %+v", ev)
	}
	if dev.SetupSessions() != 0 {
		t.Fatal("the device was contacted for an unknown PID")
	}

	e.send("127.0.0.1", legacytest.PSKHello(t, uuidB, pair.PID, 3))
	ev = e.next()
	if ev.Outcome != server.OutcomeProvisioned || ev.PID != pair.PID || ev.RetryCount != 3 {
		t.Fatalf("outcome %s: %s\n%s", ev.Outcome, ev.Detail, e.log(uuidB))
	}
	if fw.ControlMode() != firmware.ModeACM {
		t.Fatalf("control mode %d", fw.ControlMode())
	}
	creds, _ := devcreds.Load(ctx, w.sec, uuidB)
	if admin, ok := fw.LookupUser("admin"); !ok || creds.Current(devcreds.AMT) == "" || admin.HA1 != digest.HA1("admin", fw.Realm(), creds.Current(devcreds.AMT)) {
		t.Fatal("admin credentials not set")
	}
	used, err := w.st.GetPSKPair(ctx, pair.PID)
	if err != nil || used.UsedBy != uuidB || used.UsedAt == nil {
		t.Fatalf("pair after use: %+v %v", used, err)
	}
	if !subsequence(e.steps(uuidB), []string{"legacy.hello:info", "legacy.psk:ok", "legacy.auth:ok", "legacy.commit:ok", "tls:ok", "device.record:ok"}) {
		t.Fatalf("log:\n%s", e.log(uuidB))
	}
	if !strings.Contains(e.log(uuidB), "PSK hello from 127.0.0.1 (retry 3, PID "+pair.PID) {
		t.Fatalf("log:\n%s", e.log(uuidB))
	}
	if strings.Contains(e.log(uuidB)+e.logs.String(), pair.PPS) {
		t.Fatal("the PPS was logged")
	}
}

func TestPSKWrongPPS(t *testing.T) {
	w := newPKIWorld(t)
	ctx := t.Context()
	k := &psk.Keeper{Store: w.st, Secrets: w.sec}
	rows, err := k.Generate(ctx, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	devCfg, err := tlspsk.PIDPPSConfig(rows[0].PID, "AAAABBBBCCCCDDDDEEEEFFFFGGGGHHHH")
	if err != nil {
		t.Fatal(err)
	}
	fw := legacytest.NewFirmware(t, legacytest.FirmwareOptions{UUID: uuidB, Version: "10.0.55"})
	dev := legacytest.NewSetupDevice(t, fw, legacytest.DeviceOptions{PSK: devCfg, AnySetupPassword: true})
	w.allow(t, store.LegacyDevice{GUID: uuidB, ProfileName: "acm"})
	e := newEnvOn(t, w.st, w.sec, envOptions{devicePort: dev.Addr().Port})
	e.send("127.0.0.1", legacytest.PSKHello(t, uuidB, rows[0].PID, 0))
	ev := e.next()
	if ev.Outcome != server.OutcomeFailed || !strings.Contains(ev.Detail, "refused the TLS-PSK session") {
		t.Fatalf("wrong PPS: %+v\n%s", ev, e.log(uuidB))
	}
	if fw.ProvisioningState() != firmware.StateIn {
		t.Fatal("the device left setup mode")
	}
}
