package provision_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/amtd-project/amtd/internal/devcreds"
	"github.com/amtd-project/amtd/internal/provision"
	"github.com/amtd-project/amtd/internal/store"
)

// The crash test (issue point 5): an activation is killed after its Nth
// WS-MAN call (plain, or over TLS on an AMT 19 device), for every N — either
// before the call reaches the device, or
// after the device acted on it but before amtd saw the answer. From that
// instant amtd writes nothing more (its store and secret store are cut off)
// and reaches the device no more. A new amtd is then started on the same
// SQLite file and secret store, and the test proves that
//
//   - the device is untouched (still pre-provisioning, no admin account), or
//     every credential it holds — admin, MEBx, MPS password, TLS certificate —
//     is one amtd has (current or pending); and
//   - running activation again completes it, although the operator does not
//     know the device's (random) password.

type crashCase struct {
	name    string
	profile string
	// setup adds the configuration and says how to make the device.
	setup func(w *world) devOpts
	// tls: every call is a TLS handshake (AMT 19), several times dearer;
	// it is crashed at its credential calls only, unless
	// PROVISION_CRASH_FULL is set — under the race detector only at those
	// that set a credential or make it live, after the device acted.
	tls bool
}

var crashChain = sync.OnceValue(acmChain)

func crashCases() []crashCase {
	return []crashCase{
		{
			name: "CCM+CIRA", profile: "ccm",
			setup: func(w *world) devOpts {
				w.addCIRA("cira1", "")
				w.addProfile("ccm", provision.ActivationCCM, true, func(p *store.Profile) { p.CIRAConfigName = ptr("cira1") })
				return devOpts{}
			},
		},
		{
			name: "ACM+TLS", profile: "acm",
			setup: func(w *world) devOpts {
				w.addDomain(testDomain, suffix, crashChain())
				w.addProfile("acm", provision.ActivationACM, true, func(p *store.Profile) {
					p.GenerateRandomMEBxPassword = true
					p.TLSMode = ptr(2)
				})
				return devOpts{trust: crashChain()}
			},
		},
		{
			// AMT 19 CCM: Setup, then CommitChanges over TLS.
			name: "AMT19-CCM", profile: "ccm19",
			setup: func(w *world) devOpts {
				w.addProfile("ccm19", provision.ActivationCCM, true)
				return devOpts{version: amt19, noWifi: true}
			},
			tls: true,
		},
		{
			// AMT 19, TLS enforced: every call through a TLS connection,
			// CCM then amtd's certificate then the upgrade (activation.md §7).
			name: "AMT19-ACM", profile: "acm",
			setup: func(w *world) devOpts {
				w.addDomain(testDomain, suffix, crashChain())
				w.addProfile("acm", provision.ActivationACM, true, func(p *store.Profile) { p.GenerateRandomMEBxPassword = true })
				return devOpts{trust: crashChain(), version: amt19, noWifi: true}
			},
			tls: true,
		},
	}
}

// credentialCalls are the calls that set credentials or commit configuration
// on the device. Under the race detector (several times slower) only they
// (authenticated, not the 401 round before them), and the first and last
// call, are crashed at, unless PROVISION_CRASH_FULL is set; without it every
// call is (see crashCase.tls for TLS devices).
var credentialCalls = map[string]bool{
	"IPS_HostBasedSetupService/Setup": true, "IPS_HostBasedSetupService/AdminSetup": true,
	"IPS_HostBasedSetupService/UpgradeClientToAdmin": true, "AMT_SetupAndConfigurationService/SetMEBxPassword": true,
	"AMT_AuthorizationService/SetAdminAclEntryEx": true, "AMT_RemoteAccessService/AddMpServer": true,
	"AMT_PublicKeyManagementService/AddCertificate": true, "AMT_SetupAndConfigurationService/CommitChanges": true,
}

// liveCalls set a credential on a TLS device or make it live (the TLS
// CommitChanges is told apart by the TLS settings Put before it).
var liveCalls = map[string]bool{
	"IPS_HostBasedSetupService/Setup": true, "IPS_HostBasedSetupService/UpgradeClientToAdmin": true,
	"AMT_SetupAndConfigurationService/SetMEBxPassword": true, "AMT_PublicKeyManagementService/AddCertificate": true,
	"AMT_TLSSettingData/Put+AMT_SetupAndConfigurationService/CommitChanges": true,
}

func TestCrashAtEveryStep(t *testing.T) {
	full := os.Getenv("PROVISION_CRASH_FULL") != ""
	for _, cc := range crashCases() {
		// A clean run counts the calls.
		w := newWorld(t)
		d := w.newDevice(cc.setup(w))
		var actions []string
		var authed []bool // false: the unauthenticated first request of a client (answered 401)
		probe := &directConn{hook: func(_ int, req *http.Request) error {
			actions = append(actions, soapAction(req))
			authed = append(authed, req.Header.Get("Authorization") != "")
			return nil
		}}
		if out := w.runDirect(w.ctx(), d, request(d, activateCmd(cc.profile), ""), probe); !out.Success {
			t.Fatalf("%s: clean run failed: %s", cc.name, out.Message)
		}
		calls := int(probe.n.Load())
		t.Logf("%s: %d WS-MAN calls: %v", cc.name, calls, actions)
		for n := 1; n <= calls; n++ {
			action, variants := actions[n-1], []bool{false, true}
			switch {
			case full || !raceDetector && !cc.tls:
			case raceDetector && cc.tls:
				if n > 1 && actions[n-2] == "AMT_TLSSettingData/Put" {
					action = actions[n-2] + "+" + action
				}
				if !authed[n-1] || !liveCalls[action] {
					continue
				}
				variants = []bool{true}
			default:
				if n != 1 && n != calls && (!authed[n-1] || !credentialCalls[action]) {
					continue
				}
			}
			for _, acted := range variants {
				name := fmt.Sprintf("%s/call%02d/%s", cc.name, n, map[bool]string{false: "lost", true: "acted"}[acted])
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					crashOnce(t, cc, n, acted)
				})
			}
		}
	}
}

