package doctor_test

import (
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/amtd-project/amtd/internal/legacy/doctor"
	"github.com/amtd-project/amtd/internal/testutil/testpki"
)

// dnsServer is an authoritative DNS server on loopback answering from rrs
// ("name. TTL IN TYPE data" lines); unknown names are NXDOMAIN.
func dnsServer(t *testing.T, rrs ...string) string {
	t.Helper()
	zone := map[string][]dns.RR{}
	for _, s := range rrs {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.ToLower(rr.Header().Name)
		zone[name] = append(zone[name], rr)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Authoritative = true
		name := strings.ToLower(q.Question[0].Name)
		list, ok := zone[name]
		if !ok {
			m.Rcode = dns.RcodeNameError
		}
		for _, rr := range list {
			if rr.Header().Rrtype == q.Question[0].Qtype || rr.Header().Rrtype == dns.TypeCNAME {
				m.Answer = append(m.Answer, rr)
			}
		}
		_ = w.WriteMsg(m)
	})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.ActivateAndServe()
	}()
	t.Cleanup(func() {
		_ = srv.Shutdown()
		<-done
	})
	return pc.LocalAddr().String()
}

// listen opens a TCP listener that accepts and closes connections.
func listen(t *testing.T) (port int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// closedPort is a port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return p
}

var local = []netip.Addr{netip.MustParseAddr("127.0.0.1")}

func goodCert(t *testing.T) doctor.Certificate {
	c := testpki.NewChain(testpki.ChainOptions{LeafCN: "amt.corp.example.com"})
	return doctor.Certificate{Name: "corp", Suffix: "corp.example.com", PFX: c.PFX("pw", false), Password: "pw"}
}

// baseConfig: everything right.
func baseConfig(t *testing.T, dnsAddr string) doctor.Config {
	return doctor.Config{
		DNSServer: dnsAddr, ExpectIPs: local, HelloPort: listen(t),
		Devices: []string{"127.0.0.1"}, DevicePorts: []int{listen(t), listen(t)},
		Certificates: []doctor.Certificate{goodCert(t)}, Timeout: 2 * time.Second,
	}
}

// find returns the findings about subject of a check.
func find(fs []doctor.Finding, check, subject string) []doctor.Finding {
	var out []doctor.Finding
	for _, f := range fs {
		if f.Check == check && strings.Contains(f.Subject, subject) {
			out = append(out, f)
		}
	}
	return out
}

func one(t *testing.T, fs []doctor.Finding, check, subject string, sev doctor.Severity, msg string) doctor.Finding {
	t.Helper()
	got := find(fs, check, subject)
	for _, f := range got {
		if f.Severity == sev && strings.Contains(f.Message, msg) {
			if sev != doctor.OK && sev != doctor.Info && f.Fix == "" {
				t.Errorf("finding without a fix: %v", f)
			}
			return f
		}
	}
	t.Fatalf("no %s %s finding about %q with %q; findings:\n%s", sev, check, subject, msg, dump(fs))
	return doctor.Finding{}
}

func dump(fs []doctor.Finding) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString(f.String() + "\n")
	}
	return b.String()
}

func TestAllGood(t *testing.T) {
	addr := dnsServer(t, "ProvisionServer.corp.example.com. 60 IN A 127.0.0.1")
	fs := doctor.Run(t.Context(), baseConfig(t, addr))
	if doctor.HasErrors(fs) {
		t.Fatalf("errors:\n%s", dump(fs))
	}
	one(t, fs, "dns", "ProvisionServer.corp.example.com", doctor.OK, "resolves to 127.0.0.1 (this server)")
	one(t, fs, "dns", "ProvisionServer", doctor.Warning, "(no domain) does not resolve")
	one(t, fs, "certificate", "corp", doctor.OK, "private key present")
	one(t, fs, "certificate", "corp", doctor.Warning, "not one of AMT's default trusted roots")
	one(t, fs, "port", "127.0.0.1", doctor.OK, "hello port accepts")
}

