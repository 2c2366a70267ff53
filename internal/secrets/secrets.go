// Package secrets keeps every password, passphrase, PSK, PFX and private key
// amtd holds: sealed locally with AES-256-GCM under a master key (default), or
// in HashiCorp Vault KV v2.
package secrets

import (
	"context"
	"errors"
)

// ErrNotFound is returned by Get when no secret exists at the key.
var ErrNotFound = errors.New("secret not found")

// ErrExists is returned by Create when an entry exists at the key.
var ErrExists = errors.New("secret already exists")

// Store is a key → (field → value) secret store. Keys are slash-separated paths
// chosen by amtd, e.g. "tenants/<tenant>/profiles/<secret id>" or
// "tenants/<tenant>/devices/<guid>". Binary values are stored base64-encoded.
// Errors never contain secret values.
type Store interface {
	// Name is "LOCAL" or "VAULT" (the health report's secretStore.name).
	Name() string
	Get(ctx context.Context, key string) (map[string]string, error)
	// Put replaces the whole entry at key.
	Put(ctx context.Context, key string, data map[string]string) error
	// Create writes the entry only if none exists at key (ErrExists
	// otherwise), atomically: of several instances creating the same
	// entry at once, exactly one succeeds.
	Create(ctx context.Context, key string, data map[string]string) error
	// Delete removes the entry; deleting a missing entry is not an error.
	Delete(ctx context.Context, key string) error
	// Health reports the backend status in the shape of Vault's sys/health
	// (at least "initialized" and "sealed").
	Health(ctx context.Context) (map[string]any, error)
}