func crashOnce(t *testing.T, cc crashCase, n int, acted bool) {
	w := newWorld(t)
	d := w.newDevice(cc.setup(w))
	g := &gate{}
	w.reopenWithGate(g)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	kill := func() { g.kill(); cancel() }
	conn := &directConn{
		hook: func(i int, _ *http.Request) error {
			if err := g.check(); err != nil {
				return err // a dead process reaches no device
			}
			if i == n && !acted {
				kill()
				return errKilled
			}
			return nil
		},
		post: func(i int, resp *http.Response, err error) (*http.Response, error) {
			if i == n && acted {
				if resp != nil {
					resp.Body.Close()
				}
				kill()
				return nil, errKilled
			}
			return resp, err
		},
	}
	out := w.runDirect(ctx, d, request(d, activateCmd(cc.profile), ""), conn)
	if out.Success {
		t.Fatalf("the run succeeded despite the kill")
	}

	// A new amtd on the same files.
	w.restart()
	creds := w.creds(d.guid())
	st := d.state()
	if st.ControlMode == 0 {
		if st.Admin.HA1 != "" {
			t.Fatal("pre-provisioning device with an admin account")
		}
	} else {
		ok := false
		for _, pw := range creds.Candidates(devcreds.AMT) {
			ok = ok || d.authenticates(pw)
		}
		if !ok {
			t.Fatalf("device in mode %d refuses every AMT password amtd holds (%d)", st.ControlMode, len(creds.Candidates(devcreds.AMT)))
		}
	}
	if st.MEBxPasswordSHA256 != "" && !slices.ContainsFunc(creds.Candidates(devcreds.MEBx), d.fw.MEBxPasswordMatches) {
		t.Fatal("the device's MEBx password is not one amtd holds")
	}
	for _, m := range st.CIRA.MPServers {
		if !slices.Contains(creds.Candidates(devcreds.MPS), m.Password) {
			t.Fatal("the device's MPS password is not one amtd holds")
		}
	}
	if h := st.TLS.Committed.Cert; h >= 0 && st.TLS.Committed.Remote.Enabled {
		for _, c := range st.Certs {
			if c.Handle == h && !slices.Contains(creds.Candidates(devcreds.TLSCert), base64.StdEncoding.EncodeToString(c.DER)) {
				t.Fatal("the device's TLS certificate is not one amtd holds")
			}
		}
	}

	// Activation again, by an operator who does not know the password.
	out = w.runDirect(w.ctx(), d, request(d, activateCmd(cc.profile), "Unkn0wn-P@ss"), nil)
	if !out.Success {
		dumpLog(t, w, d.guid())
		t.Fatalf("activation again (device mode %d): %s", st.ControlMode, out.Message)
	}
	adminPassword(t, w, d)
	creds = w.creds(d.guid())
	if creds.Current(provision.MarkerKind) != "" {
		t.Fatal("activation marker left after success")
	}
	st = d.state()
	switch cc.profile {
	case "ccm":
		if len(st.CIRA.MPServers) != 1 || st.CIRA.MPServers[0].Password != creds.Current(devcreds.MPS) || creds.Pending(devcreds.MPS) != "" {
			t.Fatal("CIRA not configured with the stored MPS password")
		}
	case "ccm19":
		if st.ControlMode != 1 {
			t.Fatalf("control mode %d", st.ControlMode)
		}
	case "acm":
		if st.ControlMode != 2 || !d.fw.MEBxPasswordMatches(creds.Current(devcreds.MEBx)) || creds.Pending(devcreds.MEBx) != "" {
			t.Fatal("ACM device's MEBx password")
		}
		if !st.TLS.Committed.Remote.Enabled || creds.Current(devcreds.TLSCert) == "" {
			t.Fatal("TLS not configured")
		}
	}
}

// soapAction is the request's WS-MAN action, shortened ("Class/Method").
func soapAction(req *http.Request) string {
	if req.GetBody == nil {
		return "?"
	}
	body, err := req.GetBody()
	if err != nil {
		return "?"
	}
	defer body.Close()
	b, _ := io.ReadAll(body)
	s := string(b)
	i := strings.Index(s, "<a:Action>")
	j := strings.Index(s, "</a:Action>")
	k := strings.Index(s, "<w:ResourceURI>")
	l := strings.Index(s, "</w:ResourceURI>")
	if i < 0 || j < i || k < 0 || l < k {
		return "?"
	}
	action := s[i+len("<a:Action>") : j]
	class := s[k+len("<w:ResourceURI>") : l]
	return class[strings.LastIndex(class, "/")+1:] + "/" + action[strings.LastIndex(action, "/")+1:]
}
