package cira

import (
	"crypto/md5"
	"encoding/hex"
	"testing"
	"time"

	"github.com/amtd-project/amtd/sim/firmware"
)

func TestPolicySelection(t *testing.T) {
	fw, err := firmware.Open(firmware.Config{DNSSuffix: "corp.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{Firmware: fw, Services: echo{}, Options: Options{TimeScale: 0.5}})
	if err != nil {
		t.Fatal(err)
	}
	mps := func(name, host string, auth int) firmware.MPServer {
		return firmware.MPServer{Name: name, AccessInfo: host, InfoFormat: 201, Port: 4433, AuthMethod: auth, Username: "u", Password: "p"}
	}
	set := func(f func(s *firmware.State)) {
		fw.Update(func(s *firmware.State) error { f(s); return nil })
	}
	set(func(s *firmware.State) {
		s.CIRA.MPServers = []firmware.MPServer{mps("A", "a.example", 2), mps("B", "b.example", 2), mps("C", "c.example", 1)}
		s.CIRA.Policies = []firmware.PolicyRule{{Name: "Periodic", Trigger: 2, ExtendedData: "AAAAAAAAAB4="}, {Name: "User Initiated", Trigger: 0, TunnelLifeTime: 60}}
		s.CIRA.AppliesTo = []firmware.AppliesTo{{Policy: "Periodic", MPServer: "B", OrderOfAccess: 1}, {Policy: "Periodic", MPServer: "A", OrderOfAccess: 0},
			{Policy: "User Initiated", MPServer: "C"}}
	})
	if _, ok := c.target(); ok {
		t.Fatal("an unprovisioned device wants CIRA")
	}
	sum := md5.Sum([]byte("admin:" + fw.Realm() + ":P@ssw0rd-1"))
	fw.Setup(2, hex.EncodeToString(sum[:]))

	tg, ok := c.target()
	if !ok || tg.server.Name != "A" || tg.trigger != 4 || tg.interval != 15*time.Second {
		t.Fatalf("periodic target %+v %v", tg, ok)
	}
	c.server = 1 // after a failure: the next server of the policy
	if tg, _ := c.target(); tg.server.Name != "B" {
		t.Fatalf("second server %+v", tg)
	}
	c.server = 0
	// inside the enterprise: external-only (MpsType 0) servers do not apply
	set(func(s *firmware.State) { s.CIRA.DetectionStrings = []string{"example.com"} })
	if _, ok := c.target(); ok {
		t.Fatal("external MPS used inside the enterprise")
	}
	set(func(s *firmware.State) { s.CIRA.AppliesTo[0].MpsType = 2 })
	if tg, ok := c.target(); !ok || tg.server.Name != "B" {
		t.Fatalf("MpsType both inside: %+v %v", tg, ok)
	}
	// user-initiated to a mutual-authentication MPS is not simulated
	c.userReq = true
	if tg, ok := c.target(); ok && tg.trigger == 1 {
		t.Fatalf("user-initiated with AuthMethod 1: %+v", tg)
	}
	set(func(s *firmware.State) {
		s.CIRA.MPServers[2].AuthMethod = 2
		s.CIRA.AppliesTo[2].MpsType = 2
	})
	if tg, ok := c.target(); !ok || tg.trigger != 1 || tg.server.Name != "C" || tg.lifetime != 30*time.Second {
		t.Fatalf("user-initiated target %+v %v", tg, ok)
	}
}

func TestEnvironmentAndInterval(t *testing.T) {
	for _, c := range []struct {
		det    []string
		domain string
		inside bool
	}{
		{nil, "corp.example.com", false},
		{[]string{"corp.example.com"}, "corp.example.com", true},
		{[]string{"example.com."}, "eng.corp.Example.com", true},
		{[]string{"xample.com"}, "corp.example.com", false},
		{[]string{"b332bb28.com"}, "corp.example.com", false},
		{[]string{"corp.example.com"}, "", false},
	} {
		if got := insideEnterprise(c.det, c.domain); got != c.inside {
			t.Errorf("%v / %q: inside %v", c.det, c.domain, got)
		}
	}
	for ext, want := range map[string]time.Duration{"AAAAAAAAABk=": 25 * time.Second, "AAAAAQwAAAA=": 24 * time.Hour, "": 0, "!!": 0} {
		if got := periodicInterval(ext); got != want {
			t.Errorf("periodicInterval(%q) = %v", ext, got)
		}
	}
}
