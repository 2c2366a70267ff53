package device_test

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/amtd-project/amtd/sim/device"
	"github.com/amtd-project/amtd/sim/firmware"
	"github.com/amtd-project/amtd/sim/redir"
)

// TestRedirectionOnLAN: the device's own redirection port (16994) serves
// SOL and KVM with the digest login of its admin, after user consent; the
// KVM SAP reports a session in progress.
func TestRedirectionOnLAN(t *testing.T) {
	d := startDevice(t, devOpts{dev: device.Config{RedirAddrs: []string{"127.0.0.1:0"}}})
	activateCCM(t, d)
	a := adminClient(d)
	if d.RedirAddr() == "" {
		t.Fatal("no redirection address")
	}
	dial := func() *redir.Client {
		c, err := net.DialTimeout("tcp", d.RedirAddr(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		t.Cleanup(func() { c.Close() })
		return redir.NewClient(c)
	}

	// no consent yet (CCM): refused after the login
	rc := dial()
	if st, err := rc.Start(redir.TagSOL); err != nil || st != 0 {
		t.Fatalf("start %d %v", st, err)
	}
	if st, err := rc.DigestLogin("admin", testPassword); err != nil || st != redir.AuthFailure {
		t.Fatalf("login without consent: %d %v", st, err)
	}

	consent(t, d, a)
	rc = dial()
	rc.Start(redir.TagSOL)
	if st, err := rc.DigestLogin("admin", testPassword); err != nil || st != redir.AuthSuccess {
		t.Fatalf("login: %d %v", st, err)
	}
	if err := rc.StartSOL(); err != nil {
		t.Fatal(err)
	}
	rc.ReadSOLUntil("login: ")
	rc.SendSOL("echo over the LAN\r")
	if out, err := rc.ReadSOLUntil("login: "); err != nil || !strings.Contains(out, "\r\nover the LAN\r\n") {
		t.Fatalf("SOL %q %v", out, err)
	}
	rc.End()
	io.Copy(io.Discard, rc.Reader()) // until the device closed the session

	consent(t, d, a)
	kc := dial()
	kc.Start(redir.TagKVM)
	if st, _ := kc.DigestLogin("admin", testPassword); st != redir.AuthSuccess {
		t.Fatalf("KVM login %d", st)
	}
	kc.Conn().Write([]byte{redir.StartKVMOrIDER, 0, 0, 0, 0, 0, 0, 0})
	head := make([]byte, 20)
	if _, err := io.ReadFull(kc.Reader(), head); err != nil || string(head[8:]) != "RFB 003.008\n" {
		t.Fatalf("RFB % x %v", head, err)
	}
	if k := must(a.CIM.KVMRedirectionSAP.Get())(t).Body.GetResponse; k.EnabledState != 2 {
		t.Fatalf("KVM SAP during a session: %d", k.EnabledState)
	}
	kc.Close()
	// the audit log has the sessions (newest first)
	audit := must(a.AMT.AuditLog.ReadRecords(1))(t).Body.DecodedRecordsResponse
	var events []string
	for _, r := range audit {
		if r.AuditAppID == firmware.AuditRedirectionManager {
			events = append(events, r.Event)
		}
	}
	if !strings.Contains(strings.Join(events, ","), "SoL Session Closed,SoL Session Opened") {
		t.Fatalf("audit %v", events)
	}
}
