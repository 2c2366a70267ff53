package provision_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/devcreds"
	"github.com/amtd-project/amtd/internal/provision"
	"github.com/amtd-project/amtd/internal/rpcproto"
	"github.com/amtd-project/amtd/internal/store"
	"github.com/amtd-project/amtd/internal/testutil/testpki"
)

// noDevice fails the test if the engine talks to a device.
type noDevice struct{ t *testing.T }

func (c noDevice) RoundTrip(*http.Request) (*http.Response, error) {
	c.t.Error("a validation failure reached the device")
	return nil, errors.New("no device")
}
func (noDevice) Wait(ctx context.Context, d time.Duration) error { return ctx.Err() }
func (noDevice) Progress(string)                                 {}

const vUUID = "4c4c4544-0038-4b10-8052-b4c04f564433"

func vPayload(mode int) *rpcproto.Payload {
	return &rpcproto.Payload{Ver: "16.1.25", Build: "2050", SKU: "16392", Client: "RPC", UUID: vUUID,
		Username: "$$OsAdmin", Password: "LsaP@ss123", CurrentMode: mode, Hostname: "h", FQDN: "corp.example.com",
		CertHashes: []string{"e7685634efacf69ace939a6b255b7b4fabef42935b50a265acb5cb6027e44e70"}}
}

// TestValidationMessages: every refusal before any WS-MAN call, with RPS's
// exact text (rpc-protocol.md §12), in RPS's order.
func TestValidationMessages(t *testing.T) {
	w := newWorld(t)
	w.addProfile("ccm", provision.ActivationCCM, false)
	w.addProfile("acm", provision.ActivationACM, false)
	w.addDomain("dom", "corp.example.com", testpki.NewChain(testpki.ChainOptions{LeafCN: "amt.corp.example.com"}))
	// A device amtd activated (stored credentials) for the password rules.
	if _, err := devcreds.Commit(w.ctx(), w.sec, vUUID, devcreds.AMT, "Stored-P@ss1"); err != nil {
		t.Fatal(err)
	}
	other := "4c4c4544-0038-4b10-8052-b4c04f560000"
	if _, err := w.st.PutDevice(w.ctx(), &store.Device{GUID: other, TenantID: "other-tenant"}); err != nil {
		t.Fatal(err)
	}

	act := func(profile string) rpcproto.Command { return rpcproto.Command{Name: "activate", Profile: profile} }
	deact := func(pw string, force bool) rpcproto.Command {
		return rpcproto.Command{Name: "deactivate", Password: pw, HasPass: true, Force: force}
	}
	maint := func(task, pw string) rpcproto.Command {
		return rpcproto.Command{Name: "maintenance", Task: task, Password: pw, HasPass: true}
	}
	cases := []struct {
		name string
		cmd  rpcproto.Command
		p    func(p *rpcproto.Payload)
		want string
		json bool // a status message rather than plain text
	}{
		{"unknown profile", act("nope"), nil, "Device " + vUUID + " activation failed. nope does not match list of available AMT profiles.", false},
		{"old firmware", act("ccm"), func(p *rpcproto.Payload) { p.Ver = "6.0.3" }, "Device " + vUUID + " activation failed. AMT version: 6.0.3. Version less than 7 cannot be remotely configured ", false},
		{"old build", act("ccm"), func(p *rpcproto.Payload) { p.Ver, p.Build = "11.6.1", "2100" }, "Device " + vUUID + " activation failed. Please check with your OEM for a firmware update.", false},
		{"no password", act("ccm"), func(p *rpcproto.Payload) { p.Password = "" }, "Device " + vUUID + " activation failed. Missing password.", false},
		{"ACM without hashes", act("acm"), func(p *rpcproto.Payload) { p.CertHashes = nil }, "Device " + vUUID + " activation failed. Missing certificate hashes from the device.", false},
		{"ACM without suffix", act("acm"), func(p *rpcproto.Payload) { p.FQDN = "" }, "Device " + vUUID + " activation failed. Missing DNS Suffix.", false},
		{"ACM no domain", act("acm"), func(p *rpcproto.Payload) { p.FQDN = "other.example.org" }, "Device " + vUUID + " activation failed. Specified AMT domain suffix: other.example.org does not match list of available AMT domain suffixes.", false},
		{"ACM device, CCM profile", act("ccm"), func(p *rpcproto.Payload) { p.CurrentMode, p.Password = 2, "Stored-P@ss1" }, "Device " + vUUID + " already enabled in admin control mode.", false},
		{"unknown mode", act("ccm"), func(p *rpcproto.Payload) { p.CurrentMode = 5 }, "Device " + vUUID + " activation failed. It is in unknown mode.", false},
		{"wrong password, activated", act("ccm"), func(p *rpcproto.Payload) { p.CurrentMode, p.Password = 1, "Wrong-P@ss1" }, "AMT password DOES NOT match stored version for Device " + vUUID, false},
		{"another tenant's device", act("ccm"), func(p *rpcproto.Payload) { p.UUID, p.CurrentMode, p.Password = other, 1, "Any-P@ss1" }, "Device belongs to another tenant. Please unprovision and re-activate device.", true},
		{"another tenant's record, pre-provisioning", act("ccm"), func(p *rpcproto.Payload) { p.UUID = other }, "Device belongs to another tenant. Please unprovision and re-activate device.", true},
		{"deactivate pre-provisioning", deact("Stored-P@ss1", false), nil, "Device " + vUUID + " is in pre-provisioning mode.", false},
		{"deactivate unknown mode", deact("Stored-P@ss1", false), func(p *rpcproto.Payload) { p.CurrentMode = 3 }, "Device " + vUUID + " deactivation failed. It is in unknown mode: 3.", false},
		{"deactivate wrong password", deact("Wrong-P@ss1", false), func(p *rpcproto.Payload) { p.CurrentMode = 1 }, "AMT password DOES NOT match stored version for Device " + vUUID, false},
		{"deactivate unknown device", deact("Any-P@ss1", false), func(p *rpcproto.Payload) { p.UUID, p.CurrentMode = other, 1 }, "AMT password DOES NOT match stored version for Device " + other, false},
		{"deactivate old firmware", deact("Stored-P@ss1", false), func(p *rpcproto.Payload) { p.CurrentMode, p.Ver = 2, "6.1" }, "Device " + vUUID + " deactivation failed. AMT version: 6.1. Version less than 7 cannot be remotely configured ", false},
		{"maintenance pre-provisioning", maint("synctime", "Stored-P@ss1"), nil, "Device " + vUUID + " is in pre-provisioning mode.", false},
		{"maintenance wrong password", maint("synctime", "Wrong-P@ss1"), func(p *rpcproto.Payload) { p.CurrentMode = 2 }, "AMT password DOES NOT match stored version for Device " + vUUID, false},
		{"maintenance without task", maint("", "Stored-P@ss1"), func(p *rpcproto.Payload) { p.CurrentMode = 2 }, "conn - missing maintenance task in message", false},
		{"syncip without ipConfiguration", maint("syncip", "Stored-P@ss1"), func(p *rpcproto.Payload) { p.CurrentMode = 2 }, "conn - missing ipConfiguration", false},
		{"synchostname without hostnameInfo", maint("synchostname", "Stored-P@ss1"), func(p *rpcproto.Payload) { p.CurrentMode = 1 }, "conn - missing HostnameInfo", false},
		{"unsupported method", rpcproto.Command{Name: "bogus"}, nil, "Device " + vUUID + " Not a supported method received from AMT device", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := vPayload(0)
			if c.cmd.HasPass {
				p.Password = c.cmd.Password
			}
			if c.p != nil {
				c.p(p)
			}
			out := w.eng.Run(w.ctx(), rpcproto.Request{ConnID: "conn", Command: c.cmd, Payload: p, TenantID: tenant}, noDevice{t})
			if out.Success {
				t.Fatalf("accepted: %s", out.Message)
			}
			got := out.Message
			if c.json {
				got = status(t, out).Status
			}
			if got != c.want {
				t.Fatalf("message\n got %q\nwant %q", got, c.want)
			}
		})
	}

	// The orphan guard (prevent_orphaned_devices).
	w2 := newWorld(t)
	w2.addProfile("ccm", provision.ActivationCCM, false)
	timing := provision.Timing{}
	eng, err := provision.New(provision.Config{Store: w2.st, Secrets: w2.sec, PreventOrphanedDevices: true, Timing: &timing})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w2.st.PutDevice(w2.ctx(), &store.Device{GUID: vUUID}); err != nil {
		t.Fatal(err)
	}
	out := eng.Run(w2.ctx(), rpcproto.Request{ConnID: "c", Command: act("ccm"), Payload: vPayload(0)}, noDevice{t})
	if want := "Device " + vUUID + " already has a record in MPS and cannot be re-provisioned from pre-provisioning mode. Remove the device (rpc-go deactivation or the REST API) before re-adding it."; out.Message != want {
		t.Fatalf("orphan guard: %q", out.Message)
	}
	// Refusals are in the device's provisioning log.
	ev := w.events(vUUID)
	if len(ev) == 0 || ev[0].Result != "error" {
		t.Fatalf("refusals not logged: %+v", ev)
	}
}

