package server

import (
	"bytes"
	"context"
	"encoding/hex"
	"net"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/legacy/hello"
)

const pskExampleHex = "0100020000000000" + "4b529b93d413181de4871c697a6b7a2b" + "4142434431323334"

// Each byte arrives in its own read: the hello is reassembled (MeshCentral
// kept only the first segment).
func TestReadHelloReassemblesSegments(t *testing.T) {
	msg, _ := hex.DecodeString(pskExampleHex)
	srv, cli := net.Pipe()
	defer cli.Close()
	go func() {
		for i := range msg {
			if _, err := cli.Write(msg[i : i+1]); err != nil {
				return
			}
		}
	}()
	r := readHello(context.Background(), srv, 5*time.Second)
	if r.kind != gotHello || r.hello.PID != "ABCD1234" || r.hello.Version != 2 || r.bytes != len(msg) {
		t.Fatalf("read = %+v", r)
	}
}

func TestClassify(t *testing.T) {
	psk, _ := hex.DecodeString(pskExampleHex)
	cases := []struct {
		name string
		in   []byte
		want kind
		n    int
	}{
		{"empty", nil, needMore, 0},
		{"G", []byte("G"), needMore, 0},
		{"GET without end", []byte("GET / HTTP/1.1\r\n"), needMore, 0},
		{"GET", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), gotGET, 0},
		{"GET with bare LF", []byte("GET /\n\n"), gotGET, 0},
		{"POST is not a hello", []byte("POST / HTTP/1.1\r\n"), invalid, 0},
		{"half a PSK hello", psk[:16], needMore, 0},
		{"PSK hello", psk, gotHello, 32},
		{"PSK hello with trailing bytes", append(bytes.Clone(psk), 1, 2, 3), gotHello, 32},
		{"too large", bytes.Repeat([]byte("GET "), MaxRead/4+1), tooLarge, 0},
	}
	for _, c := range cases {
		k, n, _ := classify(c.in)
		if k != c.want || n != c.n {
			t.Errorf("%s: classify = %d, %d; want %d, %d", c.name, k, n, c.want, c.n)
		}
	}
}

// FuzzClassify checks the listener's own read-path decisions on arbitrary
// bytes: a hello is announced only when Parse accepts exactly those bytes, a
// decision never changes as more bytes arrive (except that a GET prefix
// stays undecided until its header ends), and nothing past MaxRead is needed.
func FuzzClassify(f *testing.F) {
	psk, _ := hex.DecodeString(pskExampleHex)
	f.Add(psk)
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add([]byte{1, 0, 3, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 1, 1, 20})
	f.Add([]byte{0, 0, 3, 0, 5, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		var decided kind = needMore
		decidedAt := -1
		for i := 0; i <= min(len(in), MaxRead); i++ {
			k, n, err := classify(in[:i])
			if k == invalid && err == nil {
				t.Fatalf("invalid without a reason at %d", i)
			}
			if k == gotHello {
				h, perr := hello.Parse(in[:n])
				if perr != nil || n > i {
					t.Fatalf("hello announced at %d with n=%d but Parse says %v", i, n, perr)
				}
				if h.Version != hello.VersionPSK && h.Version != hello.VersionPKI {
					t.Fatalf("version %d", h.Version)
				}
			}
			if decided != needMore && k != decided {
				t.Fatalf("decision changed from %d (at %d) to %d at %d", decided, decidedAt, k, i)
			}
			if k != needMore && decided == needMore {
				decided, decidedAt = k, i
			}
		}
		if len(in) > MaxRead {
			if k, _, _ := classify(in[:MaxRead+1]); decided == needMore && k != tooLarge {
				t.Fatalf("undecided after MaxRead bytes: %d", k)
			}
		}
	})
}
