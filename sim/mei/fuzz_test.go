package mei

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// socketPair returns two connected Unix stream sockets.
func socketPair(t testing.TB) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	conv := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		return c.(*net.UnixConn)
	}
	return conv(fds[0]), conv(fds[1])
}

func pthiSeeds() [][]byte {
	lsa := EncodePTHIRequest(CmdGetLocalSystemAccount, make([]byte, 40))
	hb := make([]byte, 390)
	hb[0] = 2
	return [][]byte{
		EncodePTHIRequest(CmdGetControlMode, nil),
		EncodePTHIRequest(CmdGetProvisioningState, nil),
		EncodePTHIRequest(CmdGetUUID, nil),
		EncodePTHIRequest(CmdGetCodeVersions, nil),
		lsa,
		EncodePTHIRequest(CmdGetLANInterfaceSettings, []byte{0, 0, 0, 0}),
		EncodePTHIRequest(CmdGetLANInterfaceSettings, []byte{1, 0, 0, 0}),
		EncodePTHIRequest(CmdEnumerateHashHandles, nil),
		EncodePTHIRequest(CmdGetCertHashEntry, []byte{23, 0, 0, 0}),
		EncodePTHIRequest(CmdGetPKIFQDNSuffix, nil),
		EncodePTHIRequest(CmdGetRemoteAccessConnectionStatus, nil),
		EncodePTHIRequest(CmdUnprovision, []byte{0, 0, 0, 0}),
		EncodePTHIRequest(CmdStartConfigurationHBased, hb),
		EncodePTHIRequest(CmdStopConfiguration, nil),
		EncodePTHIRequest(0x04000099, []byte{1, 2, 3}),
		{1, 1, 0, 0, 0x6b, 0, 0, 4, 0xff, 0xff, 0xff, 0xff},
		{1, 1},
	}
}

// checkPTHIResponse asserts the invariants of every PTHI response.
func checkPTHIResponse(t *testing.T, req, resp []byte, maxLen int) {
	t.Helper()
	if len(resp) > maxLen {
		t.Fatalf("response of %d bytes exceeds %d", len(resp), maxLen)
	}
	h, err := ParsePTHIHeader(resp)
	if err != nil || len(resp) < 16 {
		t.Fatalf("response too short: % x", resp)
	}
	rq, _ := ParsePTHIHeader(req)
	if h.Command != rq.Command|ResponseBit || h.Major != 1 || h.Minor != 1 {
		t.Fatalf("response header %+v for request %+v", h, rq)
	}
	if int(h.Length) != len(resp)-12 {
		t.Fatalf("Length %d for %d bytes", h.Length, len(resp))
	}
}

// FuzzPTHIRequest feeds arbitrary messages to the PTHI dispatcher.
func FuzzPTHIRequest(f *testing.F) {
	for _, s := range pthiSeeds() {
		f.Add(s, uint16(4096))
	}
	f.Add(EncodePTHIRequest(CmdGetCodeVersions, nil), uint16(300))
	f.Fuzz(func(t *testing.T, req []byte, maxLen uint16) {
		if maxLen < 64 {
			maxLen = 64
		}
		fw := newFakeFirmware()
		fw.mode = 0
		s := NewServer(fw, Options{Logger: quietLogger(), MaxMessageLength: uint32(maxLen)})
		resp, ok := s.handlePTHI(req)
		if len(req) < 12 {
			if ok {
				t.Fatal("answered a message shorter than the header")
			}
			return
		}
		if !ok {
			t.Fatal("refused a message with a header")
		}
		checkPTHIResponse(t, req, resp, int(maxLen))
	})
}

