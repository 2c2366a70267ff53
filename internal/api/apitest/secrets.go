package apitest

import (
	"context"
	"sort"
	"strings"
	"sync"

	"github.com/amtd-project/amtd/internal/secrets"
	"github.com/amtd-project/amtd/internal/secrets/local"
	"github.com/amtd-project/amtd/internal/store"
)

// OpenSecrets opens the data folder's sealed local secret store (the
// master key file is created in dir on first use), as `amtd serve` does.
func OpenSecrets(ctx context.Context, dir string, st store.Store) (secrets.Store, error) {
	key, err := local.LoadOrCreateMasterKey(dir, "")
	if err != nil {
		return nil, err
	}
	return local.New(st, key)
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

func (t *Tracking) Create(ctx context.Context, key string, data map[string]string) error {
	err := t.Store.Create(ctx, key, data)
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
