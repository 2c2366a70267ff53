package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// api calls one amtd instance's REST API (started with --auth none).
type api struct {
	base string // http://host:port
	hc   *http.Client
}

func newAPI(base string) *api {
	tr := &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Minute}
	return &api{base: base, hc: &http.Client{Transport: tr, Timeout: 2 * time.Minute}}
}

// call sends a request with an optional JSON body; it returns the status,
// the body and how long the exchange took (request written to body read).
func (a *api) call(ctx context.Context, method, path string, body any) (int, []byte, time.Duration, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, 0, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, r)
	if err != nil {
		return 0, nil, 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	t0 := time.Now()
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0, nil, 0, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(t0)
	return resp.StatusCode, b, took, err
}

// must is call that wants one of the statuses (200 and 201 when none given).
func (a *api) must(ctx context.Context, method, path string, body any, want ...int) ([]byte, error) {
	if len(want) == 0 {
		want = []int{http.StatusOK, http.StatusCreated}
	}
	code, b, _, err := a.call(ctx, method, path, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	for _, w := range want {
		if code == w {
			return b, nil
		}
	}
	return b, fmt.Errorf("%s %s: status %d: %.300s", method, path, code, b)
}

// waitReady polls a public route until the instance answers.
func (a *api) waitReady(ctx context.Context, p *proc) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		code, _, _, err := a.call(ctx, http.MethodGet, "/api/v1/ciracert", nil)
		if err == nil && code == http.StatusOK {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("%s exited: %s", p.name, p.tail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer in 2 minutes: %v", p.name, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// deviceStats is GET /api/v1/devices/stats.
type deviceStats struct {
	Total        int `json:"totalCount"`
	Connected    int `json:"connectedCount"`
	Disconnected int `json:"disconnectedCount"`
}

func (a *api) deviceStats(ctx context.Context) (deviceStats, error) {
	var s deviceStats
	b, err := a.must(ctx, http.MethodGet, "/api/v1/devices/stats", nil)
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal(b, &s)
}
