package cira

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"unsafe"
)

// The release of tls.Conn's idle input buffer works with the crypto/tls
// linked in, and the connection keeps working afterwards. If this fails
// after a Go upgrade, idle connections cost ~17 KiB more after their first
// large record (see tlsbuf.go).
func TestTLSBufferRelease(t *testing.T) {
	if !tlsInputs.ok {
		t.Fatal("crypto/tls.Conn's rawInput/input/hand fields not found: the idle buffer release is off")
	}
	p := getPKI(t)
	a, b := net.Pipe()
	srv := tls.Server(a, TLSConfig(&p.cert, nil, false))
	cli := tls.Client(b, &tls.Config{RootCAs: p.roots, ServerName: "cira.test", DynamicRecordSizingDisabled: true,
		MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256}})
	defer srv.Close()
	defer cli.Close()

	big := bytes.Repeat([]byte("0123456789abcdef"), 1000) // one 16000-byte record
	errc := make(chan error, 1)
	go func() {
		_, err := cli.Write(big)
		if err == nil {
			_, err = cli.Write([]byte("after"))
		}
		errc <- err
	}()
	got := make([]byte, len(big))
	if _, err := io.ReadFull(srv, got); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("read: %v", err)
	}
	raw := (*bytes.Buffer)(unsafe.Add(unsafe.Pointer(srv), tlsInputs.rawInput))
	if raw.Cap() < len(big) {
		t.Fatalf("rawInput capacity %d after a %d-byte record", raw.Cap(), len(big))
	}
	if !releaseTLSInput(srv) || raw.Cap() != 0 {
		t.Fatalf("not released: capacity %d", raw.Cap())
	}
	// Reading and writing go on.
	small := make([]byte, 5)
	if _, err := io.ReadFull(srv, small); err != nil || string(small) != "after" {
		t.Fatalf("read after release: %q %v", small, err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	go srv.Write([]byte("reply"))
	if _, err := io.ReadFull(cli, small); err != nil || string(small) != "reply" {
		t.Fatalf("write after release: %q %v", small, err)
	}
	// Nothing is released while a record is partly buffered.
	go cli.Write(big)
	if _, err := io.ReadFull(srv, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	if releaseTLSInput(srv) {
		t.Fatal("released a buffer holding unread data")
	}
	rest := make([]byte, len(big)-10)
	if _, err := io.ReadFull(srv, rest); err != nil || !bytes.Equal(rest, big[10:]) {
		t.Fatalf("data after a refused release: %v", err)
	}
}
