package rpcproto

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/amtd-project/amtd/internal/amt"
)

// ErrNoResponse: the client relayed the request but returned nothing (rpc-go
// sends nothing when AMT is silent) in every attempt.
var ErrNoResponse = errors.New("no response from the device through the rpc client")

// RoundTrip relays one HTTP exchange with the device through the client: the
// request is serialised to raw HTTP/1.1 bytes, sent as a wsman message, and
// the client's response bytes are parsed back (rpc-protocol.md §6). Quiet
// rounds and unparsable responses are retried up to MaxAttempts, except for
// requests whose context is marked amt.NoRetry.
func (s *Session) RoundTrip(req *http.Request) (*http.Response, error) {
	raw, err := serializeRequest(req)
	if err != nil {
		return nil, err
	}
	ctx := req.Context()
	attempts := s.srv.cfg.MaxAttempts
	if amt.IsNoRetry(ctx) {
		attempts = 1
	}
	s.rmu.Lock()
	defer s.rmu.Unlock()
	var lastErr error
	for i := 0; i < attempts; i++ {
		payload, err := s.round(ctx, raw)
		if err != nil {
			if errors.Is(err, ErrNoResponse) {
				lastErr = err
				s.log.Debug("rpc: quiet round", "attempt", i+1)
				continue
			}
			return nil, err
		}
		resp, err := parseResponse(payload, req)
		if err != nil {
			lastErr = fmt.Errorf("unparsable device response: %w", err)
			s.log.Info("rpc: unparsable response", "attempt", i+1, "err", err)
			continue
		}
		return resp, nil
	}
	return nil, lastErr
}

// round sends one wsman message and waits for the response.
func (s *Session) round(ctx context.Context, raw []byte) ([]byte, error) {
	// A late answer to an earlier attempt must not be taken for this one.
	select {
	case <-s.resp:
	default:
	}
	s.rounds++
	if err := s.write(s.srv.newMessage(MethodWSMAN, "ok", "", b64(raw))); err != nil {
		return nil, fmt.Errorf("sending to rpc client: %w", err)
	}
	t := time.NewTimer(s.srv.cfg.RoundTimeout)
	defer t.Stop()
	select {
	case p := <-s.resp:
		if len(p) == 0 {
			return nil, ErrNoResponse
		}
		return p, nil
	case <-t.C:
		return nil, ErrNoResponse
	case <-s.readDone:
		return nil, ErrClientGone
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// serializeRequest writes the request as AMT expects it from a relay:
// Content-Length body, Connection: close (rpc-go reads to EOF), Host carrying
// the endpoint's host (the device UUID).
func serializeRequest(req *http.Request) ([]byte, error) {
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		body = b
	}
	var buf bytes.Buffer
	path := req.URL.RequestURI()
	if path == "" {
		path = "/wsman"
	}
	fmt.Fprintf(&buf, "%s %s HTTP/1.1\r\n", req.Method, path)
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	fmt.Fprintf(&buf, "Host: %s\r\n", host)
	for _, k := range []string{"Authorization", "Content-Type"} {
		if v := req.Header.Get(k); v != "" {
			fmt.Fprintf(&buf, "%s: %s\r\n", k, v)
		}
	}
	buf.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n")
	buf.WriteString("Connection: close\r\n\r\n")
	buf.Write(body)
	return buf.Bytes(), nil
}

// parseResponse reads a complete HTTP/1.1 response (chunked or not) and
// returns it with its body fully buffered.
func parseResponse(raw []byte, req *http.Request) (*http.Response, error) {
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.TransferEncoding = nil
	return resp, nil
}
