package apf

import (
	"bytes"
	"errors"
	"io"
	"os"
	"reflect"
	"testing"
	"testing/iotest"
)

// session is a plausible CIRA exchange in both directions, one message of
// every type.
func session() []Message {
	return []Message{
		&ProtocolVersion{Major: 1, TriggerReason: TriggerPeriodic, UUID: exampleWireUUID},
		&ServiceRequest{Service: ServiceAuth},
		&ServiceAccept{Service: ServiceAuth},
		&UserAuthRequest{Username: "admin", Service: ServicePortForward, Method: MethodNone},
		&UserAuthFailure{Methods: MethodPassword},
		&UserAuthRequest{Username: "admin", Service: ServicePortForward, Method: MethodPassword, Password: "Passw0rd!"},
		&UserAuthSuccess{},
		&GlobalRequest{Name: RequestTCPIPForward, WantReply: true, Address: "host.example", Port: 16992},
		&RequestSuccess{HasPort: true, Port: 16992},
		&GlobalRequest{Name: RequestCancelTCPIPForward, WantReply: true, Port: 16992},
		&RequestSuccess{},
		&GlobalRequest{Name: RequestUDPSendTo, Address: "10.0.0.1", Port: 623, OriginatorAddress: "10.0.0.2", OriginatorPort: 623, Data: bytes.Repeat([]byte{7}, 300)},
		&GlobalRequest{Name: "keepalive@openssh.com", WantReply: true},
		&RequestFailure{},
		&KeepaliveOptionsRequest{Interval: 30, Timeout: 90},
		&KeepaliveOptionsReply{Interval: 30, Timeout: 90},
		&ChannelOpen{ChannelType: ChannelForwardedTCPIP, SenderChannel: 1, InitialWindow: 81920, Reserved: 0xFFFFFFFF, ConnectedPort: 16992, OriginatorAddress: "1.2.3.4", OriginatorPort: 1024},
		&ChannelOpenConfirmation{RecipientChannel: 1, SenderChannel: 7, InitialWindow: 4096},
		&ChannelData{RecipientChannel: 7, Data: bytes.Repeat([]byte("x"), 40000)},
		&ChannelData{RecipientChannel: 7, Data: []byte{}},
		&ChannelData{RecipientChannel: 7, Data: []byte("small")},
		&ChannelWindowAdjust{RecipientChannel: 1, BytesToAdd: 40000},
		&ChannelClose{RecipientChannel: 7},
		&ChannelOpenFailure{RecipientChannel: 2, Reason: OpenUnknownChannelType},
		&KeepaliveRequest{Cookie: 42},
		&KeepaliveReply{Cookie: 42},
		&Disconnect{Reason: DisconnectByApplication},
	}
}