// TestParentSuffixDomain: the domain is chosen by the device's DNS suffix or
// its closest parent with at least two labels.
func TestParentSuffixDomain(t *testing.T) {
	w := newWorld(t)
	w.addProfile("acm", provision.ActivationACM, false)
	w.addDomain("dom", "example.com", testpki.NewChain(testpki.ChainOptions{LeafCN: "amt.example.com"}))
	for _, sfx := range []string{"example.com", "corp.example.com", "a.b.corp.example.com"} {
		p := vPayload(0)
		p.FQDN = sfx
		// Validation passes; the root hash then does not match (status message).
		out := w.eng.Run(w.ctx(), rpcproto.Request{ConnID: "c", Command: rpcproto.Command{Name: "activate", Profile: "acm"}, Payload: p}, noDevice{t})
		if got := status(t, out).Status; got != "Invalid domain certificate, hash does not exists in list of trusted root certificates on AMT" {
			t.Fatalf("%s: %q", sfx, got)
		}
	}
	p := vPayload(0)
	p.FQDN = "com"
	out := w.eng.Run(w.ctx(), rpcproto.Request{ConnID: "c", Command: rpcproto.Command{Name: "activate", Profile: "acm"}, Payload: p}, noDevice{t})
	if out.Message != "Device "+vUUID+" activation failed. Specified AMT domain suffix: com does not match list of available AMT domain suffixes." {
		t.Fatalf("single label: %q", out.Message)
	}
}
