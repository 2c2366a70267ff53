package vault

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// kvStandIn is a protocol-level stand-in for a Vault server with one KV v2
// mount, implementing only what the backend and its tests use, per Vault's
// documented HTTP API (/v1/sys/health, /v1/<mount>/data/<path> GET and
// PUT/POST, /v1/<mount>/metadata/<path> GET and DELETE), including its
// status codes and error bodies ({"errors":[…]}).
type kvStandIn struct {
	token string
	mount string

	mu      sync.Mutex
	entries map[string]*kvEntry // by path under the mount
}

type kvEntry struct {
	versions []map[string]any // index = version-1; nil = deleted
}

func newStandIn(t *testing.T, token, mount string) *httptest.Server {
	h := &kvStandIn{token: token, mount: mount, entries: map[string]*kvEntry{}}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func vaultErrors(w http.ResponseWriter, code int, msgs ...string) {
	if msgs == nil {
		msgs = []string{}
	}
	writeJSON(w, code, map[string]any{"errors": msgs})
}

func versionMeta(v int) map[string]any {
	return map[string]any{"version": v, "created_time": time.Now().UTC().Format(time.RFC3339Nano),
		"deletion_time": "", "destroyed": false, "custom_metadata": nil}
}

func (h *kvStandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v1/sys/health" {
		writeJSON(w, http.StatusOK, map[string]any{"initialized": true, "sealed": false, "standby": false,
			"performance_standby": false, "replication_performance_mode": "disabled",
			"replication_dr_mode": "disabled", "server_time_utc": time.Now().Unix(), "version": "1.21.4-standin",
			"cluster_name": "standin", "cluster_id": "00000000-0000-0000-0000-000000000000"})
		return
	}
	if r.Header.Get("X-Vault-Token") != h.token {
		vaultErrors(w, http.StatusForbidden, "permission denied")
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1/"+h.mount+"/")
	if !ok {
		vaultErrors(w, http.StatusNotFound, "no handler for route \""+r.URL.Path+"\"")
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case strings.HasPrefix(rest, "data/"):
		p := strings.TrimPrefix(rest, "data/")
		switch r.Method {
		case http.MethodGet:
			e := h.entries[p]
			if e == nil {
				vaultErrors(w, http.StatusNotFound)
				return
			}
			n := len(e.versions)
			data := e.versions[n-1]
			meta := versionMeta(n)
			if data == nil {
				meta["deletion_time"] = time.Now().UTC().Format(time.RFC3339Nano)
				writeJSON(w, http.StatusNotFound, map[string]any{"data": map[string]any{"data": nil, "metadata": meta}})
				return
			}
			writeJSON(w, http.StatusOK, map[string]any{"request_id": "r", "data": map[string]any{"data": data, "metadata": meta}})
		case http.MethodPut, http.MethodPost:
			var body struct {
				Data    map[string]any `json:"data"`
				Options struct {
					CAS *int `json:"cas"`
				} `json:"options"`
			}
			if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Data == nil {
				vaultErrors(w, http.StatusBadRequest, "no data provided")
				return
			}
			// Check-and-set: the write happens only when cas is the current
			// version (0: no entry), as KV v2 does.
			if cas := body.Options.CAS; cas != nil {
				current := 0
				if e := h.entries[p]; e != nil {
					current = len(e.versions)
				}
				if *cas != current {
					vaultErrors(w, http.StatusBadRequest, "check-and-set parameter did not match the current version")
					return
				}
			}
			e := h.entries[p]
			if e == nil {
				e = &kvEntry{}
				h.entries[p] = e
			}
			e.versions = append(e.versions, body.Data)
			writeJSON(w, http.StatusOK, map[string]any{"request_id": "r", "data": versionMeta(len(e.versions))})
		default:
			vaultErrors(w, http.StatusMethodNotAllowed, "unsupported operation")
		}
	case strings.HasPrefix(rest, "metadata/"):
		p := strings.TrimPrefix(rest, "metadata/")
		switch r.Method {
		case http.MethodDelete:
			delete(h.entries, p)
			w.WriteHeader(http.StatusNoContent)
		case http.MethodGet:
			e := h.entries[p]
			if e == nil {
				vaultErrors(w, http.StatusNotFound)
				return
			}
			versions := map[string]any{}
			for i := range e.versions {
				versions[strconv.Itoa(i+1)] = versionMeta(i + 1)
			}
			writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{
				"current_version": len(e.versions), "oldest_version": 1, "versions": versions,
				"created_time": time.Now().UTC().Format(time.RFC3339Nano), "updated_time": time.Now().UTC().Format(time.RFC3339Nano),
				"max_versions": 0, "cas_required": false, "delete_version_after": "0s", "custom_metadata": nil}})
		default:
			vaultErrors(w, http.StatusMethodNotAllowed, "unsupported operation")
		}
	default:
		vaultErrors(w, http.StatusNotFound, "unsupported path")
	}
}
