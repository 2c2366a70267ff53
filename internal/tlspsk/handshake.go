package tlspsk

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"slices"
)

// readHandshake returns the next handshake message (in and out locks held).
func (c *Conn) readHandshake() (typ uint8, body []byte, err error) {
	for {
		msg, err := c.nextHandshakeMessage(true)
		if err != nil {
			return 0, nil, err
		}
		if msg != nil {
			return msg[0], msg[4:], nil
		}
		if err := c.readRecord(true); err != nil {
			return 0, nil, err
		}
	}
}

// expect reads the next handshake message, which must be of type want, and
// adds it to the transcript.
func (c *Conn) expect(want uint8) ([]byte, error) {
	typ, body, err := c.readHandshake()
	if err != nil {
		return nil, err
	}
	if typ != want {
		return nil, c.fatal(AlertUnexpectedMessage, fmt.Errorf("%w: handshake message %d, want %d", ErrUnexpected, typ, want), true)
	}
	c.transcript = append(c.transcript, handshake(typ, body)...)
	return body, nil
}

// readChangeCipherSpec reads records until the peer's ChangeCipherSpec.
func (c *Conn) readChangeCipherSpec() error {
	c.ccsSeen = false
	for !c.ccsSeen {
		if err := c.readRecord(true); err != nil {
			return err
		}
		if len(c.hsBuf) > 0 {
			return c.fatal(AlertUnexpectedMessage, fmt.Errorf("%w: handshake message before ChangeCipherSpec", ErrUnexpected), true)
		}
	}
	return nil
}

// writeHandshake queues a handshake message and adds it to the transcript.
func (c *Conn) writeHandshake(msg []byte) error {
	c.transcript = append(c.transcript, msg...)
	return c.writeRecordLocked(recordHandshake, msg)
}

// changeCipherSpec queues ChangeCipherSpec and switches the output keys.
func (c *Conn) changeCipherSpec() error {
	if err := c.writeRecordLocked(recordChangeCipherSpec, []byte{1}); err != nil {
		return err
	}
	c.out.prot, c.out.pending, c.out.seq = c.out.pending, nil, 0
	return nil
}

func (c *Conn) random() ([]byte, error) {
	r := make([]byte, 32)
	if _, err := io.ReadFull(c.cfg.rand(), r); err != nil {
		return nil, c.failLocked(AlertInternalError, fmt.Errorf("tlspsk: random source: %w", err))
	}
	return r, nil
}

// installKeys prepares the pending protections of both directions.
func (c *Conn) installKeys(s *suite, k *keys) error {
	cw, err := newProtection(c.vers, s, k.clientKey, k.clientMAC, k.clientIV)
	if err != nil {
		return c.failLocked(AlertInternalError, err)
	}
	sw, err := newProtection(c.vers, s, k.serverKey, k.serverMAC, k.serverIV)
	if err != nil {
		return c.failLocked(AlertInternalError, err)
	}
	if c.isClient {
		c.out.pending, c.in.pending = cw, sw
	} else {
		c.out.pending, c.in.pending = sw, cw
	}
	return nil
}

// verifyFinished reads the peer's Finished and checks it against the
// transcript before it.
func (c *Conn) verifyFinished(k *keys, label string) error {
	want := k.finished(label, c.transcript)
	body, err := c.expect(typeFinished)
	if err != nil {
		return err
	}
	got, err := parseFinished(body)
	if err != nil {
		return c.fatal(AlertDecodeError, fmt.Errorf("%w: %w", ErrMalformed, err), true)
	}
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return c.fatal(AlertDecryptError, ErrBadFinished, true)
	}
	return nil
}