func encodeAll(t testing.TB, msgs []Message) []byte {
	var b []byte
	for _, m := range msgs {
		var err error
		if b, err = m.AppendBinary(b); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// hasPortHint answers RequestSuccessHasPort from the expected sequence, as
// a requester would from its own pending requests.
func hasPortHint(msgs []Message) func() bool {
	var q []bool
	for _, m := range msgs {
		if rs, ok := m.(*RequestSuccess); ok {
			q = append(q, rs.HasPort)
		}
	}
	return func() bool {
		v := q[0]
		q = q[1:]
		return v
	}
}

// countingReader records the size of every Read request and refuses to
// hand out more than the stream holds.
type countingReader struct {
	r     io.Reader
	asked []int
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.asked = append(c.asked, len(p))
	return c.r.Read(p)
}

func readAll(t *testing.T, r *Reader, n int) []Message {
	t.Helper()
	var out []Message
	for i := 0; i < n; i++ {
		m, err := r.ReadMessage()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		// Copy aliased data before the next call.
		b, _ := Marshal(m)
		m2, _ := Unmarshal(b)
		out = append(out, m2)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("after last message: %v, want EOF", err)
	}
	return out
}

func TestReaderSplitsAndJoins(t *testing.T) {
	msgs := session()
	stream := encodeAll(t, msgs)
	sources := map[string]func() io.Reader{
		"whole":      func() io.Reader { return bytes.NewReader(stream) },
		"one byte":   func() io.Reader { return iotest.OneByteReader(bytes.NewReader(stream)) },
		"half reads": func() io.Reader { return iotest.HalfReader(bytes.NewReader(stream)) },
		"data+err":   func() io.Reader { return iotest.DataErrReader(bytes.NewReader(stream)) },
		// A stream source that delivers bytes in odd chunks regardless of what
		// is asked, like TLS records that cut messages anywhere.
		"chunked": func() io.Reader { return &chunkReader{b: stream, sizes: []int{3, 1, 97, 5000, 2, 17}} },
	}
	for name, src := range sources {
		t.Run(name, func(t *testing.T) {
			r := NewReader(src(), Limits{})
			r.RequestSuccessHasPort = hasPortHint(msgs)
			got := readAll(t, r, len(msgs))
			if !reflect.DeepEqual(got, msgs) {
				for i := range got {
					if !reflect.DeepEqual(got[i], msgs[i]) {
						t.Fatalf("message %d: got %#v want %#v", i, got[i], msgs[i])
					}
				}
			}
		})
	}
}

// chunkReader returns at most the next chunk size per Read (cycling), and
// never more than asked.
type chunkReader struct {
	b     []byte
	sizes []int
	i     int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(c.b), c.sizes[c.i%len(c.sizes)])
	c.i++
	copy(p, c.b[:n])
	c.b = c.b[n:]
	return n, nil
}

func TestReaderNeverReadsPastMessage(t *testing.T) {
	msgs := session()
	stream := encodeAll(t, msgs)
	cr := &countingReader{r: bytes.NewReader(stream)}
	r := NewReader(cr, Limits{})
	r.RequestSuccessHasPort = hasPortHint(msgs)
	total := 0
	for range msgs {
		b, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		total += len(b)
		if r.Buffered() != 0 {
			t.Fatalf("after a %s the reader holds %d bytes of the next message", TypeName(b[0]), r.Buffered())
		}
	}
	asked := 0
	for _, n := range cr.asked {
		asked += n
	}
	if total != len(stream) || asked != len(stream) {
		t.Fatalf("framed %d bytes, asked for %d, stream %d", total, asked, len(stream))
	}
}

func TestReaderReleasesLargeBuffers(t *testing.T) {
	stream := encodeAll(t, []Message{
		&ChannelData{RecipientChannel: 1, Data: make([]byte, 20000)},
		&KeepaliveRequest{Cookie: 1},
	})
	r := NewReader(bytes.NewReader(stream), Limits{})
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if r.pooled == nil {
		t.Fatal("a 20 kB frame did not use a pooled buffer")
	}
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if r.pooled != nil || &r.buf[0] != &r.small[0] {
		t.Fatal("pooled buffer kept after a small frame")
	}
}

func TestReaderLimits(t *testing.T) {
	tests := []struct {
		name   string
		lim    Limits
		stream []byte
	}{
		{"string over 2048", Limits{}, h(t, "05 00000801")},
		{"custom string limit", Limits{MaxString: 8}, h(t, "05 00000009")},
		{"user name over limit", Limits{}, h(t, "32 00100000")},
		{"password over limit", Limits{}, append(mustMarshal(t, &UserAuthRequest{Username: "a", Service: "b", Method: MethodPassword})[:len("1")+4+1+4+1+4+8+1], h(t, "ffffffff")...)},
		{"data over 1 MiB", Limits{}, h(t, "5e 00000001 00100001")},
		{"data over custom", Limits{MaxData: 100}, h(t, "5e 00000001 00000065")},
		{"channel open address", Limits{}, h(t, "5a 00000001 78 00000001 00000002 00000003 7fffffff")},
		{"udp data over limit", Limits{MaxData: 10}, append(mustMarshal(t, &GlobalRequest{Name: RequestUDPSendTo, Address: "a", OriginatorAddress: "b"})[:0:0],
			h(t, "50 00000019 "+hexOf(RequestUDPSendTo)+"00 00000000 00000000 00000000 00000000 0000000b")...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The source has only the header: the error must come before the
			// reader asks for (or allocates) the announced payload.
			cr := &countingReader{r: bytes.NewReader(tt.stream)}
			r := NewReader(cr, tt.lim)
			_, err := r.Next()
			if !errors.Is(err, ErrTooLong) {
				t.Fatalf("err = %v, want ErrTooLong", err)
			}
			for _, n := range cr.asked {
				if n > 64 {
					t.Fatalf("asked for %d bytes after an oversize length", n)
				}
			}
			if r.pooled != nil {
				t.Fatal("allocated a buffer for an oversize message")
			}
			// Sticky.
			if _, err2 := r.Next(); !errors.Is(err2, ErrTooLong) {
				t.Fatalf("second Next = %v", err2)
			}
		})
	}
}

func hexOf(s string) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(s))
	for i := 0; i < len(s); i++ {
		out = append(out, digits[s[i]>>4], digits[s[i]&15])
	}
	return string(out)
}

