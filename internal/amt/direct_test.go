package amt

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// serveOnce answers each connection with the given raw bytes, after reading
// the request head.
func serveOnce(t *testing.T, answer string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				c.Read(buf)
				io.WriteString(c, answer)
			}()
		}
	}()
	return ln.Addr().String()
}

func direct(addr string, max int64) *DirectTransport {
	return &DirectTransport{Name: addr, MaxResponse: max, Dial: func(ctx context.Context) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	}}
}

func TestDirectTransport(t *testing.T) {
	addr := serveOnce(t, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0005\r\nhello\r\n0\r\n\r\n")
	req, _ := http.NewRequest("POST", "http://ignored:16992/wsman", strings.NewReader("<x/>"))
	resp, err := direct(addr, 0).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "hello" || resp.ContentLength != 5 || resp.Header.Get("Transfer-Encoding") != "" {
		t.Fatalf("body %q length %d", b, resp.ContentLength)
	}

	big := serveOnce(t, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"+strings.Repeat("x", 100))
	req, _ = http.NewRequest("POST", "http://ignored/wsman", strings.NewReader("<x/>"))
	if _, err := direct(big, 64).RoundTrip(req); !errors.Is(err, ErrResponseTooLarge) {
		t.Fatalf("oversized answer: %v", err)
	}

	// A device that never answers: the request's context ends the exchange.
	silent, _ := net.Listen("tcp", "127.0.0.1:0")
	defer silent.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ = http.NewRequestWithContext(ctx, "POST", "http://ignored/wsman", strings.NewReader("<x/>"))
	if _, err := direct(silent.Addr().String(), 0).RoundTrip(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("silent device: %v", err)
	}
}
