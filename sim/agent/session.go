package agent

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// session handles server messages until success, error or a failure.
func (r *run) session(ctx context.Context) error {
	for {
		_, data, err := r.ws.ReadMessage()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r.log.Debug("agent: websocket read", "err", err)
			return fmt.Errorf("%w: %v", ErrConnectionClosed, err)
		}
		done, err := r.handle(ctx, data)
		if err != nil {
			return r.ctxErr(ctx, err)
		}
		if done {
			return r.terminal()
		}
	}
}

func (r *run) terminal() error {
	if r.res.Method == "error" {
		return &RPSError{Message: r.res.Message, Status: r.res.Status}
	}
	return nil
}

// handle processes one server message; done reports a terminal message.
func (r *run) handle(ctx context.Context, data []byte) (done bool, err error) {
	var m envelope
	if err := json.Unmarshal(data, &m); err != nil {
		return false, fmt.Errorf("agent: invalid message from server: %w", err)
	}
	switch m.Method {
	case "heartbeat_request":
		// Echo the whole object back (rpc-go GenerateHeartbeatResponse).
		m.Method = "heartbeat_response"
		m.Status = "success"
		r.res.Heartbeats++
		return false, r.send(m)
	case "success", "error":
		r.res.Method = m.Method
		r.res.Message = m.Message
		r.res.Status = parseStatus(m.Message)
		if r.res.Status != nil {
			r.log.Info("agent: server finished", "method", m.Method, "status", r.res.Status.Status,
				"network", r.res.Status.Network, "cira", r.res.Status.CIRAConnection, "tls", r.res.Status.TLSConfiguration)
		} else {
			r.log.Info("agent: server finished", "method", m.Method, "message", m.Message)
		}
		return true, nil
	case "port_switch":
		return false, r.portSwitch(ctx, m.Payload)
	case "progress":
		if r.v2 {
			r.log.Info("agent: progress", "message", m.Message)
			r.res.Progress = append(r.res.Progress, m.Message)
			return false, nil
		}
		// v3 has no case for progress: like any unknown method it is
		// relayed to AMT as a (here empty) WS-MAN request.
	}
	// wsman, tls_data and any other method: relay the payload.
	payload, err := base64.StdEncoding.DecodeString(m.Payload)
	if err != nil {
		if !r.v2 {
			return false, errors.New("unable to decode base64 payload from RPS")
		}
		r.log.Error("agent: unable to decode base64 payload from RPS")
	}
	if r.tunnel || m.Method == "tls_data" {
		return false, r.tunnelRound(ctx, payload)
	}
	return false, r.wsmanRound(ctx, payload)
}

func (r *run) send(m envelope) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return r.write(data)
}

// wsmanRound relays one request over a new LMS connection (LMS mode).
func (r *run) wsmanRound(ctx context.Context, req []byte) error {
	c, err := r.dialLMS(ctx, r.cfg.LMSAddr)
	if err != nil {
		return fmt.Errorf("failed to connect to LMS: %w", err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if len(req) > 0 {
		if _, err := c.Write(req); err != nil {
			return fmt.Errorf("failed to send payload to LMS: %w", err)
		}
	}
	var overall time.Time
	if !r.v2 {
		overall = time.Now().Add(r.cfg.RoundTimeout)
	}
	resp, rerr := readLMS(c, r.cfg.FirstByteTimeout, r.cfg.IdleTimeout, overall)
	if errors.Is(rerr, errRoundTimeout) {
		return fmt.Errorf("timeout waiting for AMT response after %s", r.cfg.RoundTimeout)
	}
	if rerr != nil && !errors.Is(rerr, io.EOF) && !errors.Is(rerr, errSilent) {
		return r.ctxErr(ctx, fmt.Errorf("LMS error: %w", rerr))
	}
	if len(resp) == 0 {
		r.res.QuietRounds++
		r.log.Debug("agent: quiet round (no bytes from LMS)")
		return nil
	}
	r.res.Rounds++
	return r.send(clientMessage("response", r.cfg.AppVersion, resp))
}

var (
	errSilent       = errors.New("no data before the first-byte timeout")
	errRoundTimeout = errors.New("round timeout")
)

// readLMS reads one response: the first byte within first, then until EOF or
// idle without data. It returns errSilent when nothing arrived in time,
// io.EOF at EOF, nil after an idle pause, errRoundTimeout when the overall
// deadline (if set) cut the read, or the socket error.
func readLMS(c net.Conn, first, idle time.Duration, overall time.Time) ([]byte, error) {
	var buf []byte
	tmp := make([]byte, 4096)
	wait := first
	for {
		dl := time.Now().Add(wait)
		cut := !overall.IsZero() && overall.Before(dl)
		if cut {
			dl = overall
		}
		_ = c.SetReadDeadline(dl)
		n, err := c.Read(tmp)
		buf = append(buf, tmp[:n]...)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if cut {
					return buf, errRoundTimeout
				}
				if len(buf) == 0 {
					return nil, errSilent
				}
				return buf, nil
			}
			return buf, err
		}
		if n > 0 {
			wait = idle
		}
	}
}

