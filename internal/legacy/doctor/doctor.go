// Package doctor checks what legacy (hello-based) provisioning needs from
// the network around amtd — what the OEM and Intel troubleshooting sections
// have people check by hand (legacy.md §2, §10, §12):
//
//   - DNS: ProvisionServer.<suffix> (and bare ProvisionServer) resolve, with
//     the system resolver or a named DNS server, to this server's addresses;
//   - certificates: each provisioning certificate's CN fits the DNS suffixes
//     devices report, its root is one of AMT's default trusted roots (or
//     must be added to devices as a user hash), its private key is there and
//     the chain is usable;
//   - ports: the hello port (9971) on this server, and 16992–16995 on a
//     device, are reachable.
//
// Every finding says what to fix.
package doctor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/amtd-project/amtd/internal/amthashes"
	"github.com/amtd-project/amtd/internal/certs"
)

// Severity of a finding.
type Severity string

// Severities.
const (
	OK      Severity = "ok"
	Info    Severity = "info"
	Warning Severity = "warning"
	Error   Severity = "error"
)

// Finding is one result.
type Finding struct {
	Check    string   `json:"check"` // "dns", "certificate", "port"
	Subject  string   `json:"subject"`
	Severity Severity `json:"severity"`
	Message  string   `json:"message"`
	Fix      string   `json:"fix,omitempty"`
}

func (f Finding) String() string {
	s := fmt.Sprintf("[%s] %s %s: %s", f.Severity, f.Check, f.Subject, f.Message)
	if f.Fix != "" {
		s += "\n    fix: " + f.Fix
	}
	return s
}

// Certificate is a provisioning certificate to check.
type Certificate struct {
	Name     string // domain (profile) name in amtd
	Suffix   string // the domain's DNS suffix in amtd
	PFX      []byte
	Password string
}

// DefaultDevicePorts are AMT's ports: HTTP and HTTPS WS-MAN, redirection
// (SOL/IDER) and redirection over TLS.
var DefaultDevicePorts = []int{16992, 16993, 16994, 16995}

// Config says what to check.
type Config struct {
	// Suffixes are the DNS suffixes devices report (DHCP option 15, or the
	// PKI DNS suffix set in the MEBx/setup.bin). Empty: the certificates'
	// suffixes.
	Suffixes []string
	// DNSServer ("host:port") is asked directly; empty uses the system
	// resolver.
	DNSServer string
	// ExpectIPs are this server's addresses that ProvisionServer must
	// resolve to. Empty: the host's interface addresses.
	ExpectIPs []netip.Addr
	// HelloPort is amtd's hello port (default 9971), checked on the first
	// expected address (HelloAddr overrides the address:port).
	HelloPort int
	HelloAddr string
	// Devices are device addresses whose DevicePorts are checked.
	Devices     []string
	DevicePorts []int // default DefaultDevicePorts
	// Certificates to check.
	Certificates []Certificate
	// Timeout per network check (default 3 s).
	Timeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Run performs every check and returns the findings in order: DNS,
// certificates, ports.
func Run(ctx context.Context, cfg Config) []Finding {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 3 * time.Second
	}
	if cfg.HelloPort == 0 {
		cfg.HelloPort = 9971
	}
	if cfg.DevicePorts == nil {
		cfg.DevicePorts = DefaultDevicePorts
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	suffixes := normalizeAll(cfg.Suffixes)
	if len(suffixes) == 0 {
		for _, c := range cfg.Certificates {
			suffixes = append(suffixes, normalize(c.Suffix))
		}
		suffixes = normalizeAll(suffixes)
	}
	expect := cfg.ExpectIPs
	var out []Finding
	if len(expect) == 0 {
		expect = LocalAddrs()
		out = append(out, Finding{Check: "dns", Subject: "this server", Severity: Info,
			Message: "expected addresses taken from the host's interfaces: " + addrList(expect),
			Fix:     "give --expect-ip when devices reach amtd through another address (NAT, load balancer)"})
	}
	out = append(out, checkDNS(ctx, cfg, suffixes, expect)...)
	out = append(out, checkCertificates(cfg, suffixes)...)
	out = append(out, checkPorts(ctx, cfg, expect)...)
	return out
}

// HasErrors reports whether any finding is an error.
func HasErrors(fs []Finding) bool {
	return slices.ContainsFunc(fs, func(f Finding) bool { return f.Severity == Error })
}

func normalize(s string) string {
	return strings.TrimPrefix(strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), "."), ".")
}

