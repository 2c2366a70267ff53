package amt

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
)

// ErrResponseTooLarge is returned for an answer beyond the size limit.
var ErrResponseTooLarge = errors.New("amt: response exceeds the size limit")

// DefaultMaxResponse bounds one WS-MAN answer read from a device.
const DefaultMaxResponse = 4 << 20

// DirectTransport reaches a device over a connection of its own per HTTP
// exchange, whatever the request URL's host — the way AMT expects on 16992 and
// 16993 (it closes the connection after every answer). The whole response is
// read before RoundTrip returns and the connection is closed, so nothing
// leaks when a caller drops a body unread (go-wsman-messages does for the
// first 401). The request's context bounds dialing, writing and reading.
type DirectTransport struct {
	// Name identifies the endpoint in errors (e.g. "192.0.2.7:16993").
	Name string
	// Dial returns a connection ready for HTTP: connected and, for TLS or
	// TLS-PSK, handshaken.
	Dial func(ctx context.Context) (net.Conn, error)
	// MaxResponse bounds the answer (default DefaultMaxResponse).
	MaxResponse int64
}

// RoundTrip performs one exchange.
func (t *DirectTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.roundTrip(req)
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		if ctxErr := req.Context().Err(); ctxErr != nil {
			return nil, fmt.Errorf("%s: %w", t.Name, ctxErr)
		}
		return nil, fmt.Errorf("%s: %w", t.Name, err)
	}
	return resp, nil
}

func (t *DirectTransport) roundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	conn, err := t.Dial(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	w := bufio.NewWriter(conn)
	out := *req
	out.Close = true
	if err := out.Write(w); err != nil {
		return nil, fmt.Errorf("writing the request: %w", err)
	}
	if err := w.Flush(); err != nil {
		return nil, fmt.Errorf("writing the request: %w", err)
	}
	max := t.MaxResponse
	if max <= 0 {
		max = DefaultMaxResponse
	}
	lr := &io.LimitedReader{R: conn, N: max + 1}
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
