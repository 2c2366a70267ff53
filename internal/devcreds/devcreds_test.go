package devcreds

import (
	"context"
	"sync"
	"testing"

	"github.com/amtd-project/amtd/internal/secrets"
)

// memSecrets is a map-backed secrets.Store for this package's unit test (the
// real backends are tested in their own packages).
type memSecrets struct {
	mu sync.Mutex
	m  map[string]map[string]string
}

func (m *memSecrets) Name() string { return "MEM" }
func (m *memSecrets) Get(_ context.Context, k string) (map[string]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.m[k]
	if !ok {
		return nil, secrets.ErrNotFound
	}
	out := map[string]string{}
	for a, b := range v {
		out[a] = b
	}
	return out, nil
}
func (m *memSecrets) Put(_ context.Context, k string, v map[string]string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := map[string]string{}
	for a, b := range v {
		c[a] = b
	}
	m.m[k] = c
	return nil
}
func (m *memSecrets) Create(ctx context.Context, k string, v map[string]string) error {
	m.mu.Lock()
	_, ok := m.m[k]
	m.mu.Unlock()
	if ok {
		return secrets.ErrExists
	}
	return m.Put(ctx, k, v)
}
func (m *memSecrets) Delete(_ context.Context, k string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.m, k)
	return nil
}
func (m *memSecrets) Health(context.Context) (map[string]any, error) { return nil, nil }

func TestStageCommit(t *testing.T) {
	ctx := context.Background()
	s := &memSecrets{m: map[string]map[string]string{}}
	g := "4c4c4544-0038-4b10-8052-b4c04f564433"
	c, err := Load(ctx, s, g)
	if err != nil || len(c) != 0 {
		t.Fatalf("empty load: %v %v", c, err)
	}
	if _, err := Stage(ctx, s, g, AMT, "first"); err != nil {
		t.Fatal(err)
	}
	c, _ = Load(ctx, s, g)
	if got := c.Candidates(AMT); len(got) != 1 || got[0] != "first" || c.Current(AMT) != "" {
		t.Fatalf("after stage: %v", c)
	}
	Commit(ctx, s, g, AMT, "first")
	Stage(ctx, s, g, AMT, "second")
	c, _ = Load(ctx, s, g)
	if got := c.Candidates(AMT); len(got) != 2 || got[0] != "first" || got[1] != "second" {
		t.Fatalf("candidates %v", got)
	}
	Commit(ctx, s, g, AMT, "second")
	c, _ = Load(ctx, s, g)
	if c.Current(AMT) != "second" || c.Pending(AMT) != "" {
		t.Fatalf("after commit %v", c)
	}
	Delete(ctx, s, g)
	c, _ = Load(ctx, s, g)
	if len(c) != 0 {
		t.Fatal("not deleted")
	}
}
