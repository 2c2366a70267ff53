// Package vault is the HashiCorp Vault (KV version 2) secret backend, for
// amtd instances sharing their secrets. It speaks to Vault with the official
// client (github.com/hashicorp/vault/api); OpenBao speaks the same protocol.
//
// An entry at key K is the KV v2 secret <Mount>/data/<Prefix>/<K'>, where K'
// is K with each path segment made safe for Vault (an empty segment — the
// default tenant "" — becomes "_"; a segment starting with "_", and "." and
// "..", get one more leading "_"). Its fields are the entry's fields, all
// strings. Put writes a new version; Delete removes every version and the
// metadata.
package vault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/amtd-project/amtd/internal/secrets"
)

// Config locates the Vault server and the KV v2 mount.
type Config struct {
	Addr   string // e.g. https://vault.example.com:8200
	Token  string // a token allowed to read, write and delete under Mount/Prefix
	Mount  string // KV v2 mount path; default "secret"
	Prefix string // folder under the mount for amtd's entries; may be empty
	// Timeout of one request to Vault when the context has no earlier
	// deadline; default 30s.
	Timeout time.Duration
}

// Store is the Vault secret store. It is safe for concurrent use.
type Store struct {
	client *vaultapi.Client
	kv     *vaultapi.KVv2
	prefix string
}

var _ secrets.Store = (*Store)(nil)

// New connects to Vault and checks that it answers (sys/health) and that it
// is initialised and unsealed.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Addr == "" {
		return nil, errors.New("vault: no address")
	}
	if cfg.Token == "" {
		return nil, errors.New("vault: no token")
	}
	mount := strings.Trim(cfg.Mount, "/")
	if mount == "" {
		mount = "secret"
	}
	vc := vaultapi.DefaultConfig()
	if vc.Error != nil {
		return nil, fmt.Errorf("vault: %w", vc.Error)
	}
	vc.Address = cfg.Addr
	vc.Timeout = cfg.Timeout
	if vc.Timeout <= 0 {
		vc.Timeout = 30 * time.Second
	}
	client, err := vaultapi.NewClient(vc)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	// Only what Config says: no VAULT_* environment (NewClient reads
	// VAULT_TOKEN and VAULT_NAMESPACE).
	client.SetToken(cfg.Token)
	client.ClearNamespace()
	s := &Store{client: client, kv: client.KVv2(mount), prefix: strings.Trim(cfg.Prefix, "/")}

	h, err := s.Health(ctx)
	if err != nil {
		return nil, err
	}
	if h["initialized"] != true || h["sealed"] != false {
		return nil, fmt.Errorf("vault: server at %s is not ready (initialized=%v, sealed=%v)",
			cfg.Addr, h["initialized"], h["sealed"])
	}
	return s, nil
}

// Name is "VAULT".
func (s *Store) Name() string { return "VAULT" }

// path maps an entry key to the secret path under the mount.
func (s *Store) path(key string) string {
	segs := strings.Split(key, "/")
	for i, seg := range segs {
		segs[i] = escapeSegment(seg)
	}
	p := strings.Join(segs, "/")
	if s.prefix != "" {
		p = s.prefix + "/" + p
	}
	return p
}

// escapeSegment makes one key segment a valid, distinct Vault path segment.
func escapeSegment(seg string) string {
	switch {
	case seg == "":
		return "_"
	case strings.HasPrefix(seg, "_"), seg == ".", seg == "..":
		return "_" + seg
	default:
		return seg
	}
}

// Get reads the latest version of the entry; secrets.ErrNotFound when there
// is none (or it was deleted).
func (s *Store) Get(ctx context.Context, key string) (map[string]string, error) {
	sec, err := s.kv.Get(ctx, s.path(key))
	if errors.Is(err, vaultapi.ErrSecretNotFound) {
		return nil, secrets.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("vault: get %s: %w", key, err)
	}
	if sec == nil || sec.Data == nil {
		return nil, secrets.ErrNotFound
	}
	out := make(map[string]string, len(sec.Data))
	for field, v := range sec.Data {
		str, ok := v.(string)
		if !ok {
			// Never print the value: it is a secret even when mistyped.
			return nil, fmt.Errorf("vault: get %s: field %s is a %T, not a string", key, field, v)
		}
		out[field] = str
	}
	return out, nil
}

// Put writes data as a new version of the entry (replacing all fields).
func (s *Store) Put(ctx context.Context, key string, data map[string]string) error {
	m := make(map[string]any, len(data))
	for k, v := range data {
		m[k] = v
	}
	if _, err := s.kv.Put(ctx, s.path(key), m); err != nil {
		return fmt.Errorf("vault: put %s: %w", key, err)
	}
	return nil
}

// Create writes data as the entry's first version only if the entry does
// not exist (KV v2 check-and-set with cas=0; secrets.ErrExists otherwise).
func (s *Store) Create(ctx context.Context, key string, data map[string]string) error {
	m := make(map[string]any, len(data))
	for k, v := range data {
		m[k] = v
	}
	_, err := s.kv.Put(ctx, s.path(key), m, vaultapi.WithCheckAndSet(0))
	var re *vaultapi.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusBadRequest && slices.ContainsFunc(re.Errors, func(e string) bool {
		return strings.Contains(e, "check-and-set parameter did not match")
	}) {
		return fmt.Errorf("vault: create %s: %w", key, secrets.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("vault: create %s: %w", key, err)
	}
	return nil
}

// Delete removes every version of the entry and its metadata; a missing entry
// is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := s.kv.DeleteMetadata(ctx, s.path(key)); err != nil {
		return fmt.Errorf("vault: delete %s: %w", key, err)
	}
	return nil
}

// Health returns Vault's sys/health?standbyok=true answer as a map
// (initialized, sealed, standby, version, cluster_name, …). Whatever state
// the server is in, its JSON is returned; an error means no usable answer.
func (s *Store) Health(ctx context.Context) (map[string]any, error) {
	q := url.Values{"standbyok": {"true"}, "perfstandbyok": {"true"}}
	// Status codes ≥ 400 become errors in the client: ask for 2xx in every
	// state and read the state from the body, like the client's own Health.
	for _, p := range []string{"uninitcode", "sealedcode", "standbycode", "drsecondarycode",
		"performancestandbycode", "removedcode", "haunhealthycode"} {
		q.Set(p, "299")
	}
	resp, err := s.client.Logical().ReadRawWithDataWithContext(ctx, "sys/health", q)
	if resp != nil {
		defer resp.Body.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("vault: health: %w", err)
	}
	var out map[string]any
	if err := resp.DecodeJSON(&out); err != nil {
		return nil, fmt.Errorf("vault: health: %w", err)
	}
	if out == nil {
		return nil, errors.New("vault: health: empty answer")
	}
	return out, nil
}
