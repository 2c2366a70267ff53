package main

import (
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/amtd-project/amtd/internal/legacy/legacytest"
	"github.com/amtd-project/amtd/internal/testutil/testpki"
)

// startDNS serves fixed A records on loopback.
func startDNS(t *testing.T, records map[string]string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		ip, ok := records[strings.ToLower(q.Question[0].Name)]
		switch {
		case !ok:
			m.Rcode = dns.RcodeNameError
		case q.Question[0].Qtype == dns.TypeA:
			rr, _ := dns.NewRR(q.Question[0].Name + " 60 IN A " + ip)
			m.Answer = append(m.Answer, rr)
		}
		_ = w.WriteMsg(m)
	})}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown(); <-done })
	return pc.LocalAddr().String()
}

func TestDoctorCLI(t *testing.T) {
	dir := t.TempDir()
	st, sec := openDataDir(t, dir)
	chain := testpki.NewChain(testpki.ChainOptions{LeafCN: "amt.corp.example.com"})
	legacytest.AddDomain(t, st, sec, "", "corp", "corp.example.com", chain)
	hello, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hello.Close()
	go func() {
		for {
			c, err := hello.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := strconv.Itoa(hello.Addr().(*net.TCPAddr).Port)
	dnsAddr := startDNS(t, map[string]string{"provisionserver.corp.example.com.": "127.0.0.1", "provisionserver.lab.example.com.": "192.0.2.7"})
	base := []string{"doctor", "--data", dir, "--dns-server", dnsAddr, "--expect-ip", "127.0.0.1", "--hello-port", port}

	out := mustRun(t, base...)
	for _, want := range []string{"[ok] dns ProvisionServer.corp.example.com: ProvisionServer.corp.example.com resolves to 127.0.0.1 (this server)",
		"[ok] certificate corp (corp.example.com): private key present", "[warning] certificate corp (corp.example.com): the root",
		"fix: add its hash to every device", "[ok] port 127.0.0.1:" + port} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// Devices in lab.example.com: the record points elsewhere and no
	// certificate fits their suffix.
	code, out, errOut := runAmtd(t, append(base, "--suffix", "lab.example.com")...)
	if code != 1 || !strings.Contains(errOut, "problem(s) to fix") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"[error] dns ProvisionServer.lab.example.com: ProvisionServer.lab.example.com resolves to 192.0.2.7, not to this server",
		"[error] certificate lab.example.com: devices with the DNS suffix lab.example.com accept none", "--pki-dns-suffix"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if code, _, _ := runAmtd(t, append(base, "--domain", "nope")...); code != 2 {
		t.Fatal("unknown --domain accepted")
	}
	if js := mustRun(t, append(base, "--json")...); !strings.Contains(js, `"severity": "ok"`) {
		t.Fatalf("json:\n%s", js)
	}
}
