package devaccess

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
)

// lanTransport carries each HTTP exchange on a fresh TCP (and TLS)
// connection to one device endpoint, whatever the request URL's host, the
// way AMT expects (it closes the connection after every answer). The whole
// response is read before RoundTrip returns and the connection is closed,
// so nothing leaks when a caller drops a body unread (go-wsman-messages does
// for the first 401). The request's context bounds dialing, the handshake,
// writing and reading.
type lanTransport struct {
	dial    func(ctx context.Context, network, addr string) (net.Conn, error)
	addr    string      // host:port
	tls     *tls.Config // nil: plain HTTP
	maxResp int64
}

// ErrResponseTooLarge is returned for a LAN response beyond
// Options.MaxResponseBytes.
var ErrResponseTooLarge = errors.New("devaccess: response exceeds the size limit")

func (t *lanTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.roundTrip(req)
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		if ctxErr := req.Context().Err(); ctxErr != nil {
			return nil, fmt.Errorf("devaccess: %s: %w", t.addr, ctxErr)
		}
		return nil, fmt.Errorf("devaccess: %s: %w", t.addr, err)
	}
	return resp, nil
}

func (t *lanTransport) roundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	conn, err := t.dial(ctx, "tcp", t.addr)
	if err != nil {
		// Nothing reached the device: for the API it is not connected.
		return nil, fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if t.tls != nil {
		tc := tls.Client(conn, t.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		conn = tc
	}
	w := bufio.NewWriter(conn)
	out := *req
	out.Close = true
	if err := out.Write(w); err != nil {
		return nil, fmt.Errorf("writing the request: %w", err)
	}
	if err := w.Flush(); err != nil {
		return nil, fmt.Errorf("writing the request: %w", err)
	}
	lr := &io.LimitedReader{R: conn, N: t.maxResp + 1}
	resp, err := http.ReadResponse(bufio.NewReader(lr), req)
	if err != nil {
		if lr.N <= 0 {
			return nil, ErrResponseTooLarge
		}
		return nil, fmt.Errorf("reading the response: %w", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if lr.N <= 0 {
		return nil, ErrResponseTooLarge
	}
	if err != nil {
		return nil, fmt.Errorf("reading the response body: %w", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.TransferEncoding = nil
	resp.Header.Del("Transfer-Encoding")
	return resp, nil
}