// FuzzServeConn writes an arbitrary byte stream to a served connection: after
// a valid handshake (mode 0 IAMTHIF, 1 WDIF) or raw (mode 2). The server must
// never panic, never send a frame over MaxMessageLength and always close.
func FuzzServeConn(f *testing.F) {
	for _, s := range pthiSeeds() {
		f.Add(uint8(0), appendFrame(nil, s))
	}
	f.Add(uint8(0), append(appendFrame(nil, EncodePTHIRequest(CmdGetUUID, nil)), appendFrame(nil, EncodePTHIRequest(CmdGetControlMode, nil))...))
	f.Add(uint8(0), []byte{0, 0, 0, 0})
	f.Add(uint8(0), []byte{0xff, 0xff, 0xff, 0x7f, 1})
	f.Add(uint8(1), appendFrame(nil, []byte{5, 2, 0x51, 0x10}))
	f.Add(uint8(1), appendFrame(nil, []byte{5, 3, 0x53, 0x10, 1}))
	f.Add(uint8(1), appendFrame(nil, []byte{5}))
	f.Add(uint8(2), appendFrame(nil, GUIDIAMTHIF[:]))
	f.Add(uint8(2), appendFrame(nil, GUIDLMEIF[:]))
	f.Add(uint8(2), []byte{16, 0, 0})
	f.Fuzz(func(t *testing.T, mode uint8, stream []byte) {
		fw := newFakeFirmware()
		s := NewServer(fw, Options{Logger: quietLogger(), HandshakeTimeout: time.Second})
		client, server := socketPair(t)
		defer client.Close()
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.ServeConn(context.Background(), server)
		}()
		var maxLen uint32 = 4096
		var prefix []byte
		switch mode % 3 {
		case 0:
			prefix = appendFrame(nil, GUIDIAMTHIF[:])
		case 1:
			prefix, maxLen = appendFrame(nil, GUIDWDIF[:]), 512
		}
		go func() {
			_, _ = client.Write(append(prefix, stream...))
			_ = client.CloseWrite()
		}()
		_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
		out, err := io.ReadAll(client)
		// Closing with unread input (after a frame error) resets the peer:
		// the client observes ECONNRESET, as after a failed write().
		if err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("reading server output: %v", err)
		}
		<-done
		first := true
		for len(out) > 0 {
			if len(out) < 4 {
				t.Fatalf("partial frame header % x", out)
			}
			n := binary.LittleEndian.Uint32(out)
			if uint32(len(out)-4) < n {
				t.Fatalf("partial frame: %d of %d", len(out)-4, n)
			}
			if first {
				if n != 9 {
					t.Fatalf("first frame is not a connect reply: %d bytes", n)
				}
			} else if n > maxLen || n == 0 {
				t.Fatalf("frame of %d bytes (max %d)", n, maxLen)
			}
			first = false
			out = out[4+n:]
		}
	})
}

// FuzzClientResponses: the host side parses whatever the device answers
// without panicking.
func FuzzClientResponses(f *testing.F) {
	fw := newFakeFirmware()
	s := NewServer(fw, Options{Logger: quietLogger()})
	for _, req := range pthiSeeds() {
		if resp, ok := s.handlePTHI(req); ok {
			f.Add(resp)
		}
	}
	f.Add([]byte{0x82})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, resp []byte) {
		client, server := socketPair(t)
		defer client.Close()
		go func() {
			defer server.Close()
			buf := make([]byte, 4096)
			for {
				if _, err := readFrame(server, buf, 4096); err != nil {
					return
				}
				// The peer answers every request with the fuzz bytes
				// (possibly empty or oversize).
				if _, err := server.Write(appendFrame(nil, resp)); err != nil {
					return
				}
			}
		}()
		c := &Conn{c: client, guid: GUIDIAMTHIF, maxLen: 4096, version: 1}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		calls := []func() error{
			func() error { _, err := c.GetControlMode(ctx); return err },
			func() error { _, err := c.GetProvisioningState(ctx); return err },
			func() error { _, err := c.GetUUID(ctx); return err },
			func() error { _, err := c.GetCodeVersions(ctx); return err },
			func() error { _, _, err := c.GetLocalSystemAccount(ctx); return err },
			func() error { _, err := c.GetLANInterfaceSettings(ctx, 0); return err },
			func() error { _, err := c.EnumerateHashHandles(ctx); return err },
			func() error { _, err := c.GetCertHashEntry(ctx, 0); return err },
			func() error { _, err := c.GetPKIFQDNSuffix(ctx); return err },
			func() error { _, err := c.GetRemoteAccessConnectionStatus(ctx); return err },
			func() error { return c.Unprovision(ctx, 0) },
			func() error { _, _, err := c.StartConfigurationHBased(ctx, 2, make([]byte, 32)); return err },
			func() error { return c.StopConfiguration(ctx) },
			func() error { _, err := c.IsChangeToAMTEnabled(ctx); return err },
			func() error { _, err := c.SetAmtOperationalState(ctx, true); return err },
		}
		for _, call := range calls {
			if err := call(); err != nil && errors.Is(err, context.DeadlineExceeded) {
				t.Fatal("client hung")
			}
			if bytes.Equal(resp, nil) || len(resp) > 4096 {
				return // the connection is gone after an empty/oversize frame
			}
		}
	})
}