func TestDNSMisconfigurations(t *testing.T) {
	cases := []struct {
		name string
		rrs  []string
		sev  doctor.Severity
		msg  string
		fix  string
	}{
		{"missing record", []string{"other.corp.example.com. 60 IN A 127.0.0.1"}, doctor.Error,
			"does not resolve", "publish an A record (or a CNAME) ProvisionServer in the DNS zone corp.example.com pointing at 127.0.0.1"},
		{"another server", []string{"ProvisionServer.corp.example.com. 60 IN A 192.0.2.99"}, doctor.Error,
			"resolves to 192.0.2.99, not to this server (127.0.0.1)", "point the record at amtd's address"},
		{"also another server", []string{"ProvisionServer.corp.example.com. 60 IN A 192.0.2.99", "ProvisionServer.corp.example.com. 60 IN A 127.0.0.1"},
			doctor.Warning, "only 127.0.0.1 is this server", "remove the other addresses"},
		{"CNAME to this server", []string{"ProvisionServer.corp.example.com. 60 IN CNAME amtd.corp.example.com.", "amtd.corp.example.com. 60 IN A 127.0.0.1"},
			doctor.OK, "ProvisionServer.corp.example.com → amtd.corp.example.com resolves to 127.0.0.1", ""},
		{"CNAME elsewhere", []string{"ProvisionServer.corp.example.com. 60 IN CNAME old.corp.example.com.", "old.corp.example.com. 60 IN AAAA 2001:db8::1"},
			doctor.Error, "resolves to 2001:db8::1, not to this server", "point the record"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := doctor.Run(t.Context(), baseConfig(t, dnsServer(t, c.rrs...)))
			f := one(t, fs, "dns", "ProvisionServer.corp.example.com", c.sev, c.msg)
			if !strings.Contains(f.Fix, c.fix) {
				t.Fatalf("fix %q lacks %q", f.Fix, c.fix)
			}
		})
	}
	t.Run("bare name resolves", func(t *testing.T) {
		fs := doctor.Run(t.Context(), baseConfig(t, dnsServer(t, "ProvisionServer. 60 IN A 127.0.0.1", "ProvisionServer.corp.example.com. 60 IN A 127.0.0.1")))
		one(t, fs, "dns", "ProvisionServer", doctor.OK, "ProvisionServer resolves to 127.0.0.1")
	})
	t.Run("DNS server down", func(t *testing.T) {
		cfg := baseConfig(t, "127.0.0.1:1")
		cfg.Timeout = 500 * time.Millisecond
		fs := doctor.Run(t.Context(), cfg)
		one(t, fs, "dns", "ProvisionServer.corp.example.com", doctor.Error, "failed")
	})
}