func TestReaderUnknownTypeAndGET(t *testing.T) {
	r := NewReader(bytes.NewReader([]byte("GET / HTTP/1.1\r\n\r\n")), Limits{})
	p, err := r.Peek(3)
	if err != nil || string(p) != "GET" {
		t.Fatalf("Peek = %q, %v", p, err)
	}
	var ute UnknownTypeError
	if _, err := r.Next(); !errors.As(err, &ute) || byte(ute) != 'G' {
		t.Fatalf("Next = %v", err)
	}
}

func TestReaderPeekThenNext(t *testing.T) {
	stream := encodeAll(t, []Message{&UserAuthSuccess{}, &KeepaliveRequest{Cookie: 9}})
	r := NewReader(bytes.NewReader(stream), Limits{})
	if p, err := r.Peek(3); err != nil || !bytes.Equal(p, stream[:3]) {
		t.Fatalf("Peek = %x, %v", p, err)
	}
	b, err := r.Next()
	if err != nil || !bytes.Equal(b, []byte{MsgUserAuthSuccess}) {
		t.Fatalf("Next = %x, %v", b, err)
	}
	m, err := r.ReadMessage()
	if err != nil || m.(*KeepaliveRequest).Cookie != 9 {
		t.Fatalf("ReadMessage = %#v, %v", m, err)
	}
	if _, err := r.Peek(200); err == nil {
		t.Fatal("Peek over 96 accepted")
	}
}

// MPS's 15-byte USERAUTH_FAILURE: the extra zero is skipped.
func TestReaderUserAuthFailureExtraZero(t *testing.T) {
	stream := append(h(t, "33 00000008 70617373776f7264 00 00"), mustMarshal(t, &Disconnect{Reason: 15})...)
	r := NewReader(iotest.OneByteReader(bytes.NewReader(stream)), Limits{})
	m, err := r.ReadMessage()
	if _, ok := m.(*UserAuthFailure); err != nil || !ok {
		t.Fatalf("first = %#v, %v", m, err)
	}
	m, err = r.ReadMessage()
	if d, ok := m.(*Disconnect); err != nil || !ok || d.Reason != 15 {
		t.Fatalf("second = %#v, %v", m, err)
	}
	// A zero byte anywhere else is an unknown type.
	r = NewReader(bytes.NewReader([]byte{0}), Limits{})
	var ute UnknownTypeError
	if _, err := r.Next(); !errors.As(err, &ute) {
		t.Fatalf("lone zero: %v", err)
	}
}

// timeoutOnce returns a deadline error after delivering `after` bytes, then
// continues: the reader must resume the message it was assembling.
type timeoutOnce struct {
	r     io.Reader
	after int
	fired bool
}

func (t *timeoutOnce) Read(p []byte) (int, error) {
	if !t.fired && t.after == 0 {
		t.fired = true
		return 0, os.ErrDeadlineExceeded
	}
	if !t.fired && len(p) > t.after {
		p = p[:t.after]
	}
	n, err := t.r.Read(p)
	t.after -= n
	return n, err
}