func (c *Conn) clientHandshake() error {
	cfg := c.cfg
	lo, hi := cfg.versions()
	clientRandom, err := c.random()
	if err != nil {
		return err
	}
	var offered []uint16
	for _, s := range cfg.suiteList() {
		if s.usableWith(hi) {
			offered = append(offered, s.id)
		}
	}
	ch := &clientHello{
		version:      hi,
		random:       clientRandom,
		cipherSuites: append(offered, scsvRenegotiation),
		compression:  []uint8{0},
	}
	if err := c.writeHandshake(ch.marshal()); err != nil {
		return err
	}
	if err := c.flushLocked(); err != nil {
		return err
	}

	body, err := c.expect(typeServerHello)
	if err != nil {
		return err
	}
	sh, err := parseServerHello(body)
	if err != nil {
		return c.fatal(AlertDecodeError, fmt.Errorf("%w: %w", ErrMalformed, err), true)
	}
	if sh.version < lo || sh.version > hi {
		return c.fatal(AlertProtocolVersion, fmt.Errorf("%w: server chose %s, allowed %s to %s", ErrVersion, VersionName(sh.version), VersionName(lo), VersionName(hi)), true)
	}
	c.vers = sh.version
	s := suiteByID(sh.cipherSuite)
	if s == nil || !slices.Contains(offered, s.id) || !s.usableWith(c.vers) {
		return c.fatal(AlertIllegalParameter, fmt.Errorf("%w: server chose %s", ErrNoCommonSuite, CipherSuiteName(sh.cipherSuite)), true)
	}
	if sh.compression != 0 {
		return c.fatal(AlertIllegalParameter, fmt.Errorf("%w: compression method %d", ErrMalformed, sh.compression), true)
	}
	for _, e := range sh.extensions {
		if e != extRenegotiationInfo {
			return c.fatal(AlertUnsupportedExtension, fmt.Errorf("%w: unrequested extension %#04x", ErrUnexpected, e), true)
		}
	}
	if sh.renegBad {
		return c.fatal(AlertHandshakeFailure, ErrRenegotiation, true)
	}

	typ, body, err := c.readHandshake()
	if err != nil {
		return err
	}
	if typ == typeServerKeyExchange {
		c.transcript = append(c.transcript, handshake(typ, body)...)
		hint, err := parseServerKeyExchange(body)
		if err != nil {
			return c.fatal(AlertDecodeError, fmt.Errorf("%w: %w", ErrMalformed, err), true)
		}
		c.state.IdentityHint = hint
		if typ, body, err = c.readHandshake(); err != nil {
			return err
		}
	}
	if typ != typeServerHelloDone {
		// Certificate, CertificateRequest: not a plain-PSK server.
		return c.fatal(AlertUnexpectedMessage, fmt.Errorf("%w: handshake message %d, want ServerHelloDone", ErrUnexpected, typ), true)
	}
	if len(body) != 0 {
		return c.fatal(AlertDecodeError, fmt.Errorf("%w: ServerHelloDone with body", ErrMalformed), true)
	}
	c.transcript = append(c.transcript, handshake(typ, body)...)

	k := deriveKeys(c.vers, s, pskPremaster(cfg.PSK), clientRandom, sh.random)
	if err := c.installKeys(s, k); err != nil {
		return err
	}
	if err := c.writeHandshake(marshalClientKeyExchange(cfg.Identity)); err != nil {
		return err
	}
	if err := c.changeCipherSpec(); err != nil {
		return err
	}
	if err := c.writeHandshake(handshake(typeFinished, k.finished("client finished", c.transcript))); err != nil {
		return err
	}
	if err := c.flushLocked(); err != nil {
		return err
	}

	if err := c.readChangeCipherSpec(); err != nil {
		return err
	}
	if err := c.verifyFinished(k, "server finished"); err != nil {
		return err
	}
	c.state.Version, c.state.CipherSuite, c.state.Identity = c.vers, s.id, cfg.Identity
	return nil
}

