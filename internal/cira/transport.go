package cira

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
)

// WSMANPort is the device port WS-MAN is reached on inside the tunnel
// (plain HTTP; the tunnel is already TLS, spec/mps.md §5.1).
const WSMANPort = 16992

// RoundTripper returns an http.RoundTripper that carries every request to
// the device with this UUID, whatever the request URL's host, as one HTTP/1.1
// exchange on a fresh channel to port 16992 (spec/mps.md §5):
//
//   - the request is written as is (Host header from the URL, e.g.
//     "<uuid>:16992", Content-Length or chunked body) with
//     "Connection: close";
//   - the response is read with http.ReadResponse, body included (at most
//     Config.MaxResponseBytes), and the channel is closed before RoundTrip
//     returns, so the device's channel and the WS-MAN slot are released even
//     when a caller never closes the body (go-wsman-messages v2.50.1 drops
//     the body of the first 401 unclosed);
//   - at most Config.WSMANConcurrency exchanges run at once per device,
//     later ones wait for a slot; there is no rate limit;
//   - the request's context bounds everything: waiting for a slot, opening
//     the channel, writing and reading. When it ends the channel is closed
//     and RoundTrip returns the context's error.
//
// If the device is not connected RoundTrip fails with ErrNotConnected. It is
// safe for concurrent use. Use with go-wsman-messages:
//
//	wsman.NewMessages(client.Parameters{Target: uuid, Username: "admin",
//	    Password: pw, UseDigest: true, Transport: srv.RoundTripper(uuid)})
func (s *Server) RoundTripper(uuid string) http.RoundTripper {
	return &roundTripper{s: s, uuid: uuid}
}

// Transport returns an http.RoundTripper like RoundTripper that takes the
// device UUID from each request's URL host (go-wsman-messages builds
// "http://<Target>:16992/wsman", so Target must be the UUID).
func (s *Server) Transport() http.RoundTripper { return &roundTripper{s: s} }

type roundTripper struct {
	s    *Server
	uuid string // "" = from the request URL
}

// ErrTLSInTunnel is returned for https requests: WS-MAN through CIRA is
// plain HTTP to 16992 inside the TLS tunnel.
var ErrTLSInTunnel = errors.New("cira: https inside the CIRA tunnel is not supported")

var (
	bufWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, maxSegment) }}
	bufReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}
)

func (t *roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.roundTrip(req)
	if err != nil && req.Body != nil {
		req.Body.Close()
	}
	return resp, err
}

func (t *roundTripper) roundTrip(req *http.Request) (*http.Response, error) {
	if req.URL == nil {
		return nil, errors.New("cira: request has no URL")
	}
	if req.URL.Scheme == "https" {
		return nil, ErrTLSInTunnel
	}
	uuid := t.uuid
	if uuid == "" {
		uuid = req.URL.Hostname()
	}
	c, err := t.s.lookup(uuid)
	if err != nil {
		return nil, err
	}
	ctx := req.Context()
	release, err := c.acquireWSMAN(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	ch, err := c.open(ctx, WSMANPort)
	if err != nil {
		return nil, err
	}
	defer ch.Close()
	stop := context.AfterFunc(ctx, func() { ch.Close() })
	defer stop()

	resp, err := t.exchange(ch, req)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("cira: %s: %w", uuid, ctxErr)
		}
		return nil, fmt.Errorf("cira: %s: %w", uuid, err)
	}
	return resp, nil
}

// exchange writes req on ch and reads the whole response.
func (t *roundTripper) exchange(ch *Channel, req *http.Request) (*http.Response, error) {
	w := bufWriters.Get().(*bufio.Writer)
	w.Reset(ch)
	out := *req // shallow: only Close differs
	out.Close = true
	err := out.Write(w) // closes req.Body
	if err == nil {
		err = w.Flush()
	}
	w.Reset(nil)
	bufWriters.Put(w)
	if err != nil {
		return nil, fmt.Errorf("writing the request: %w", err)
	}

	limit := &limitedReader{r: ch, n: t.s.cfg.MaxResponseBytes}
	r := bufReaders.Get().(*bufio.Reader)
	r.Reset(limit)
	defer func() {
		r.Reset(nil)
		bufReaders.Put(r)
	}()
	resp, err := http.ReadResponse(r, req)
	if err != nil {
		return nil, fmt.Errorf("reading the response: %w", limit.explain(err))
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("reading the response body: %w", limit.explain(err))
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.TransferEncoding = nil
	resp.Header.Del("Transfer-Encoding")
	resp.Uncompressed = false
	return resp, nil
}

// ErrResponseTooLarge is returned when a response exceeds
// Config.MaxResponseBytes.
var ErrResponseTooLarge = errors.New("cira: response exceeds the size limit")

type limitedReader struct {
	r        io.Reader
	n        int64
	exceeded bool
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		l.exceeded = true
		return 0, ErrResponseTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

func (l *limitedReader) explain(err error) error {
	if l.exceeded {
		return ErrResponseTooLarge
	}
	return err
}