func TestCertificateMisconfigurations(t *testing.T) {
	addr := dnsServer(t, "ProvisionServer.corp.example.com. 60 IN A 127.0.0.1", "ProvisionServer.lab.example.com. 60 IN A 127.0.0.1")

	// Devices report a suffix the certificate's CN does not fit.
	cfg := baseConfig(t, addr)
	cfg.Suffixes = []string{"lab.example.com", "Corp.Example.com."}
	fs := doctor.Run(t.Context(), cfg)
	f := one(t, fs, "certificate", "lab.example.com", doctor.Error, "accept none of amtd's provisioning certificates (CN amt.corp.example.com)")
	if !strings.Contains(f.Fix, "--pki-dns-suffix") {
		t.Fatalf("fix %q", f.Fix)
	}
	if got := find(fs, "certificate", "corp.example.com"); len(got) == 0 {
		t.Fatal("no certificate findings")
	}
	for _, g := range find(fs, "certificate", "corp.example.com") {
		if strings.Contains(g.Message, "accept none") {
			t.Fatalf("corp.example.com reported uncovered: %v", g)
		}
	}

	// The domain's DNS zone does not fit the CN.
	cfg = baseConfig(t, addr)
	c := goodCert(t)
	c.Suffix = "other.example.org"
	cfg.Certificates = []doctor.Certificate{c}
	fs = doctor.Run(t.Context(), cfg)
	one(t, fs, "certificate", "corp (other.example.org)", doctor.Error, "CN amt.corp.example.com does not fit the domain's DNS suffix other.example.org")

	// No private key.
	cfg = baseConfig(t, addr)
	nk := testpki.NewChain(testpki.ChainOptions{LeafCN: "amt.corp.example.com", NoKey: true})
	cfg.Certificates = []doctor.Certificate{{Name: "corp", Suffix: "corp.example.com", PFX: nk.PFX("pw", false), Password: "pw"}}
	fs = doctor.Run(t.Context(), cfg)
	one(t, fs, "certificate", "corp", doctor.Error, "no private key")

	// Expired, without the AMT purpose.
	cfg = baseConfig(t, addr)
	old := testpki.NewChain(testpki.ChainOptions{LeafCN: "amt.corp.example.com", NoAMTOID: true,
		NotBefore: time.Now().AddDate(-2, 0, 0), NotAfter: time.Now().AddDate(-1, 0, 0)})
	cfg.Certificates = []doctor.Certificate{{Name: "corp", Suffix: "corp.example.com", PFX: old.PFX("pw", false), Password: "pw"}}
	fs = doctor.Run(t.Context(), cfg)
	one(t, fs, "certificate", "corp", doctor.Error, "expired")
	if !strings.Contains(dump(fs), "2.16.840.1.113741.1.2.3") {
		t.Fatalf("no purpose finding:\n%s", dump(fs))
	}

	// Wrong password.
	cfg = baseConfig(t, addr)
	c = goodCert(t)
	c.Password = "nope"
	cfg.Certificates = []doctor.Certificate{c}
	one(t, doctor.Run(t.Context(), cfg), "certificate", "corp", doctor.Error, "cannot be read")

	// None at all.
	cfg = baseConfig(t, addr)
	cfg.Certificates = nil
	cfg.Suffixes = []string{"corp.example.com"}
	one(t, doctor.Run(t.Context(), cfg), "certificate", "(none)", doctor.Error, "no provisioning certificate")
}

func TestRootInDefaultList(t *testing.T) {
	b, err := os.ReadFile("../../certs/testdata/digicert-global-root-ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	root, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	f := doctor.CheckRoot("digicert", root.Raw)
	if f.Severity != doctor.OK || !strings.Contains(f.Message, "AMT default trusted root #15") {
		t.Fatalf("finding %v", f)
	}
	own := testpki.NewChain(testpki.ChainOptions{})
	if f := doctor.CheckRoot("own", own.Root.Raw); f.Severity != doctor.Warning || !strings.Contains(f.Fix, "amtd setupbin create --domain") {
		t.Fatalf("finding %v", f)
	}
}

func TestPorts(t *testing.T) {
	addr := dnsServer(t, "ProvisionServer.corp.example.com. 60 IN A 127.0.0.1")
	cfg := baseConfig(t, addr)
	cfg.HelloPort = closedPort(t)
	cfg.DevicePorts = []int{listen(t), closedPort(t)}
	fs := doctor.Run(t.Context(), cfg)
	f := one(t, fs, "port", "127.0.0.1", doctor.Error, "the hello port is not reachable")
	if !strings.Contains(f.Fix, "--hello") {
		t.Fatalf("fix %q", f.Fix)
	}
	one(t, fs, "port", "127.0.0.1", doctor.Error, "not reachable")
	one(t, fs, "port", "127.0.0.1", doctor.OK, "reachable")
	// AMT's own ports get port-specific advice.
	cfg.DevicePorts = []int{16994}
	cfg.Devices = []string{"127.0.0.1"}
	if ln, err := net.Listen("tcp", "127.0.0.1:16994"); err == nil {
		ln.Close() // free: nothing listens during the check
		one(t, doctor.Run(t.Context(), cfg), "port", "127.0.0.1:16994", doctor.Warning, "not reachable")
	}
	cfg.Devices = nil
	one(t, doctor.Run(t.Context(), cfg), "port", "devices", doctor.Info, "no device address")
}