func normalizeAll(in []string) []string {
	var out []string
	for _, s := range in {
		if s = normalize(s); s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func addrList(l []netip.Addr) string {
	if len(l) == 0 {
		return "(none)"
	}
	s := make([]string, len(l))
	for i, a := range l {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

// LocalAddrs lists the host's global unicast interface addresses (loopback
// ones when there is no other).
func LocalAddrs() []netip.Addr {
	addrs, _ := net.InterfaceAddrs()
	var global, loop []netip.Addr
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		ip := p.Addr().Unmap()
		switch {
		case ip.IsLoopback():
			loop = append(loop, ip)
		case ip.IsGlobalUnicast():
			global = append(global, ip)
		}
	}
	if len(global) > 0 {
		return global
	}
	return loop
}

// ---- DNS ----

// resolve returns the addresses of name, following CNAMEs; found is false
// for NXDOMAIN or no address.
func resolve(ctx context.Context, cfg Config, name string) (addrs []netip.Addr, via string, err error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	if cfg.DNSServer == "" {
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", name)
		if err != nil {
			var de *net.DNSError
			if errors.As(err, &de) && de.IsNotFound {
				return nil, "", nil
			}
			return nil, "", err
		}
		for _, ip := range ips {
			addrs = append(addrs, ip.Unmap())
		}
		return addrs, "", nil
	}
	c := &dns.Client{Timeout: cfg.Timeout}
	target := dns.Fqdn(name)
	for hop := 0; hop < 8; hop++ {
		var cname string
		for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
			m := new(dns.Msg)
			m.SetQuestion(target, qt)
			m.RecursionDesired = true
			r, _, err := c.ExchangeContext(ctx, m, cfg.DNSServer)
			if err != nil {
				return nil, "", err
			}
			if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
				return nil, "", fmt.Errorf("DNS server answered %s", dns.RcodeToString[r.Rcode])
			}
			for _, rr := range r.Answer {
				switch v := rr.(type) {
				case *dns.A:
					if a, ok := netip.AddrFromSlice(v.A.To4()); ok {
						addrs = append(addrs, a)
					}
				case *dns.AAAA:
					if a, ok := netip.AddrFromSlice(v.AAAA); ok {
						addrs = append(addrs, a.Unmap())
					}
				case *dns.CNAME:
					if strings.EqualFold(v.Hdr.Name, target) {
						cname = v.Target
					}
				}
			}
		}
		if len(addrs) > 0 || cname == "" {
			return addrs, via, nil
		}
		via += " → " + strings.TrimSuffix(cname, ".")
		target = cname
	}
	return nil, via, errors.New("CNAME chain too long")
}

func checkDNS(ctx context.Context, cfg Config, suffixes []string, expect []netip.Addr) []Finding {
	var out []Finding
	server := "the system resolver"
	if cfg.DNSServer != "" {
		server = "DNS server " + cfg.DNSServer
	}
	check := func(name string, bare bool) {
		addrs, via, err := resolve(ctx, cfg, name)
		f := Finding{Check: "dns", Subject: name}
		switch {
		case err != nil:
			f.Severity, f.Message = Error, fmt.Sprintf("looking up %s with %s failed: %v", name, server, err)
			f.Fix = "make the DNS server reachable from here (and from the devices)"
		case len(addrs) == 0 && bare:
			f.Severity = Warning
			f.Message = fmt.Sprintf("%s (no domain) does not resolve with %s", name, server)
			f.Fix = "devices without a DHCP domain look up the bare name first; fine when every device gets a domain (DHCP option 15), else add ProvisionServer to their DNS search path or set the server address by setup.bin (--server)"
		case len(addrs) == 0:
			f.Severity = Error
			f.Message = fmt.Sprintf("%s does not resolve with %s", name, server)
			zone := strings.TrimPrefix(name, "ProvisionServer.")
			f.Fix = fmt.Sprintf("publish an A record (or a CNAME) ProvisionServer in the DNS zone %s pointing at %s", zone, addrList(expect))
		default:
			var match []netip.Addr
			for _, a := range addrs {
				if slices.Contains(expect, a) {
					match = append(match, a)
				}
			}
			switch {
			case len(match) == len(addrs):
				f.Severity, f.Message = OK, fmt.Sprintf("%s%s resolves to %s (this server)", name, via, addrList(addrs))
			case len(match) > 0:
				f.Severity = Warning
				f.Message = fmt.Sprintf("%s%s resolves to %s; only %s is this server", name, via, addrList(addrs), addrList(match))
				f.Fix = "remove the other addresses: devices may pick one that is not amtd"
			default:
				f.Severity = Error
				f.Message = fmt.Sprintf("%s%s resolves to %s, not to this server (%s)", name, via, addrList(addrs), addrList(expect))
				f.Fix = "point the record at amtd's address (or give --expect-ip if amtd is reached through that address)"
			}
		}
		out = append(out, f)
	}
	check("ProvisionServer", true)
	if len(suffixes) == 0 {
		out = append(out, Finding{Check: "dns", Subject: "ProvisionServer.<suffix>", Severity: Warning,
			Message: "no DNS suffix to check", Fix: "give the devices' DHCP domain with --suffix, or create a domain (provisioning certificate) in amtd"})
	}
	for _, s := range suffixes {
		check("ProvisionServer."+s, false)
	}
	return out
}

// ---- certificates ----

func checkCertificates(cfg Config, suffixes []string) []Finding {
	var out []Finding
	if len(cfg.Certificates) == 0 {
		return []Finding{{Check: "certificate", Subject: "(none)", Severity: Error,
			Message: "amtd has no provisioning certificate (domain)",
			Fix:     "create a domain with the provisioning certificate (PFX with its private key): POST /api/v1/admin/domains"}}
	}
	covered := map[string]bool{}
	for _, c := range cfg.Certificates {
		subj := fmt.Sprintf("%s (%s)", c.Name, c.Suffix)
		add := func(sev Severity, msg, fix string) {
			out = append(out, Finding{Check: "certificate", Subject: subj, Severity: sev, Message: msg, Fix: fix})
		}
		rep := certs.CheckPFX(c.PFX, c.Password, "", cfg.Now())
		if rep.HasError(certs.CodeNotPKCS12) || rep.HasError(certs.CodeWrongPassword) || rep.HasError(certs.CodeUnsupportedPKCS12) {
			f, _ := rep.FirstError()
			add(Error, "the PFX cannot be read: "+f.Message, "upload the PKCS#12 file again with its password")
			continue
		}
		leaf, root := rep.Leaf(), rep.Root()
		switch {
		case rep.PrivateKey == nil || rep.HasError(certs.CodeNoPrivateKey):
			add(Error, "the PFX holds no private key", "export the certificate with its private key (PKCS#12 \"include private key\") and upload it again")
		case rep.HasError(certs.CodeKeyMismatch):
			add(Error, "the private key does not belong to the leaf certificate", "export the PFX again from the machine that holds the certificate's key")
		default:
			add(OK, "private key present and matching the leaf", "")
		}
		for _, code := range []string{certs.CodeExpired, certs.CodeNotYetValid, certs.CodeNoAMTOIDOrOU, certs.CodeChainIncomplete,
			certs.CodeChainSignature, certs.CodeNoRoot, certs.CodeWeakRSAKey, certs.CodeSHA1Signature} {
			for _, f := range rep.Errors {
				if f.Code == code {
					add(Error, f.Message, certFix(code))
				}
			}
		}
		if leaf == nil {
			continue
		}
		cn := leaf.Subject.CommonName
		if c.Suffix != "" && !certs.DomainMatches(cn, c.Suffix) {
			add(Error, fmt.Sprintf("CN %s does not fit the domain's DNS suffix %s (the DNS zone of ProvisionServer)", cn, c.Suffix),
				"use a provisioning certificate issued for that zone, or correct the domain's suffix in amtd")
		}
		for _, s := range suffixes {
			if certs.DomainMatches(cn, s) {
				covered[s] = true
			}
		}
		if root != nil {
			out = append(out, CheckRoot(subj, root.Raw))
		}
	}
	for _, s := range suffixes {
		if !covered[s] {
			var cns []string
			for _, c := range cfg.Certificates {
				if rep := certs.CheckPFX(c.PFX, c.Password, "", cfg.Now()); rep.Leaf() != nil {
					cns = append(cns, rep.Leaf().Subject.CommonName)
				}
			}
			out = append(out, Finding{Check: "certificate", Subject: s, Severity: Error,
				Message: fmt.Sprintf("devices with the DNS suffix %s accept none of amtd's provisioning certificates (CN %s): the CN must be the suffix or end with .%s",
					s, strings.Join(cns, ", "), s),
				Fix: fmt.Sprintf("add a domain whose certificate CN is under %s, or set the devices' PKI DNS suffix to the certificate's domain (amtd setupbin create --pki-dns-suffix, or the MEBx)", s)})
		}
	}
	return out
}

func certFix(code string) string {
	switch code {
	case certs.CodeExpired, certs.CodeNotYetValid:
		return "renew the provisioning certificate and upload the new PFX"
	case certs.CodeNoAMTOIDOrOU:
		return "the certificate needs the Intel AMT provisioning EKU (2.16.840.1.113741.1.2.3) or OU \"Intel(R) Client Setup Certificate\": request an AMT provisioning certificate"
	case certs.CodeChainIncomplete, certs.CodeNoRoot, certs.CodeChainSignature:
		return "export the PFX with the whole chain up to the root (devices need the root to match their hash)"
	case certs.CodeWeakRSAKey, certs.CodeSHA1Signature:
		return "request a certificate with an RSA key of at least 2048 bits and SHA-256 signatures"
	}
	return ""
}

// CheckRoot reports whether a root certificate is one of AMT's default
// trusted roots; if not, the fix is to add its hash to every device.
func CheckRoot(subject string, rootDER []byte) Finding {
	fp := certs.FingerprintsOf(rootDER)
	if e, ok := amthashes.Lookup(fp.SHA256); ok {
		msg := fmt.Sprintf("the root is AMT default trusted root #%d (%s)", e.Index, e.Name)
		f := Finding{Check: "certificate", Subject: subject, Severity: OK, Message: msg}
		if !e.Active || e.Index == 0 {
			f.Severity = Warning
			f.Message = msg + ", which is not active on every firmware"
			f.Fix = "check the devices' active hashes (the PKI hello lists them: amtd legacy hellos), or add the hash as a user hash"
		}
		return f
	}
	return Finding{Check: "certificate", Subject: subject, Severity: Warning,
		Message: "the root (SHA-256 " + fp.SHA256 + ") is not one of AMT's default trusted roots",
		Fix:     "add its hash to every device as a user-defined hash: amtd setupbin create --domain NAME (USB), or enter it in the MEBx"}
}

// ---- ports ----

func checkPorts(ctx context.Context, cfg Config, expect []netip.Addr) []Finding {
	var out []Finding
	hello := cfg.HelloAddr
	if hello == "" {
		host := "127.0.0.1"
		if len(expect) > 0 {
			host = expect[0].String()
		}
		hello = net.JoinHostPort(host, strconv.Itoa(cfg.HelloPort))
	}
	if err := dial(ctx, cfg.Timeout, hello); err != nil {
		out = append(out, Finding{Check: "port", Subject: hello, Severity: Error,
			Message: "the hello port is not reachable: " + err.Error(),
			Fix:     "run amtd serve with the hello listener (--hello) and open TCP " + strconv.Itoa(cfg.HelloPort) + " from the devices' networks in the firewall"})
	} else {
		out = append(out, Finding{Check: "port", Subject: hello, Severity: OK, Message: "the hello port accepts connections"})
	}
	if len(cfg.Devices) == 0 {
		out = append(out, Finding{Check: "port", Subject: "devices", Severity: Info,
			Message: "no device address given", Fix: "give --device ADDRESS to check that amtd reaches a device on " + portList(cfg.DevicePorts)})
	}
	for _, d := range cfg.Devices {
		for _, p := range cfg.DevicePorts {
			addr := net.JoinHostPort(d, strconv.Itoa(p))
			if err := dial(ctx, cfg.Timeout, addr); err != nil {
				sev := Error
				fix := fmt.Sprintf("allow TCP %d from amtd to the device", p)
				switch p {
				case 16992:
					sev = Warning
					fix += " (plain HTTP WS-MAN; closed on TLS-only devices and in setup mode)"
				case 16994, 16995:
					sev = Warning
					fix += " (redirection: SOL/IDER; closed until redirection is enabled)"
				case 16993:
					fix += "; in setup mode the device must be sending hellos (its remote configuration window is open)"
				}
				out = append(out, Finding{Check: "port", Subject: addr, Severity: sev, Message: "not reachable: " + err.Error(), Fix: fix})
				continue
			}
			out = append(out, Finding{Check: "port", Subject: addr, Severity: OK, Message: "reachable"})
		}
	}
	return out
}

func portList(ps []int) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, ", ")
}

func dial(ctx context.Context, timeout time.Duration, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}
