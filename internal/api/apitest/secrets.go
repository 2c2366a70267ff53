package apitest

import (
	"context"
	"maps"
	"sort"
	"strings"
	"sync"

	"github.com/amtd-project/amtd/internal/secrets"
	"github.com/amtd-project/amtd/internal/store"
)

// OpenSecrets opens the secret store of a data folder.
//
// TODO(api): switch to the sealed local backend (internal/secrets/local)
// when it lands; until then an in-memory store stands in, which keeps
// secrets out of the database by construction.
func OpenSecrets(ctx context.Context, dir string, st store.Store) (secrets.Store, error) {
	return NewMemSecrets(), nil
}

// MemSecrets is an in-memory secrets.Store.
type MemSecrets struct {
	mu   sync.Mutex
	data map[string]map[string]string
}

// NewMemSecrets returns an empty store.
func NewMemSecrets() *MemSecrets { return &MemSecrets{data: map[string]map[string]string{}} }

func (m *MemSecrets) Name() string { return "MEMORY" }

func (m *MemSecrets) Get(ctx context.Context, key string) (map[string]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.data[key]
	if !ok {
		return nil, secrets.ErrNotFound
	}
	return maps.Clone(v), nil
}

func (m *MemSecrets) Put(ctx context.Context, key string, data map[string]string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.data[key] = maps.Clone(data)
	return nil
}

func (m *MemSecrets) Delete(ctx context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.data, key)
	return nil
}

func (m *MemSecrets) Health(ctx context.Context) (map[string]any, error) {
	return map[string]any{"initialized": true, "sealed": false}, nil
}

// Keys lists the stored keys (for tests).
func (m *MemSecrets) Keys() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.data))
	for k := range m.data {
		out = append(out, k)
	}
	return out
}

// Tracking wraps a secrets.Store and keeps the set of keys written and not
// deleted since it was created, so tests can see exactly which entries the
// server holds, whatever the backend.
type Tracking struct {
	secrets.Store
	mu   sync.Mutex
	live map[string]bool
}

// NewTracking wraps inner.
func NewTracking(inner secrets.Store) *Tracking {
	return &Tracking{Store: inner, live: map[string]bool{}}
}

func (t *Tracking) Put(ctx context.Context, key string, data map[string]string) error {
	err := t.Store.Put(ctx, key, data)
	if err == nil {
		t.mu.Lock()
		t.live[key] = true
		t.mu.Unlock()
	}
	return err
}

func (t *Tracking) Delete(ctx context.Context, key string) error {
	err := t.Store.Delete(ctx, key)
	if err == nil {
		t.mu.Lock()
		delete(t.live, key)
		t.mu.Unlock()
	}
	return err
}

// Live returns the keys written through t and not deleted, sorted, minus
// those with the given prefixes.
func (t *Tracking) Live(exceptPrefixes ...string) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for k := range t.live {
		skip := false
		for _, p := range exceptPrefixes {
			if strings.HasPrefix(k, p) {
				skip = true
			}
		}
		if !skip {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
