package cluster_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/cluster"
	"github.com/amtd-project/amtd/internal/store"
	"github.com/amtd-project/amtd/internal/store/sqlstore"
	"github.com/amtd-project/amtd/internal/testutil/pgtest"
)

// answer is what the benchmark's device route returns (about the size of
// GET /amt/power/state).
var answer = []byte(`{"powerstate":2,"instance":"x"}`)

func benchHandler(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/json")
	w.Write(answer)
}

// benchInstance serves benchHandler behind a Forwarder (or bare).
func benchInstance(b *testing.B, st store.Store, id string, local bool, cacheTTL time.Duration, bare bool) *httptest.Server {
	var h http.Handler = http.HandlerFunc(benchHandler)
	if !bare {
		f, err := cluster.NewForwarder(cluster.ForwarderConfig{Self: id, Owners: st, CacheTTL: cacheTTL,
			Local: func(string) bool { return local }})
		if err != nil {
			b.Fatal(err)
		}
		h = f.Wrap(h)
	}
	srv := httptest.NewServer(h)
	b.Cleanup(srv.Close)
	if _, err := st.ClaimInstance(context.Background(), store.Instance{ID: id, Addr: srv.URL, Incarnation: "x"}, time.Hour, false); err != nil {
		b.Fatal(err)
	}
	return srv
}

func benchGet(b *testing.B, c *http.Client, url string) {
	res, err := c.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		b.Fatalf("status %d", res.StatusCode)
	}
}

// BenchmarkForward measures one device request over loopback HTTP with
// keep-alive, from the client's view:
//
//	bare        the owner's handler without the forwarder
//	direct      the owner, behind its forwarder (the device is local)
//	forwarded   another instance, which forwards to the owner (owner
//	            lookup cached)
//	uncached    the same with the cache off: one PostgreSQL lookup per
//	            request
//
// The forwarding overhead is forwarded − direct.
func BenchmarkForward(b *testing.B) {
	dsn := pgtest.DSN(b)
	st, err := sqlstore.Open(context.Background(), dsn, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	if _, err := st.PutDevice(context.Background(), &store.Device{GUID: dev1}); err != nil {
		b.Fatal(err)
	}
	if err := st.SetDeviceConnection(context.Background(), dev1, store.DeviceConnection{Connected: true, Instance: "owner", At: time.Now()}); err != nil {
		b.Fatal(err)
	}
	bare := benchInstance(b, st, "bare", true, 0, true)
	owner := benchInstance(b, st, "owner", true, 0, false)
	fwd := benchInstance(b, st, "fwd", false, 0, false)
	uncached := benchInstance(b, st, "uncached", false, -1, false)
	path := "/api/v1/amt/power/state/" + dev1
	for _, bc := range []struct {
		name string
		url  string
	}{
		{"bare", bare.URL}, {"direct", owner.URL}, {"forwarded", fwd.URL}, {"uncached", uncached.URL},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			defer c.CloseIdleConnections()
			benchGet(b, c, bc.url+path) // connections warm, cache filled
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				benchGet(b, c, bc.url+path)
			}
		})
	}
}

// BenchmarkWrapLocal is the forwarder's cost on a request it does not
// forward (route match, local check, header), without the network.
func BenchmarkWrapLocal(b *testing.B) {
	st, err := sqlstore.Open(context.Background(), b.TempDir()+"/amtd.db", nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	f, err := cluster.NewForwarder(cluster.ForwarderConfig{Self: "a", Owners: st, Local: func(string) bool { return true }})
	if err != nil {
		b.Fatal(err)
	}
	h := f.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	for _, p := range []string{"/api/v1/amt/power/state/" + dev1, "/api/v1/devices"} {
		b.Run(p[:15], func(b *testing.B) {
			r := httptest.NewRequest("GET", p, nil)
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(w, r)
			}
		})
	}
}
