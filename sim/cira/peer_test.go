package cira_test

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/cim/power"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/client"

	ciraserver "github.com/amtd-project/amtd/internal/cira"
	"github.com/amtd-project/amtd/sim/cira"
	"github.com/amtd-project/amtd/sim/firmware"
	"github.com/amtd-project/amtd/sim/redir"
)

// TestWithAmtdPresenceServer runs the simulated device against amtd's own
// presence server (internal/cira), an independent implementation of the
// other side: WS-MAN through its RoundTripper, SOL and KVM through its
// channels, and a reconnection after the server drops the device.
func TestWithAmtdPresenceServer(t *testing.T) {
	p := newPKI(t, mpsName)
	var want atomic.Value
	want.Store("")
	connected := make(chan ciraserver.ConnInfo, 8)
	srv, err := ciraserver.NewServer(ciraserver.Config{
		Certificate: &p.server,
		Authenticator: ciraserver.AuthenticatorFunc(func(ctx context.Context, uuid string) (ciraserver.DeviceAuth, error) {
			if uuid != want.Load().(string) {
				return ciraserver.DeviceAuth{}, ciraserver.ErrUnknownDevice
			}
			return ciraserver.DeviceAuth{Username: mpsUser, Password: mpsPassword}, nil
		}),
		Observer:         ciraserver.ObserverFuncs{OnConnected: func(i ciraserver.ConnInfo) { connected <- i }},
		Logger:           slog.New(slog.DiscardHandler),
		ForwardSettle:    50 * time.Millisecond,
		AuthFailureDelay: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-served
	})

	h := newDevice(t, p, ln.Addr().String(), nil)
	uuid := h.d.Firmware().UUIDString()
	want.Store(uuid)
	h.configure()
	var info ciraserver.ConnInfo
	select {
	case info = <-connected:
	case <-time.After(15 * time.Second):
		t.Fatalf("the device did not connect: %+v", h.d.CIRA().Status())
	}
	if info.UUID != uuid || info.TriggerReason != 4 {
		t.Fatalf("connection %+v", info)
	}
	// the server proposes 30 s (MPS's value); scaled by the test: 300 ms
	if e := h.waitFor(cira.EventKeepaliveOptions); e.Interval != 300*time.Millisecond {
		t.Fatalf("keepalive %v", e.Interval)
	}
	if li, ok := srv.Lookup(uuid); !ok || !slices.Equal(li.Ports, cira.ForwardedPorts()) {
		t.Fatalf("forwarded ports %+v", li)
	}

	// WS-MAN the way amtd's management API will call it
	m := wsman.NewMessages(client.Parameters{Target: uuid, Username: "admin", Password: adminPassword, UseDigest: true,
		Transport: srv.RoundTripper(uuid), Timeout: 10 * time.Second})
	if r, err := m.CIM.PowerManagementService.RequestPowerStateChange(power.PowerOffHard /* 8: off */); err != nil || r.Body.RequestPowerStateChangeResponse.ReturnValue != 0 {
		t.Fatalf("power off through amtd's CIRA: %v", err)
	}
	enum, err := m.CIM.ServiceAvailableToElement.Enumerate()
	if err != nil {
		t.Fatal(err)
	}
	pull, err := m.CIM.ServiceAvailableToElement.Pull(enum.Body.EnumerateResponse.EnumerationContext)
	if err != nil || pull.Body.PullResponse.AssociatedPowerManagementService[0].PowerState != 8 {
		t.Fatalf("power state through amtd's CIRA: %v %+v", err, pull.Body.PullResponse)
	}
	recs, err := m.AMT.MessageLog.GetRecords(1, 390)
	if err != nil || len(recs.Body.GetRecordsResponse.RawEventData) == 0 || recs.Body.GetRecordsResponse.RawEventData[0].EventSensorType != 0x22 {
		t.Fatalf("event log through amtd's CIRA: %v", err)
	}
	if h.d.Firmware().PowerState() != firmware.PowerOffSoft {
		t.Fatalf("firmware power state %d", h.d.Firmware().PowerState())
	}

	// SOL and KVM through amtd's channels (what its relay does)
	h.d.Firmware().Update(func(s *firmware.State) error { s.OptIn.Required = firmware.OptInRequiredNone; return nil })
	dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer dcancel()
	ch, err := srv.Dial(dctx, uuid, 16994)
	if err != nil {
		t.Fatal(err)
	}
	_ = ch.SetDeadline(time.Now().Add(10 * time.Second))
	rc := redir.NewClient(ch)
	if st, err := rc.Start(redir.TagSOL); err != nil || st != 0 {
		t.Fatalf("SOL start %d %v", st, err)
	}
	if st, err := rc.DigestLogin("admin", adminPassword); err != nil || st != redir.AuthSuccess {
		t.Fatalf("SOL login %d %v", st, err)
	}
	if err := rc.StartSOL(); err != nil {
		t.Fatal(err)
	}
	rc.ReadSOLUntil("login: ")
	rc.SendSOL("hostname\r")
	if out, err := rc.ReadSOLUntil("login: "); err != nil || !strings.Contains(out, "\r\nsim\r\n") {
		t.Fatalf("SOL %q %v", out, err)
	}
	rc.End()
	rc.Close()

	kc, err := srv.Dial(dctx, uuid, 16994)
	if err != nil {
		t.Fatal(err)
	}
	_ = kc.SetDeadline(time.Now().Add(10 * time.Second))
	kv := redir.NewClient(kc)
	if st, err := kv.Start(redir.TagKVM); err != nil || st != 0 {
		t.Fatalf("KVM start %d %v", st, err)
	}
	if st, err := kv.DigestLogin("admin", adminPassword); err != nil || st != redir.AuthSuccess {
		t.Fatalf("KVM login %d %v", st, err)
	}
	kc.Write([]byte{redir.StartKVMOrIDER, 0, 0, 0, 0, 0, 0, 0})
	head := make([]byte, 8+12)
	if _, err := io.ReadFull(kv.Reader(), head); err != nil || head[0] != redir.StartKVMOrIDERReply || string(head[8:]) != "RFB 003.008\n" {
		t.Fatalf("KVM start % x %v", head, err)
	}
	kc.Write([]byte("RFB 003.008\n"))
	sec := make([]byte, 2+4)
	io.ReadFull(kv.Reader(), sec[:2])
	kc.Write([]byte{1})
	io.ReadFull(kv.Reader(), sec[2:])
	kc.Write([]byte{1})
	init := make([]byte, 24)
	if _, err := io.ReadFull(kv.Reader(), init); err != nil {
		t.Fatal(err)
	}
	hw := h.d.Firmware().Hardware()
	if w := binary.BigEndian.Uint16(init); int(w) != hw.Displays[0].Width {
		t.Fatalf("KVM screen width %d", w)
	}
	if h.d.Firmware().RedirectionSessions(firmware.RedirKVM) != 1 {
		t.Fatal("KVM session not counted")
	}
	kc.Close()

	// the server drops the device: it comes back
	if !srv.Disconnect(uuid) {
		t.Fatal("Disconnect")
	}
	h.waitFor(cira.EventDisconnected)
	select {
	case info = <-connected:
	case <-time.After(15 * time.Second):
		t.Fatalf("the device did not reconnect: %+v", h.d.CIRA().Status())
	}
	if info.UUID != uuid {
		t.Fatalf("reconnection %+v", info)
	}
	if r, err := m.CIM.PowerManagementService.RequestPowerStateChange(power.PowerOn); err != nil || r.Body.RequestPowerStateChangeResponse.ReturnValue != 0 {
		t.Fatalf("power on after the reconnection: %v", err)
	}
}