func TestReaderResumesAfterTimeout(t *testing.T) {
	msgs := []Message{
		&ChannelData{RecipientChannel: 3, Data: bytes.Repeat([]byte("abc"), 10000)},
		&UserAuthRequest{Username: "admin", Service: ServicePortForward, Method: MethodPassword, Password: "pw"},
	}
	stream := encodeAll(t, msgs)
	for _, cut := range []int{0, 1, 5, 9, 100, 20000, len(stream) - 3} {
		src := &timeoutOnce{r: bytes.NewReader(stream), after: cut}
		r := NewReader(src, Limits{})
		var got []Message
		for len(got) < len(msgs) {
			m, err := r.ReadMessage()
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			if err != nil {
				t.Fatalf("cut %d: %v", cut, err)
			}
			b, _ := Marshal(m)
			m2, _ := Unmarshal(b)
			got = append(got, m2)
		}
		if !reflect.DeepEqual(got, msgs) {
			t.Fatalf("cut %d: messages differ", cut)
		}
	}
}

func TestReaderTruncatedStream(t *testing.T) {
	stream := mustMarshal(t, &ChannelData{RecipientChannel: 1, Data: []byte("hello")})
	for i := 1; i < len(stream); i++ {
		r := NewReader(bytes.NewReader(stream[:i]), Limits{})
		if _, err := r.Next(); err != io.ErrUnexpectedEOF {
			t.Fatalf("%d bytes: %v", i, err)
		}
	}
	r := NewReader(bytes.NewReader(nil), Limits{})
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("empty: %v", err)
	}
}

func TestReaderCheckChannelData(t *testing.T) {
	errCredit := errors.New("beyond credit")
	stream := mustMarshal(t, &ChannelData{RecipientChannel: 5, Data: make([]byte, 5000)})
	cr := &countingReader{r: bytes.NewReader(stream)}
	r := NewReader(cr, Limits{})
	var sawRecipient, sawLen uint32
	r.CheckChannelData = func(rc, n uint32) error {
		sawRecipient, sawLen = rc, n
		return errCredit
	}
	if _, err := r.Next(); !errors.Is(err, errCredit) {
		t.Fatalf("Next = %v", err)
	}
	if sawRecipient != 5 || sawLen != 5000 {
		t.Fatalf("check saw %d/%d", sawRecipient, sawLen)
	}
	for _, n := range cr.asked {
		if n > ChannelDataHeaderLen {
			t.Fatalf("payload read (%d bytes) before the check", n)
		}
	}

	// Accepted: called once per message however the bytes arrive.
	calls := 0
	r = NewReader(iotest.OneByteReader(bytes.NewReader(append(bytes.Clone(stream), stream...))), Limits{})
	r.CheckChannelData = func(rc, n uint32) error { calls++; return nil }
	for i := 0; i < 2; i++ {
		if b, err := r.Next(); err != nil || len(b) != len(stream) {
			t.Fatalf("Next = %d bytes, %v", len(b), err)
		}
	}
	if calls != 2 {
		t.Fatalf("check called %d times for 2 messages", calls)
	}
}

// A peer announcing a large message and sending little costs memory in
// proportion to what it sent.
func TestReaderGrowsWithReceivedBytes(t *testing.T) {
	head := h(t, "5e 00000001 000fffff")
	r := NewReader(io.MultiReader(bytes.NewReader(head), bytes.NewReader(make([]byte, 100))), Limits{})
	if _, err := r.Next(); err != io.ErrUnexpectedEOF {
		t.Fatalf("Next = %v", err)
	}
	if len(r.buf) > 64<<10 {
		t.Fatalf("buffer grew to %d bytes for 109 received", len(r.buf))
	}
}

func TestClassOf(t *testing.T) {
	for _, size := range []int{129, 288, 289, 1000, 16393, 16416, 16417, 1<<20 + 9, 4 << 20} {
		p := getBuf(size)
		if len(*p) < size {
			t.Fatalf("getBuf(%d) = %d bytes", size, len(*p))
		}
		if size <= 1<<20+9 && len(*p) > 2*size+classSlack+256 {
			t.Fatalf("getBuf(%d) = %d bytes, wasteful", size, len(*p))
		}
		putBuf(p)
	}
}
