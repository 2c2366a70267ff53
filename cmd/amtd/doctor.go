package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/amtd-project/amtd/internal/cli"
	"github.com/amtd-project/amtd/internal/legacy/doctor"
	"github.com/amtd-project/amtd/internal/provision"
	"github.com/amtd-project/amtd/internal/store"
)

func init() {
	register(&command{name: "doctor", summary: "check ProvisionServer DNS, provisioning certificates and ports for legacy provisioning",
		run: runDoctor})
}

func runDoctor(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, d := newLegacyFlags("doctor", "Checks what legacy (hello-based) provisioning needs around amtd, as the OEM and Intel\n"+
		"troubleshooting guides have people check by hand: ProvisionServer and ProvisionServer.<suffix>\n"+
		"resolve to this server; each provisioning certificate's CN fits the DNS zone and the suffix\n"+
		"devices report; its root is an AMT default (or must be added to devices); its private key is\n"+
		"there; the hello port and a device's ports 16992-16995 are reachable. Each finding says what\n"+
		"to fix. Exit status 1 when there are errors.", stderr)
	var suffixes, expect, devices, domains cli.StringList
	fs.Var(&suffixes, "suffix", "DNS suffix the devices report (DHCP option 15 or PKI DNS suffix); repeatable;\ndefault: the suffixes of amtd's domains")
	dnsServer := fs.String("dns-server", "", "ask this DNS server (HOST:PORT) instead of the system resolver")
	fs.Var(&expect, "expect-ip", "an address of this server that ProvisionServer must resolve to; repeatable;\ndefault: the host's interface addresses")
	helloPort := fs.Int("hello-port", 9971, "amtd's hello port")
	helloAddr := fs.String("hello-addr", "", "check the hello port at this HOST:PORT (default: the first expected address)")
	fs.Var(&devices, "device", "a device address whose ports 16992-16995 are checked; repeatable")
	fs.Var(&domains, "domain", "check only this amtd domain's certificate; repeatable (default: all)")
	var timeout time.Duration
	fs.DurationVar(&timeout, "timeout", 3*time.Second, "timeout of each network check")
	asJSON := fs.Bool("json", false, "print the findings as JSON")
	fs.NoEnv("suffix", "device", "domain")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError(fs, stderr, "unexpected arguments: "+strings.Join(fs.Args(), " "))
	}
	cfg := doctor.Config{Suffixes: suffixes, DNSServer: *dnsServer, HelloPort: *helloPort, HelloAddr: *helloAddr,
		Devices: devices, Timeout: timeout}
	for _, s := range expect {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return &exitError{code: 2, err: fmt.Errorf("--expect-ip %q is not an IP address", s)}
		}
		cfg.ExpectIPs = append(cfg.ExpectIPs, a.Unmap())
	}
	st, sec, closeFn, err := d.open(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	var list []store.Domain
	for p := (store.Page{Top: 100}); ; p.Skip += p.Top {
		page, err := st.ListDomains(ctx, d.Tenant, p)
		if err != nil {
			return err
		}
		list = append(list, page...)
		if len(page) < p.Top {
			break
		}
	}
	for _, dom := range list {
		if len(domains) > 0 && !containsFold(domains, dom.Name) {
			continue
		}
		c := doctor.Certificate{Name: dom.Name, Suffix: dom.DomainSuffix}
		if m, err := sec.Get(ctx, provision.DefaultSecretKey(dom.TenantID, provision.KindDomain, dom.SecretID)); err == nil {
			c.Password = m[provision.FieldPFXPassword]
			if b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(m[provision.FieldPFX]), "")); err == nil {
				c.PFX = b
			} else {
				c.PFX = []byte(m[provision.FieldPFX])
			}
		}
		cfg.Certificates = append(cfg.Certificates, c)
	}
	for _, n := range domains {
		found := false
		for _, c := range cfg.Certificates {
			found = found || strings.EqualFold(c.Name, n)
		}
		if !found {
			return &exitError{code: 2, err: fmt.Errorf("--domain %q: no such domain", n)}
		}
	}
	findings := doctor.Run(ctx, cfg)
	if *asJSON {
		if err := writeJSON(stdout, findings); err != nil {
			return err
		}
	} else {
		for _, f := range findings {
			fmt.Fprintln(stdout, f.String())
		}
	}
	if doctor.HasErrors(findings) {
		n := 0
		for _, f := range findings {
			if f.Severity == doctor.Error {
				n++
			}
		}
		return &exitError{code: 1, err: fmt.Errorf("%d problem(s) to fix", n)}
	}
	return nil
}

func containsFold(l []string, s string) bool {
	for _, x := range l {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
