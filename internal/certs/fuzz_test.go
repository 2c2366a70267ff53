package certs

import (
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/testutil/testpki"
)

// FuzzCheckPFX feeds arbitrary bytes to CheckPFX: it must return a report
// without panicking, and a report without errors must carry a chain and a key.
func FuzzCheckPFX(f *testing.F) {
	good := testpki.NewChain(testpki.ChainOptions{Intermediate: true})
	f.Add(good.PFX(pw, false))
	f.Add(good.PFX(pw, true))
	f.Add(testpki.NewChain(testpki.ChainOptions{NoKey: true}).PFX(pw, true))
	f.Add(good.Leaf.Raw)
	f.Add([]byte{})
	f.Add([]byte("test"))
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x03})
	at := time.Now()
	f.Fuzz(func(t *testing.T, data []byte) {
		r := CheckPFX(data, pw, "example.com", at)
		if r == nil {
			t.Fatal("nil report")
		}
		if r.OK() && (len(r.Chain) == 0 || r.PrivateKey == nil) {
			t.Fatalf("report without errors lacks chain or key: %v", r)
		}
		for _, fd := range append(r.Errors, r.Warnings...) {
			if fd.Code == "" || fd.Message == "" {
				t.Fatalf("empty finding %+v", fd)
			}
		}
		_ = r.String()
		_ = ChainDER(r)
	})
}
