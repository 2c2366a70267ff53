// Package amt is amtd's typed client for one AMT device: Intel's
// go-wsman-messages (v2.50.1) with contexts, deadlines, one call at a time per
// device, and errors that say what the device answered.
//
// The device is reached through any http.RoundTripper: the rpc-go WebSocket
// relay, a CIRA channel or a direct TCP/TLS connection (DESIGN.md principle 1).
// The library itself has no context and is not goroutine-safe; Client
// serialises calls and hands each call's context to the RoundTripper.
package amt

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/amterror"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/client"
)

// Params describe how to reach and authenticate to a device.
type Params struct {
	Target   string // host part of the endpoint URL (the device UUID for relays)
	Username string
	Password string
	UseTLS   bool // endpoint port 16993 instead of 16992
	// Timeout bounds each call when the caller's context has no earlier
	// deadline. Zero means 30 s.
	Timeout time.Duration
}

// Client is one authenticated session with one device.
type Client struct {
	mu      sync.Mutex
	msgs    wsman.Messages
	tr      *ctxTransport
	timeout time.Duration
}

// NewClient builds a client that sends every HTTP exchange through rt.
func NewClient(rt http.RoundTripper, p Params) *Client {
	if p.Timeout <= 0 {
		p.Timeout = 30 * time.Second
	}
	tr := &ctxTransport{inner: rt}
	msgs := wsman.NewMessages(client.Parameters{
		Target:    p.Target,
		Username:  p.Username,
		Password:  p.Password,
		UseDigest: true,
		UseTLS:    p.UseTLS,
		Transport: tr,
		// The library's own timeout only backs ours up; Do enforces the real
		// deadline through the context handed to the transport.
		Timeout: 24 * time.Hour,
	})
	return &Client{msgs: msgs, tr: tr, timeout: p.Timeout}
}

type callOpts struct{ noRetry bool }

type optsKey struct{}

// NoRetry marks a context so that transports never resend the request (for
// one-shot calls such as AdminSetup and UpgradeClientToAdmin: the device may
// have acted and dropped the reply, so the caller checks state instead).
func NoRetry(ctx context.Context) context.Context {
	return context.WithValue(ctx, optsKey{}, callOpts{noRetry: true})
}

// IsNoRetry reports whether the request context was marked with NoRetry.
func IsNoRetry(ctx context.Context) bool {
	o, _ := ctx.Value(optsKey{}).(callOpts)
	return o.noRetry
}

// Do runs fn with the device's message builders. Calls on one Client are
// serialised; fn's WS-MAN exchanges carry ctx (with the client's default
// timeout when ctx has no deadline) to the transport.
func (c *Client) Do(ctx context.Context, fn func(m wsman.Messages) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	c.tr.set(ctx)
	defer c.tr.set(nil)
	err := fn(c.msgs)
	if err != nil && ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		err = fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return wrapErr(err)
}

// ctxTransport attaches the current call's context to each request the
// library makes (the library builds requests with context.Background).
type ctxTransport struct {
	inner http.RoundTripper
	mu    sync.Mutex
	ctx   context.Context
}

func (t *ctxTransport) set(ctx context.Context) {
	t.mu.Lock()
	t.ctx = ctx
	t.mu.Unlock()
}

func (t *ctxTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.mu.Lock()
	ctx := t.ctx
	t.mu.Unlock()
	if ctx == nil {
		return nil, errors.New("amt: request outside Client.Do")
	}
	// The library's http.Client may also cancel the request (its own timeout).
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(req.Context(), cancel)
	resp, err := t.inner.RoundTrip(req.WithContext(ctx))
	stop()
	if err != nil {
		cancel()
		return nil, err
	}
	// Bodies are read by the library right after RoundTrip; release the
	// context once the body is closed.
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// FaultError is a SOAP fault (HTTP 400) answered by the device.
type FaultError struct {
	SubCode string
	Reason  string
	Detail  string
}

func (e *FaultError) Error() string {
	s := "device answered a WS-MAN fault " + e.SubCode
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	return s
}

func wrapErr(err error) error {
	var ae *amterror.AMTError
	if errors.As(err, &ae) {
		return &FaultError{SubCode: ae.SubCode, Reason: ae.Message, Detail: ae.Detail}
	}
	return err
}

// ReturnValueError is a method answered with a non-zero ReturnValue.
type ReturnValueError struct {
	Call  string
	Value int
}

func (e *ReturnValueError) Error() string {
	return fmt.Sprintf("%s returned %d (%s)", e.Call, e.Value, ReturnValueName(e.Value))
}

// Check returns a *ReturnValueError when rv is not 0.
func Check(call string, rv int) error {
	if rv != 0 {
		return &ReturnValueError{Call: call, Value: rv}
	}
	return nil
}

// ReturnValueName names AMT's generic PT_STATUS return values (wsman.md §7).
func ReturnValueName(v int) string {
	if n, ok := ptStatus[v]; ok {
		return n
	}
	return "unknown"
}

var ptStatus = map[int]string{
	0: "SUCCESS", 1: "INTERNAL_ERROR", 2: "NOT_READY", 3: "INVALID_PT_MODE", 16: "NOT_PERMITTED",
	23: "MAX_LIMIT_REACHED", 24: "INVALID_AUTH_TYPE", 26: "INVALID_DHCP_MODE", 27: "INVALID_IP_ADDRESS",
	28: "INVALID_DOMAIN_NAME", 30: "REQUEST_UNEXPECTED", 32: "INVALID_PROVISIONING_STATE",
	34: "INVALID_TIME", 35: "INVALID_INDEX", 36: "INVALID_PARAMETER", 37: "INVALID_NETMASK",
	38: "FLASH_WRITE_LIMIT_EXCEEDED", 2049: "UNSUPPORTED_OEM_NUMBER", 2050: "UNSUPPORTED_BOOT_OPTION",
	2051: "INVALID_COMMAND", 2052: "INVALID_SPECIAL_COMMAND", 2053: "INVALID_HANDLE",
	2054: "INVALID_PASSWORD", 2055: "INVALID_REALM", 2056: "STORAGE_ACL_ENTRY_IN_USE",
	2057: "DATA_MISSING", 2058: "DUPLICATE", 2059: "EVENT_LOG_FROZEN", 2060: "PKI_MISSING_KEYS",
	2061: "PKI_GENERATING_KEYS", 2062: "INVALID_KEY", 2063: "INVALID_CERT", 2064: "CERT_KEY_NOT_MATCH",
	2065: "MAX_KERB_DOMAIN_REACHED", 2066: "UNSUPPORTED", 2067: "INVALID_PRIORITY", 2068: "NOT_FOUND",
	2069: "INVALID_CREDENTIALS", 2070: "INVALID_PASSPHRASE", 2072: "NO_ASSOCIATION",
	2075: "AUDIT_FAIL", 2076: "BLOCKING_COMPONENT", 2081: "USER_CONSENT_REQUIRED", 2082: "OPERATION_IN_PROGRESS",
}
