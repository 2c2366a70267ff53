// Package local is amtd's default secret backend: every entry is sealed with
// AES-256-GCM under a master key and kept as an opaque blob in the store
// (store.Store's Sealed methods), so the database never holds a secret in
// plaintext.
//
// Blob format (version 1):
//
//	byte 0      format version (1)
//	bytes 1–12  random nonce
//	bytes 13–   AES-256-GCM ciphertext of the JSON object {field: value}, with its 16-byte tag
//
// The additional authenticated data is the version byte followed by the
// entry's key, so a blob copied to another key, or relabelled with another
// version, fails to open.
package local

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/amtd-project/amtd/internal/secrets"
	"github.com/amtd-project/amtd/internal/store"
)

// SealedKV keeps opaque blobs by key; store.Store implements it.
type SealedKV interface {
	PutSealed(ctx context.Context, key string, blob []byte) error
	// CreateSealed stores blob only if there is none at key
	// (store.ErrDuplicate otherwise).
	CreateSealed(ctx context.Context, key string, blob []byte) error
	// GetSealed returns store.ErrNotFound when there is no blob at key.
	GetSealed(ctx context.Context, key string) ([]byte, error)
	// DeleteSealed returns nil when there is no blob at key.
	DeleteSealed(ctx context.Context, key string) error
}

const (
	formatV1  = 1
	nonceSize = 12
	keySize   = 32
)

// ErrCannotOpen is returned by Get when a blob does not decrypt: the master
// key is not the one it was sealed with, or the blob was altered or moved.
var ErrCannotOpen = errors.New("sealed secret cannot be opened (wrong master key, or altered or moved blob)")

// Store is the sealed local secret store. It is safe for concurrent use.
type Store struct {
	kv   SealedKV
	aead cipher.AEAD
}

var _ secrets.Store = (*Store)(nil)

// New returns a Store sealing entries in kv under masterKey (32 bytes).
func New(kv SealedKV, masterKey []byte) (*Store, error) {
	if kv == nil {
		return nil, errors.New("local secrets: nil store")
	}
	if len(masterKey) != keySize {
		return nil, fmt.Errorf("local secrets: master key must be %d bytes, got %d", keySize, len(masterKey))
	}
	block, err := aes.NewCipher(masterKey)
	if err != nil {
		return nil, fmt.Errorf("local secrets: %w", err)
	}
	aead, err := cipher.NewGCMWithNonceSize(block, nonceSize)
	if err != nil {
		return nil, fmt.Errorf("local secrets: %w", err)
	}
	return &Store{kv: kv, aead: aead}, nil
}

// Name is "LOCAL".
func (s *Store) Name() string { return "LOCAL" }

// Health reports the store as initialised and unsealed, the shape of Vault's
// sys/health that clients check.
func (s *Store) Health(ctx context.Context) (map[string]any, error) {
	return map[string]any{"initialized": true, "sealed": false}, nil
}

// Get opens the entry at key; secrets.ErrNotFound when there is none.
func (s *Store) Get(ctx context.Context, key string) (map[string]string, error) {
	blob, err := s.kv.GetSealed(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, secrets.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("local secrets: get %s: %w", key, err)
	}
	data, err := s.open(key, blob)
	if err != nil {
		return nil, fmt.Errorf("local secrets: get %s: %w", key, err)
	}
	return data, nil
}

// Put seals data and stores it at key, replacing any previous entry.
func (s *Store) Put(ctx context.Context, key string, data map[string]string) error {
	blob, err := s.seal(key, data)
	if err != nil {
		return fmt.Errorf("local secrets: put %s: %w", key, err)
	}
	if err := s.kv.PutSealed(ctx, key, blob); err != nil {
		return fmt.Errorf("local secrets: put %s: %w", key, err)
	}
	return nil
}

// Create seals data and stores it at key only if no entry is there
// (secrets.ErrExists otherwise).
func (s *Store) Create(ctx context.Context, key string, data map[string]string) error {
	blob, err := s.seal(key, data)
	if err != nil {
		return fmt.Errorf("local secrets: create %s: %w", key, err)
	}
	err = s.kv.CreateSealed(ctx, key, blob)
	if errors.Is(err, store.ErrDuplicate) {
		return fmt.Errorf("local secrets: create %s: %w", key, secrets.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("local secrets: create %s: %w", key, err)
	}
	return nil
}

// Delete removes the entry at key; a missing entry is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := s.kv.DeleteSealed(ctx, key); err != nil {
		return fmt.Errorf("local secrets: delete %s: %w", key, err)
	}
	return nil
}

func aad(version byte, key string) []byte {
	b := make([]byte, 0, 1+len(key))
	b = append(b, version)
	return append(b, key...)
}

// seal encrypts the JSON of data for key.
func (s *Store) seal(key string, data map[string]string) ([]byte, error) {
	if data == nil {
		data = map[string]string{}
	}
	plain, err := json.Marshal(data)
	if err != nil {
		return nil, errors.New("cannot encode entry") // never show the values
	}
	defer clear(plain)
	blob := make([]byte, 1+nonceSize, 1+nonceSize+len(plain)+s.aead.Overhead())
	blob[0] = formatV1
	if _, err := rand.Read(blob[1 : 1+nonceSize]); err != nil {
		return nil, fmt.Errorf("random nonce: %w", err)
	}
	return s.aead.Seal(blob, blob[1:1+nonceSize], plain, aad(formatV1, key)), nil
}

// open decrypts a blob sealed for key.
func (s *Store) open(key string, blob []byte) (map[string]string, error) {
	if len(blob) < 1+nonceSize+s.aead.Overhead() {
		return nil, ErrCannotOpen
	}
	if blob[0] != formatV1 {
		return nil, fmt.Errorf("unknown sealed format version %d", blob[0])
	}
	plain, err := s.aead.Open(nil, blob[1:1+nonceSize], blob[1+nonceSize:], aad(blob[0], key))
	if err != nil {
		return nil, ErrCannotOpen
	}
	defer clear(plain)
	var data map[string]string
	if err := json.Unmarshal(plain, &data); err != nil || data == nil {
		// The JSON error could quote the plaintext: report none of it.
		return nil, errors.New("sealed entry is not a JSON object of strings")
	}
	return data, nil
}
