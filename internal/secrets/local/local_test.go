package local

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/amtd-project/amtd/internal/secrets"
	"github.com/amtd-project/amtd/internal/store"
	"github.com/amtd-project/amtd/internal/store/sqlstore"
)

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func openDB(t *testing.T) (*sqlstore.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "amtd.db")
	db, err := sqlstore.Open(t.Context(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

func newStore(t *testing.T, kv SealedKV, key []byte) *Store {
	t.Helper()
	s, err := New(kv, key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Known secret values; none may appear in the database files or in errors.
var secretValues = map[string]string{
	"AMT_PASSWORD":   "Amt-P@ssw0rd-7f3c9e",
	"MEBX_PASSWORD":  "M3bx-S3cret-a91b22",
	"PSK_PASSPHRASE": "wifi passphrase 5d6e7f",
	"PFX":            base64.StdEncoding.EncodeToString([]byte("pretend PFX bytes 0x30 0x82 c0ffee")),
}

func TestRoundTrip(t *testing.T) {
	ctx := t.Context()
	db, _ := openDB(t)
	s := newStore(t, db, testKey(1))
	if s.Name() != "LOCAL" {
		t.Fatalf("Name() = %q", s.Name())
	}
	h, err := s.Health(ctx)
	if err != nil || h["initialized"] != true || h["sealed"] != false {
		t.Fatalf("Health() = %v, %v", h, err)
	}

	const k = "tenants//profiles/42"
	if _, err := s.Get(ctx, k); !errors.Is(err, secrets.ErrNotFound) {
		t.Fatalf("Get missing = %v", err)
	}
	if err := s.Put(ctx, k, secretValues); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, k)
	if err != nil || !maps.Equal(got, secretValues) {
		t.Fatalf("Get = %v, %v", got, err)
	}
	// Put replaces the whole entry.
	if err := s.Put(ctx, k, map[string]string{"ONLY": "one"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(ctx, k); !maps.Equal(got, map[string]string{"ONLY": "one"}) {
		t.Fatalf("after replace %v", got)
	}
	// Empty and nil entries are empty maps.
	for _, m := range []map[string]string{{}, nil} {
		if err := s.Put(ctx, "empty", m); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Get(ctx, "empty"); err != nil || got == nil || len(got) != 0 {
			t.Fatalf("empty entry = %v, %v", got, err)
		}
	}
	if err := s.Delete(ctx, k); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, k); !errors.Is(err, secrets.ErrNotFound) {
		t.Fatalf("Get after delete = %v", err)
	}
	if err := s.Delete(ctx, k); err != nil {
		t.Fatalf("Delete missing = %v", err)
	}
}

func TestNew(t *testing.T) {
	db, _ := openDB(t)
	for _, n := range []int{0, 16, 24, 31, 33, 64} {
		if _, err := New(db, make([]byte, n)); err == nil {
			t.Errorf("New with a %d-byte key succeeded", n)
		}
	}
	if _, err := New(nil, testKey(1)); err == nil {
		t.Error("New with a nil store succeeded")
	}
}

func TestBlobFormat(t *testing.T) {
	ctx := t.Context()
	db, _ := openDB(t)
	s := newStore(t, db, testKey(1))
	data := map[string]string{"AMT_PASSWORD": "same value"}
	if err := s.Put(ctx, "a", data); err != nil {
		t.Fatal(err)
	}
	b1, _ := db.GetSealed(ctx, "a")
	if err := s.Put(ctx, "a", data); err != nil {
		t.Fatal(err)
	}
	b2, _ := db.GetSealed(ctx, "a")
	if b1[0] != 1 || b2[0] != 1 {
		t.Fatalf("version bytes %d %d", b1[0], b2[0])
	}
	if len(b1) != 1+12+len(`{"AMT_PASSWORD":"same value"}`)+16 {
		t.Fatalf("blob length %d", len(b1))
	}
	if bytes.Equal(b1[1:13], b2[1:13]) || bytes.Equal(b1, b2) {
		t.Fatal("two writes of the same value used the same nonce")
	}
}

func TestTamperAndMove(t *testing.T) {
	ctx := t.Context()
	db, _ := openDB(t)
	s := newStore(t, db, testKey(1))
	if err := s.Put(ctx, "tenants/a/profiles/1", secretValues); err != nil {
		t.Fatal(err)
	}
	blob, err := db.GetSealed(ctx, "tenants/a/profiles/1")
	if err != nil {
		t.Fatal(err)
	}
	put := func(k string, b []byte) {
		if err := db.PutSealed(ctx, k, b); err != nil {
			t.Fatal(err)
		}
	}
	flip := func(i int) []byte { c := bytes.Clone(blob); c[i] ^= 0x01; return c }
	cases := []struct {
		name string
		s    *Store
		key  string
		blob []byte
		want error
	}{
		{"moved to another key", s, "tenants/b/profiles/1", blob, ErrCannotOpen},
		{"wrong master key", newStore(t, db, testKey(2)), "tenants/a/profiles/1", blob, ErrCannotOpen},
		{"nonce altered", s, "n", flip(3), ErrCannotOpen},
		{"ciphertext altered", s, "c", flip(20), ErrCannotOpen},
		{"tag altered", s, "g", flip(len(blob) - 1), ErrCannotOpen},
		{"truncated", s, "t", blob[:20], ErrCannotOpen},
		{"empty", s, "e", []byte{}, ErrCannotOpen},
		{"unknown version", s, "v", append([]byte{2}, blob[1:]...), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.key != "tenants/a/profiles/1" {
				put(tc.key, tc.blob)
			}
			_, err := tc.s.Get(ctx, tc.key)
			if err == nil {
				t.Fatal("Get succeeded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("error = %v, want %v", err, tc.want)
			}
			assertNoSecret(t, err.Error())
		})
	}
}

func assertNoSecret(t *testing.T, text string) {
	t.Helper()
	for field, v := range secretValues {
		if strings.Contains(text, v) {
			t.Fatalf("%q contains the value of %s", text, field)
		}
	}
}

// failingKV fails every call with an error of its own.
type failingKV struct{}

func (failingKV) PutSealed(context.Context, string, []byte) error { return errors.New("disk full") }
func (failingKV) GetSealed(context.Context, string) ([]byte, error) {
	return nil, errors.New("database is locked")
}
func (failingKV) DeleteSealed(context.Context, string) error { return errors.New("read-only") }
func (failingKV) CreateSealed(context.Context, string, []byte) error {
	return errors.New("disk full")
}

func TestErrorsCarryNoValues(t *testing.T) {
	ctx := t.Context()
	s := newStore(t, failingKV{}, testKey(3))
	for _, err := range []error{
		s.Put(ctx, "k", secretValues),
		s.Create(ctx, "k", secretValues),
		func() error { _, err := s.Get(ctx, "k"); return err }(),
		s.Delete(ctx, "k"),
	} {
		if err == nil {
			t.Fatal("call on a failing store succeeded")
		}
		assertNoSecret(t, err.Error())
	}
	// A blob that decrypts to something that is not an object of strings.
	db, _ := openDB(t)
	s = newStore(t, db, testKey(3))
	blob, err := s.seal("k", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Re-seal a non-object plaintext holding a secret by hand.
	raw := []byte(`["` + secretValues["AMT_PASSWORD"] + `"]`)
	blob = s.aead.Seal(blob[:13], blob[1:13], raw, aad(formatV1, "k"))
	if err := db.PutSealed(ctx, "k", blob); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "k"); err == nil {
		t.Fatal("Get of a non-object entry succeeded")
	} else {
		assertNoSecret(t, err.Error())
	}
}

// After Put of known values, the SQLite database and its WAL hold none of
// them in plaintext (nor in hex or base64).
func TestNoPlaintextInDatabaseFiles(t *testing.T) {
	ctx := t.Context()
	db, path := openDB(t)
	s := newStore(t, db, testKey(7))
	for i, k := range []string{"tenants//profiles/1", "tenants//wireless/2", "tenants/x/devices/3"} {
		if err := s.Put(ctx, k, secretValues); err != nil {
			t.Fatal(err)
		}
		if i == 1 { // replace one, so old pages exist too
			if err := s.Put(ctx, k, secretValues); err != nil {
				t.Fatal(err)
			}
		}
	}
	for k := range map[string]bool{"tenants//profiles/1": true} {
		got, err := s.Get(ctx, k)
		if err != nil || !maps.Equal(got, secretValues) {
			t.Fatalf("Get = %v, %v", got, err)
		}
	}
	files, _ := filepath.Glob(path + "*")
	var sawWAL bool
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(f, "-wal") && len(b) > 0 {
			sawWAL = true
		}
		for field, v := range secretValues {
			for _, form := range []string{v, hex.EncodeToString([]byte(v)), base64.StdEncoding.EncodeToString([]byte(v))} {
				if bytes.Contains(b, []byte(form)) {
					t.Fatalf("%s contains the value of %s in plaintext", filepath.Base(f), field)
				}
			}
		}
		// The field names are inside the sealed JSON too.
		if bytes.Contains(b, []byte("AMT_PASSWORD")) {
			t.Fatalf("%s contains a field name in plaintext", filepath.Base(f))
		}
	}
	if !sawWAL {
		t.Fatalf("no WAL content among %v: the test would not see uncheckpointed pages", files)
	}
}

func TestConcurrentUse(t *testing.T) {
	ctx := t.Context()
	db, _ := openDB(t)
	s := newStore(t, db, testKey(9))
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := "k" + string(rune('a'+w))
			for i := range 10 {
				v := map[string]string{"V": strings.Repeat("x", i)}
				if err := s.Put(ctx, k, v); err != nil {
					errs <- err
					return
				}
				got, err := s.Get(ctx, k)
				if err != nil || !maps.Equal(got, v) {
					errs <- errors.New("read back a different value")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

var _ SealedKV = store.Store(nil)

func FuzzOpen(f *testing.F) {
	s, err := New(failingKV{}, testKey(5))
	if err != nil {
		f.Fatal(err)
	}
	// A genuine blob with a fixed nonce, identical in every fuzz worker.
	good := make([]byte, 13)
	good[0] = formatV1
	good = s.aead.Seal(good, good[1:13], []byte(`{"A":"b"}`), aad(formatV1, "k"))
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add(append([]byte{2}, good[1:]...))
	f.Fuzz(func(t *testing.T, blob []byte) {
		data, err := s.open("k", blob)
		if err == nil && !bytes.Equal(blob, good) {
			// Only a genuine seal opens; anything else is a forgery.
			t.Fatalf("forged blob opened: %v", data)
		}
	})
}

func TestCreate(t *testing.T) {
	ctx := t.Context()
	db, _ := openDB(t)
	s := newStore(t, db, testKey(1))
	const k = "system/ca"
	if err := s.Create(ctx, k, secretValues); err != nil {
		t.Fatal(err)
	}
	err := s.Create(ctx, k, map[string]string{"OTHER": "x"})
	if !errors.Is(err, secrets.ErrExists) {
		t.Fatalf("second Create = %v, want ErrExists", err)
	}
	if got, err := s.Get(ctx, k); err != nil || !maps.Equal(got, secretValues) {
		t.Fatalf("after a refused Create: %v, %v", got, err)
	}
}