// tunnelRound writes raw TLS bytes to the persistent LMS connection of the
// TLS tunnel and relays what comes back as tls_data (spec/rpc-protocol.md
// §8).
func (r *run) tunnelRound(ctx context.Context, data []byte) error {
	clientHello := len(data) >= 6 && data[0] == 0x16 && data[5] == 0x01
	if clientHello && r.tconn != nil {
		r.closeTunnel() // a new handshake starts on a new connection
	}
	if r.tconn == nil {
		addr := r.tunnelAddr
		if addr == "" {
			addr = r.cfg.LMSTLSAddr
		}
		c, err := r.dialLMS(ctx, addr)
		if err != nil {
			return fmt.Errorf("failed to connect to LMS: %w", err)
		}
		r.tconn = c
	}
	c := r.tconn
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if len(data) > 0 {
		if _, err := c.Write(data); err != nil {
			r.closeTunnel()
			return r.connectionReset("lms_error")
		}
	}
	resp, rerr := readLMS(c, r.cfg.TLSFirstByteTimeout, r.cfg.TLSIdleTimeout, time.Time{})
	if len(resp) > 0 {
		r.res.Rounds++
		if err := r.send(clientMessage("tls_data", r.cfg.AppVersion, resp)); err != nil {
			return err
		}
	}
	switch {
	case rerr == nil:
		return nil
	case errors.Is(rerr, errSilent):
		r.res.QuietRounds++ // legitimate in TLS 1.3
		return nil
	case errors.Is(rerr, io.EOF):
		r.closeTunnel()
		if len(resp) == 0 {
			return r.connectionReset("connection_closed")
		}
		return nil
	default:
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.closeTunnel()
		return r.connectionReset("lms_error")
	}
}

func (r *run) connectionReset(reason string) error {
	r.res.ConnectionResets++
	return r.send(clientMessage("connection_reset", r.cfg.AppVersion, []byte(reason)))
}

func (r *run) closeTunnel() {
	if r.tconn != nil {
		r.tconn.Close()
		r.tconn = nil
	}
}

// portSwitch honours port_switch: close the LMS connection, wait the
// (clamped) delay, reconnect to the new port and acknowledge; from then on
// every relayed message is TLS-tunnel data.
func (r *run) portSwitch(ctx context.Context, raw string) error {
	var ps struct {
		Port     string `json:"port"`
		RootCert string `json:"rootCert"`
		Delay    int    `json:"delay"`
	}
	if err := json.Unmarshal([]byte(raw), &ps); err != nil {
		return fmt.Errorf("agent: invalid port_switch payload: %w", err)
	}
	r.closeTunnel()
	delay := min(max(time.Duration(ps.Delay)*time.Second, 0), r.cfg.PortSwitchMaxDelay)
	if err := sleepCtx(ctx, delay); err != nil {
		return err
	}
	addr := r.cfg.LMSTLSAddr
	if ps.Port != "16993" {
		host, _, _ := net.SplitHostPort(r.cfg.LMSAddr)
		addr = net.JoinHostPort(host, ps.Port)
	}
	var c net.Conn
	var err error
	for attempt := 1; attempt <= r.cfg.PortSwitchAttempts; attempt++ {
		if c, err = r.dialLMS(ctx, addr); err == nil {
			break
		}
		if attempt < r.cfg.PortSwitchAttempts {
			if err := sleepCtx(ctx, r.cfg.PortSwitchRetryDelay); err != nil {
				return err
			}
		}
	}
	if err != nil {
		return fmt.Errorf("agent: port switch to %s failed: %w", ps.Port, err)
	}
	r.tconn, r.tunnel, r.tunnelAddr = c, true, addr
	r.res.PortSwitches++
	return r.send(clientMessage("port_switch_ack", r.cfg.AppVersion, []byte("ok")))
}