func (c *Conn) serverHandshake() error {
	cfg := c.cfg
	lo, hi := cfg.versions()
	body, err := c.expect(typeClientHello)
	if err != nil {
		return err
	}
	ch, err := parseClientHello(body)
	if err != nil {
		return c.fatal(AlertDecodeError, fmt.Errorf("%w: %w", ErrMalformed, err), true)
	}
	if ch.renegInfoNonNil {
		return c.fatal(AlertHandshakeFailure, ErrRenegotiation, true)
	}
	v := min(ch.version, hi)
	if v < lo {
		return c.fatal(AlertProtocolVersion, fmt.Errorf("%w: client offers up to %s, allowed %s to %s", ErrVersion, VersionName(ch.version), VersionName(lo), VersionName(hi)), true)
	}
	c.vers = v
	if !slices.Contains(ch.compression, 0) {
		return c.fatal(AlertIllegalParameter, fmt.Errorf("%w: no null compression", ErrMalformed), true)
	}
	var s *suite
	for _, cand := range cfg.suiteList() {
		if cand.usableWith(v) && slices.Contains(ch.cipherSuites, cand.id) {
			s = cand
			break
		}
	}
	if s == nil {
		return c.fatal(AlertHandshakeFailure, ErrNoCommonSuite, true)
	}
	serverRandom, err := c.random()
	if err != nil {
		return err
	}
	sh := &serverHello{version: v, random: serverRandom, cipherSuite: s.id, renegInfo: ch.secureReneg}
	if err := c.writeHandshake(sh.marshal()); err != nil {
		return err
	}
	if cfg.IdentityHint != "" {
		if err := c.writeHandshake(marshalServerKeyExchange(cfg.IdentityHint)); err != nil {
			return err
		}
		c.state.IdentityHint = cfg.IdentityHint
	}
	if err := c.writeHandshake(handshake(typeServerHelloDone, nil)); err != nil {
		return err
	}
	if err := c.flushLocked(); err != nil {
		return err
	}

	body, err = c.expect(typeClientKeyExchange)
	if err != nil {
		return err
	}
	identity, err := parseClientKeyExchange(body)
	if err != nil {
		return c.fatal(AlertDecodeError, fmt.Errorf("%w: %w", ErrMalformed, err), true)
	}
	psk, err := c.lookupPSK(identity)
	if err != nil {
		return c.fatal(AlertUnknownPSKIdentity, err, true)
	}
	k := deriveKeys(c.vers, s, pskPremaster(psk), ch.random, serverRandom)
	if err := c.installKeys(s, k); err != nil {
		return err
	}
	if err := c.readChangeCipherSpec(); err != nil {
		return err
	}
	if err := c.verifyFinished(k, "client finished"); err != nil {
		return err
	}
	if err := c.changeCipherSpec(); err != nil {
		return err
	}
	if err := c.writeHandshake(handshake(typeFinished, k.finished("server finished", c.transcript))); err != nil {
		return err
	}
	if err := c.flushLocked(); err != nil {
		return err
	}
	c.state.Version, c.state.CipherSuite, c.state.Identity = c.vers, s.id, identity
	return nil
}

// lookupPSK finds the key for a client identity. The identity is not secret
// (AMT sends the PID in clear in its hello), so it may appear in errors; the
// key never does.
func (c *Conn) lookupPSK(identity string) ([]byte, error) {
	if len(identity) > maxIdentityLength {
		return nil, fmt.Errorf("%w: identity of %d bytes", ErrUnknownIdentity, len(identity))
	}
	if c.cfg.GetPSK != nil {
		psk, err := c.cfg.GetPSK(identity)
		if err != nil {
			if errors.Is(err, ErrUnknownIdentity) {
				return nil, err
			}
			return nil, fmt.Errorf("%w %q: %w", ErrUnknownIdentity, identity, err)
		}
		if len(psk) == 0 || len(psk) > 0xffff/2 {
			return nil, fmt.Errorf("%w: %q", ErrUnknownIdentity, identity)
		}
		return psk, nil
	}
	if subtle.ConstantTimeCompare([]byte(identity), []byte(c.cfg.Identity)) != 1 {
		return nil, fmt.Errorf("%w: %q", ErrUnknownIdentity, identity)
	}
	return c.cfg.PSK, nil
}
