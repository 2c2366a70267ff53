package bench

import (
	"context"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ActivateOptions configure the activation scenario.
type ActivateOptions struct {
	Devices     int      // devices activating (default 1000)
	Concurrency int      // devices at once (default: all of them)
	DBs         []string // "sqlite", "postgres" (default both)
	Modes       []string // "ccm", "acm" (default both)
}

// benchSuffix is the ACM domain suffix: the devices get it from DHCP
// (amtd sim --dns-suffix) and the provisioning certificate is issued for
// amt.<suffix>.
const benchSuffix = "amtd-bench.test"

// activateResult is one activation run.
type activateResult struct {
	DB, Mode                    string
	Devices, OK, Failed         int
	Elapsed, P50, P99, Max      time.Duration
	ServerCPU                   time.Duration
	ServerRSSBefore, ServerPeak int64
	PG                          *pgStats // PostgreSQL runs
	SimCPU                      time.Duration
	SimPeak                     int64
}

// Activate runs the activation scenario: for each database and mode, a
// fresh `amtd serve` with a CIRA configuration and a profile made through
// the admin API, then `amtd sim --activate` with every device at once.
func Activate(ctx context.Context, o Options, a ActivateOptions) error {
	if a.Devices <= 0 {
		a.Devices = 1000
	}
	if a.Concurrency <= 0 {
		a.Concurrency = a.Devices
	}
	if len(a.DBs) == 0 {
		a.DBs = []string{"sqlite", "postgres"}
	}
	if len(a.Modes) == 0 {
		a.Modes = []string{"ccm", "acm"}
	}
	e, err := newEnv(o, "activate")
	if err != nil {
		return err
	}
	defer e.cleanup()
	e.logf("activation: %d devices, %d at once, databases %v, modes %v; load average %s", a.Devices, a.Concurrency, a.DBs, a.Modes, loadAverage())

	var pg *postgres
	defer func() {
		if pg != nil {
			pg.stop()
		}
	}()
	var results []activateResult
	for _, db := range a.DBs {
		for _, mode := range a.Modes {
			if db == "postgres" && pg == nil {
				if pg, err = startPostgres(ctx); err != nil {
					return err
				}
				e.logf("PostgreSQL %s on port %d", pg.version(ctx), pg.port)
			}
			r, err := e.activateOnce(ctx, pg, db, mode, a)
			if err != nil {
				return fmt.Errorf("%s/%s: %w", db, mode, err)
			}
			results = append(results, r)
		}
	}
	e.outf("\nactivation of %d devices, %d at once (amtd serve --activation-delay 0s; load average at the end %s)", a.Devices, a.Concurrency, loadAverage())
	e.outf("| database | mode | ok | total | activations/s | p50 | p99 | max | server peak RSS (VmHWM) | server RSS before | server CPU | server CPU per activation | PostgreSQL CPU | commits per activation | amtd sim CPU | amtd sim peak RSS |")
	e.outf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range results {
		pgCPU, commits := "—", "—"
		if r.PG != nil {
			pgCPU = fmt.Sprintf("%.1f s", r.PG.CPU.Seconds())
			commits = fmt.Sprintf("%.1f", float64(r.PG.Commits)/float64(max(r.OK, 1)))
		}
		e.outf("| %s | %s | %d / %d | %.2f s | %.1f | %.2f s | %.2f s | %.2f s | %s | %s | %.1f s | %.1f ms | %s | %s | %.1f s | %s |",
			r.DB, r.Mode, r.OK, r.Devices, r.Elapsed.Seconds(), float64(r.OK)/r.Elapsed.Seconds(), r.P50.Seconds(), r.P99.Seconds(), r.Max.Seconds(),
			mib(r.ServerPeak), mib(r.ServerRSSBefore), r.ServerCPU.Seconds(), float64(r.ServerCPU.Milliseconds())/float64(max(r.OK, 1)),
			pgCPU, commits, r.SimCPU.Seconds(), mib(r.SimPeak))
	}
	return nil
}

var agentSummary = regexp.MustCompile(`activate: (\d+) devices, (\d+) ok, (\d+) failed in (\S+) \(concurrency \d+\); per device p50 (\S+), p99 (\S+), max (\S+)`)

func (e *env) activateOnce(ctx context.Context, pg *postgres, db, mode string, a ActivateOptions) (activateResult, error) {
	r := activateResult{DB: db, Mode: mode, Devices: a.Devices}
	name := db + "-" + mode
	so := serveOpts{Name: "serve-" + name, Data: e.dataDir(name)}
	if db == "postgres" {
		dsn, err := pg.createDB(ctx, "act_"+mode)
		if err != nil {
			return r, err
		}
		so.DB = dsn
	}
	in, err := e.startServe(ctx, so)
	if err != nil {
		return r, err
	}
	defer in.stop()
	if _, err := setupCIRAConfig(ctx, in.api); err != nil {
		return r, err
	}
	simArgs := []string{"--activate", "ws://" + in.httpAddr + "/activate", "--concurrency", strconv.Itoa(a.Concurrency), "--agent-timeout", "30m"}
	switch mode {
	case "ccm":
		if _, err := in.api.must(ctx, http.MethodPost, "/api/v1/admin/profiles", map[string]any{
			"profileName": "ccm", "activation": "ccmactivate", "generateRandomPassword": true, "dhcpEnabled": true,
			"ciraConfigName": "bench", "tags": []string{}}); err != nil {
			return r, err
		}
		simArgs = append(simArgs, "--profile", "ccm")
	case "acm":
		pki, err := newProvisioningPKI(benchSuffix)
		if err != nil {
			return r, err
		}
		if _, err := in.api.must(ctx, http.MethodPost, "/api/v1/admin/domains", map[string]any{
			"profileName": "bench", "domainSuffix": benchSuffix, "provisioningCert": base64.StdEncoding.EncodeToString(pki.PFX),
			"provisioningCertStorageFormat": "string", "provisioningCertPassword": pki.Password}); err != nil {
			return r, err
		}
		if _, err := in.api.must(ctx, http.MethodPost, "/api/v1/admin/profiles", map[string]any{
			"profileName": "acm", "activation": "acmactivate", "generateRandomPassword": true, "generateRandomMEBxPassword": true,
			"dhcpEnabled": true, "ciraConfigName": "bench", "userConsent": "None", "tags": []string{}}); err != nil {
			return r, err
		}
		simArgs = append(simArgs, "--profile", "acm", "--trust-hash", pki.RootSHA256, "--dns-suffix", benchSuffix)
	default:
		return r, fmt.Errorf("mode %q: ccm or acm", mode)
	}

	// Measure from here: the devices are created and started by the
	// simulator, then all activate at once.
	before, err := in.sample()
	if err != nil {
		return r, err
	}
	_ = resetHWM(in.p.pid())
	r.ServerRSSBefore = before.RSS
	var pgBefore pgStats
	if pg != nil {
		if pgBefore, err = pg.stats(ctx, "act_"+mode); err != nil {
			return r, err
		}
	}
	e.logf("%s: activating %d devices (%s, %s)", name, a.Devices, mode, db)
	sp, err := e.startSim(simOpts{Name: "sim-" + name, Devices: a.Devices, AddrBase: addrBase(0), Args: simArgs})
	if err != nil {
		return r, err
	}
	werr := sp.wait(ctx)
	out := sp.stdout()
	after, err := in.sample()
	if err != nil {
		return r, err
	}
	r.ServerCPU, r.ServerPeak = after.CPU-before.CPU, after.HWM
	if pg != nil {
		s, err := pg.stats(ctx, "act_"+mode)
		if err != nil {
			return r, err
		}
		d := s.sub(pgBefore)
		r.PG = &d
	}
	r.SimCPU, r.SimPeak = sp.usage()
	m := agentSummary.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no summary from amtd sim (%v): %s\n%s", werr, out, sp.tail())
	}
	r.OK, _ = strconv.Atoi(m[2])
	r.Failed, _ = strconv.Atoi(m[3])
	for i, d := range []*time.Duration{&r.Elapsed, &r.P50, &r.P99, &r.Max} {
		if *d, err = time.ParseDuration(m[4+i]); err != nil {
			return r, fmt.Errorf("summary %q: %w", m[0], err)
		}
	}
	e.logf("%s: %s", name, m[0])
	if r.Failed > 0 {
		e.logf("%s: failures:\n%s", name, failedLines(out, 10))
	}
	if err := os.RemoveAll(e.simDir("sim-" + name)); err != nil {
		return r, err
	}
	return r, nil
}

// setupCIRAConfig creates the CIRA configuration "bench" (MPSHost, port
// 4433, username/password authentication, amtd's own CIRA root) and
// returns amtd's CIRA root certificate (DER).
func setupCIRAConfig(ctx context.Context, a *api) ([]byte, error) {
	pemBytes, err := a.must(ctx, http.MethodGet, "/api/v1/ciracert", nil)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(pemBytes)
	if blk == nil {
		return nil, errors.New("GET /api/v1/ciracert: not PEM")
	}
	_, err = a.must(ctx, http.MethodPost, "/api/v1/admin/ciraconfigs", map[string]any{
		"configName": "bench", "mpsServerAddress": MPSHost, "mpsPort": 4433, "username": mpsUsername,
		"serverAddressFormat": 201, "authMethod": 2, "mpsRootCertificate": base64.StdEncoding.EncodeToString(blk.Bytes)})
	if err != nil {
		return nil, err
	}
	return blk.Bytes, nil
}

// failedLines are the first n "FAILED device …" lines of an agent run.
func failedLines(out string, n int) string {
	var b strings.Builder
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "FAILED") && n > 0 {
			b.WriteString(l + "\n")
			n--
		}
	}
	return b.String()
}
