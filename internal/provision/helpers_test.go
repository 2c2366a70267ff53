package provision

import (
	"bytes"
	"context"
	"crypto"
	"crypto/md5"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/rpcproto"
	"github.com/amtd-project/amtd/internal/testutil/testpki"
)

func TestSuffixCandidates(t *testing.T) {
	cases := map[string][]string{
		"a.b.corp.com":  {"a.b.corp.com", "b.corp.com", "corp.com"},
		"Corp.COM.":     {"corp.com"},
		" x.example. ":  {"x.example"},
		"localdomain":   {"localdomain"},
		"":              nil,
		"a.b.c.d.co.uk": {"a.b.c.d.co.uk", "b.c.d.co.uk", "c.d.co.uk", "d.co.uk", "co.uk"},
	}
	for in, want := range cases {
		if got := suffixCandidates(in); !slices.Equal(got, want) {
			t.Errorf("suffixCandidates(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestCheckAMTVersion(t *testing.T) {
	p := func(ver, build string) *rpcproto.Payload {
		return &rpcproto.Payload{Ver: ver, Build: build, UUID: "4c4c4544-0038-4b10-8052-b4c04f564433"}
	}
	cases := []struct {
		ver, build, want string
	}{
		{"16.1.25", "2050", ""},
		{"6.2.10", "3000", "Device 4c4c4544-0038-4b10-8052-b4c04f564433 activation failed. AMT version: 6.2.10. Version less than 7 cannot be remotely configured "},
		{"11.6.0", "2999", "Device 4c4c4544-0038-4b10-8052-b4c04f564433 activation failed. Please check with your OEM for a firmware update."},
		{"11.6.0", "3000", ""},
		{"11.8.50", "1000", ""}, // not in RPS's list
		{"7.0", "100", "Device 4c4c4544-0038-4b10-8052-b4c04f564433 activation failed. Please check with your OEM for a firmware update."},
		{"garbage", "1", "Device 4c4c4544-0038-4b10-8052-b4c04f564433 activation failed. AMT version: garbage. Version less than 7 cannot be remotely configured "},
	}
	for _, c := range cases {
		if got := checkAMTVersion(p(c.ver, c.build), "activation"); got != c.want {
			t.Errorf("%s/%s: %q, want %q", c.ver, c.build, got, c.want)
		}
	}
	if got := checkAMTVersion(p("5", "1"), "deactivation"); got != "Device 4c4c4544-0038-4b10-8052-b4c04f564433 deactivation failed. AMT version: 5. Version less than 7 cannot be remotely configured " {
		t.Errorf("deactivation wording: %q", got)
	}
}

func TestRandomPassword(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		pw, err := RandomPassword(nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(pw) != 16 || !ValidAMTPassword(pw) || !strongPassword(pw) {
			t.Fatalf("password %q does not meet the rules", pw)
		}
		for _, c := range pw {
			if !bytes.ContainsRune([]byte(passwordAlphabet), c) {
				t.Fatalf("password %q has %q outside RPS's alphabet", pw, c)
			}
		}
		seen[pw] = true
	}
	if len(seen) < 200 {
		t.Fatal("repeated random passwords")
	}
	for pw, ok := range map[string]bool{"P@ssw0rd": true, "password": false, "P@ss:w0rd": false, "Sh0rt!": false, "NoDigits!!": false, "P@ssw0rd" + string(make([]byte, 30)): false} {
		if ValidAMTPassword(pw) != ok {
			t.Errorf("ValidAMTPassword(%q) != %v", pw, ok)
		}
	}
}

func TestDigestHelpers(t *testing.T) {
	realm := "Digest:0A1B2C3D4E5F60718293A4B5C6D7E8F9"
	if !validRealm(realm) || validRealm("Digest:xyz") || validRealm("0A1B2C3D4E5F60718293A4B5C6D7E8F9") || validRealm("Digest:0A1B2C3D4E5F60718293A4B5C6D7E8FZ") {
		t.Fatal("validRealm")
	}
	sum := md5.Sum([]byte("admin:" + realm + ":P@ssw0rd"))
	if got := aclDigestPassword("admin", realm, "P@ssw0rd"); got != base64.StdEncoding.EncodeToString(sum[:]) {
		t.Fatalf("aclDigestPassword %s", got)
	}
}

func TestSignNonces(t *testing.T) {
	key := testpki.Key(2048, testpki.SlotLeaf)
	fw := bytes.Repeat([]byte{7}, 20)
	mc64, sig64, err := signNonces(nil2rand(), key, fw)
	if err != nil {
		t.Fatal(err)
	}
	mc, _ := base64.StdEncoding.DecodeString(mc64)
	sig, _ := base64.StdEncoding.DecodeString(sig64)
	if len(mc) != 20 {
		t.Fatalf("mcNonce length %d", len(mc))
	}
	h := sha256.Sum256(append(append([]byte{}, fw...), mc...))
	if err := rsa.VerifyPKCS1v15(key.Public().(*rsa.PublicKey), crypto.SHA256, h[:], sig); err != nil {
		t.Fatalf("signature does not verify over fwNonce‖mcNonce with SHA-256: %v", err)
	}
}

func nil2rand() *bytes.Reader { return bytes.NewReader(bytes.Repeat([]byte{0x5a}, 4096)) }

func TestParseDeviceKey(t *testing.T) {
	pub := testpki.Key(2048, testpki.SlotOther).Public().(*rsa.PublicKey)
	pkcs1 := base64.StdEncoding.EncodeToString(x509.MarshalPKCS1PublicKey(pub))
	spkiDER, _ := x509.MarshalPKIXPublicKey(pub)
	for _, in := range []string{pkcs1, base64.StdEncoding.EncodeToString(spkiDER)} {
		k, err := parseDeviceKey(in)
		if err != nil || !k.(*rsa.PublicKey).Equal(pub) {
			t.Fatalf("parseDeviceKey: %v", err)
		}
	}
	if _, err := parseDeviceKey("not base64!"); err == nil {
		t.Fatal("garbage accepted")
	}
	if _, err := parseDeviceKey(base64.StdEncoding.EncodeToString([]byte("xx"))); err == nil {
		t.Fatal("non-key accepted")
	}
}

// TestDeviceLocks: one device's sessions are serialised; other devices are
// never delayed by it.
func TestDeviceLocks(t *testing.T) {
	l := newDeviceLocks()
	ctx := context.Background()
	unlockA, err := l.lock(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	// Another device proceeds while "a" is held.
	unlockB, err := l.lock(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	unlockB()
	// A second session for "a" waits, and gives up with its context.
	tctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	if _, err := l.lock(tctx, "a"); err == nil {
		t.Fatal("second lock on the same device acquired")
	}
	cancel()
	got := make(chan struct{})
	go func() {
		u, err := l.lock(ctx, "a")
		if err == nil {
			u()
		}
		close(got)
	}()
	unlockA()
	<-got
	// Many devices in parallel; the map is empty afterwards.
	var wg sync.WaitGroup
	for i := range 500 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u, err := l.lock(ctx, string(rune('A'+i%50)))
			if err != nil {
				t.Error(err)
				return
			}
			u()
		}()
	}
	wg.Wait()
	for i := range l.shards {
		if n := len(l.shards[i].m); n != 0 {
			t.Fatalf("shard %d keeps %d locks", i, n)
		}
	}
}

func TestErrorText(t *testing.T) {
	if got := errorText(errString("wsman.Client post received: 401 Unauthorized\n<html>secret page</html>")); got != "Unable to authenticate with AMT" {
		t.Fatalf("401: %q", got)
	}
	if got := errorText(errString("wsman.Client post received: 500 Internal Server Error\n<html>x</html>")); got != "device answered HTTP 500 Internal Server Error" {
		t.Fatalf("500: %q", got)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// Fuzz targets for what the engine parses from the network: the device's
// public key (AMT_PublicPrivateKeyPair.DERKey) and the first message's
// version and DNS suffix.

func FuzzParseDeviceKey(f *testing.F) {
	pub := testpki.Key(2048, testpki.SlotOther).Public().(*rsa.PublicKey)
	f.Add(base64.StdEncoding.EncodeToString(x509.MarshalPKCS1PublicKey(pub)))
	f.Add("")
	f.Add("MAA=")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := parseDeviceKey(s)
		if err == nil && k == nil {
			t.Fatal("nil key without error")
		}
	})
}

func FuzzPayloadVersionAndSuffix(f *testing.F) {
	f.Add("16.1.25", "2050", "a.b.corp.com")
	f.Add("11.6", "2999", "")
	f.Add("7", "x", ".")
	f.Fuzz(func(t *testing.T, ver, build, suffix string) {
		_ = checkAMTVersion(&rpcproto.Payload{Ver: ver, Build: build, UUID: "u"}, "activation")
		c := suffixCandidates(suffix)
		for i, s := range c {
			if s == "" || (i > 0 && len(s) >= len(c[i-1])) {
				t.Fatalf("candidates %q", c)
			}
		}
	})
}
