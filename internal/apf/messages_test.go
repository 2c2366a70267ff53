package apf

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// h decodes hex written with spaces and newlines.
func h(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustMarshal(t *testing.T, m Message) []byte {
	t.Helper()
	b, err := Marshal(m)
	if err != nil {
		t.Fatalf("Marshal(%T): %v", m, err)
	}
	return b
}

// exampleUUID is the wire UUID of spec/mps.md §2.3.1.
var exampleWireUUID = UUID{0x44, 0x45, 0x4C, 0x4C, 0x4B, 0x00, 0x10, 0x42, 0x80, 0x33, 0xB6, 0xC0, 0x4F, 0x50, 0x46, 0x33}

const exampleTextUUID = "4c4c4544-004b-4210-8033-b6c04f504633"

func TestUUIDText(t *testing.T) {
	if got := exampleWireUUID.String(); got != exampleTextUUID {
		t.Fatalf("String() = %s, want %s", got, exampleTextUUID)
	}
	for _, s := range []string{exampleTextUUID, strings.ToUpper(exampleTextUUID)} {
		u, err := ParseUUID(s)
		if err != nil || u != exampleWireUUID {
			t.Fatalf("ParseUUID(%s) = %x, %v", s, u, err)
		}
	}
	for _, bad := range []string{"", "4c4c4544-004b-4210-8033-b6c04f50463", "4c4c4544x004b-4210-8033-b6c04f504633", "4c4c4544-004b-4210-8033-b6c04f50463g"} {
		if _, err := ParseUUID(bad); !errors.Is(err, ErrBadUUID) {
			t.Errorf("ParseUUID(%q) error = %v", bad, err)
		}
	}
}

// Byte-exact layouts of spec/mps.md §2.3.
func TestLayouts(t *testing.T) {
	tests := []struct {
		name string
		msg  Message
		want string // hex
		size int    // the size formula of the spec
	}{
		{
			name: "PROTOCOLVERSION",
			msg:  &ProtocolVersion{Major: 1, Minor: 0, TriggerReason: TriggerPeriodic, UUID: exampleWireUUID},
			want: "c0 00000001 00000000 00000004 44454c4c4b0010428033b6c04f504633" + strings.Repeat("00", 64),
			size: 93,
		},
		{
			name: "SERVICE_REQUEST auth",
			msg:  &ServiceRequest{Service: ServiceAuth},
			want: "05 00000012" + hex.EncodeToString([]byte("auth@amt.intel.com")),
			size: 5 + 18,
		},
		{
			name: "SERVICE_ACCEPT pfwd",
			msg:  &ServiceAccept{Service: ServicePortForward},
			want: "06 00000012" + hex.EncodeToString([]byte("pfwd@amt.intel.com")),
			size: 5 + 18,
		},
		{
			name: "USERAUTH_REQUEST password",
			msg:  &UserAuthRequest{Username: "admin", Service: ServicePortForward, Method: MethodPassword, Password: "P@ssw0rd"},
			want: "32 00000005 61646d696e 00000012" + hex.EncodeToString([]byte("pfwd@amt.intel.com")) +
				"00000008 70617373776f7264 00 00000008 5040737377307264",
			size: 18 + 5 + 18 + 8 + 8,
		},
		{
			name: "USERAUTH_REQUEST none",
			msg:  &UserAuthRequest{Username: "admin", Service: ServicePortForward, Method: MethodNone},
			want: "32 00000005 61646d696e 00000012" + hex.EncodeToString([]byte("pfwd@amt.intel.com")) + "00000004 6e6f6e65",
			size: 13 + 5 + 18 + 4,
		},
		{
			name: "USERAUTH_FAILURE",
			msg:  &UserAuthFailure{Methods: MethodPassword},
			want: "33 00000008 70617373776f7264 00",
			size: 14,
		},
		{name: "USERAUTH_SUCCESS", msg: &UserAuthSuccess{}, want: "34", size: 1},
		{
			name: "GLOBAL_REQUEST tcpip-forward",
			msg:  &GlobalRequest{Name: RequestTCPIPForward, WantReply: true, Port: 16992},
			want: "50 0000000d 74637069702d666f7277617264 01 00000000 00004260",
			size: 14 + 13 + 0,
		},
		{
			name: "GLOBAL_REQUEST cancel-tcpip-forward with address",
			msg:  &GlobalRequest{Name: RequestCancelTCPIPForward, WantReply: true, Address: "amt", Port: 5900},
			want: "50 00000014" + hex.EncodeToString([]byte("cancel-tcpip-forward")) + "01 00000003 616d74 0000170c",
			size: 14 + 20 + 3,
		},
		{
			name: "GLOBAL_REQUEST udp-send-to",
			msg: &GlobalRequest{Name: RequestUDPSendTo, WantReply: false, Address: "a", Port: 7,
				OriginatorAddress: "bc", OriginatorPort: 8, Data: []byte{0xde, 0xad}},
			want: "50 00000019" + hex.EncodeToString([]byte(RequestUDPSendTo)) +
				"00 00000001 61 00000007 00000002 6263 00000008 00000002 dead",
			size: 26 + 25 + 1 + 2 + 2,
		},
		{
			name: "GLOBAL_REQUEST unknown name",
			msg:  &GlobalRequest{Name: "x", WantReply: true},
			want: "50 00000001 78 01",
			size: 6 + 1,
		},
		{name: "REQUEST_SUCCESS port", msg: &RequestSuccess{HasPort: true, Port: 16993}, want: "51 00004261", size: 5},
		{name: "REQUEST_SUCCESS cancel", msg: &RequestSuccess{}, want: "51", size: 1},
		{name: "REQUEST_FAILURE", msg: &RequestFailure{}, want: "52", size: 1},
		{
			name: "CHANNEL_OPEN as MPS sends it",
			msg: &ChannelOpen{ChannelType: ChannelForwardedTCPIP, SenderChannel: 4, InitialWindow: 81920,
				Reserved: 0xFFFFFFFF, ConnectedPort: 16992, OriginatorAddress: "1.2.3.4", OriginatorPort: 1024},
			want: "5a 0000000f" + hex.EncodeToString([]byte("forwarded-tcpip")) +
				"00000004 00014000 ffffffff 00000000 00004260 00000007 312e322e332e34 00000400",
			size: 55,
		},
		{
			name: "CHANNEL_OPEN_CONFIRMATION",
			msg:  &ChannelOpenConfirmation{RecipientChannel: 4, SenderChannel: 9, InitialWindow: 4096, Reserved: 0xFFFFFFFF},
			want: "5b 00000004 00000009 00001000 ffffffff",
			size: 17,
		},
		{
			name: "CHANNEL_OPEN_FAILURE",
			msg:  &ChannelOpenFailure{RecipientChannel: 4, Reason: OpenConnectFailed},
			want: "5c 00000004 00000002 00000000 00000000",
			size: 17,
		},
		{
			name: "CHANNEL_WINDOW_ADJUST",
			msg:  &ChannelWindowAdjust{RecipientChannel: 4, BytesToAdd: 40960},
			want: "5d 00000004 0000a000",
			size: 9,
		},
		{
			name: "CHANNEL_DATA",
			msg:  &ChannelData{RecipientChannel: 4, Data: []byte("GET")},
			want: "5e 00000004 00000003 474554",
			size: 9 + 3,
		},
		{name: "CHANNEL_CLOSE", msg: &ChannelClose{RecipientChannel: 4}, want: "61 00000004", size: 5},
		{name: "DISCONNECT", msg: &Disconnect{Reason: DisconnectProtocolError}, want: "01 00000002 0000", size: 7},
		{name: "KEEPALIVE_REQUEST", msg: &KeepaliveRequest{Cookie: 0x01020304}, want: "d0 01020304", size: 5},
		{name: "KEEPALIVE_REPLY", msg: &KeepaliveReply{Cookie: 0x01020304}, want: "d1 01020304", size: 5},
		{name: "KEEPALIVE_OPTIONS_REQUEST", msg: &KeepaliveOptionsRequest{Interval: 30, Timeout: 90}, want: "d2 0000001e 0000005a", size: 9},
		{name: "KEEPALIVE_OPTIONS_REPLY", msg: &KeepaliveOptionsReply{Interval: 30, Timeout: 0}, want: "d3 0000001e 00000000", size: 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := h(t, tt.want)
			if len(want) != tt.size {
				t.Fatalf("test vector is %d bytes, the spec says %d", len(want), tt.size)
			}
			got := mustMarshal(t, tt.msg)
			if !bytes.Equal(got, want) {
				t.Fatalf("Marshal:\n got %x\nwant %x", got, want)
			}
			// AppendBinary appends.
			pre := []byte{0xAA}
			app, err := tt.msg.AppendBinary(pre)
			if err != nil || !bytes.Equal(app, append([]byte{0xAA}, want...)) {
				t.Fatalf("AppendBinary = %x, %v", app, err)
			}
			back, err := Unmarshal(want)
			if err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if !reflect.DeepEqual(back, tt.msg) {
				t.Fatalf("Unmarshal = %#v, want %#v", back, tt.msg)
			}
			if back.Type() != want[0] {
				t.Fatalf("Type() = %x", back.Type())
			}
			// The stream reader frames it to the same length.
			r := NewReader(bytes.NewReader(want), Limits{})
			r.RequestSuccessHasPort = func() bool { return len(want) == 5 }
			frame, err := r.Next()
			if err != nil || !bytes.Equal(frame, want) {
				t.Fatalf("Reader.Next = %x, %v", frame, err)
			}
			// Truncations fail, extra bytes fail.
			for i := 0; i < len(want); i++ {
				if tt.name == "REQUEST_SUCCESS port" && i == 1 {
					continue // the 1-byte form is the cancel reply
				}
				if _, err := Unmarshal(want[:i]); err == nil {
					t.Fatalf("Unmarshal of %d/%d bytes succeeded", i, len(want))
				}
			}
			if tt.name != "REQUEST_SUCCESS cancel" {
				if _, err := Unmarshal(append(bytes.Clone(want), 0x01)); !errors.Is(err, ErrTrailingData) && err == nil {
					t.Fatalf("Unmarshal with a trailing byte succeeded")
				}
			}
		})
	}
}

func TestProtocolVersionUUIDOffset(t *testing.T) {
	b := mustMarshal(t, &ProtocolVersion{Major: 1, UUID: exampleWireUUID})
	if len(b) != ProtocolVersionLen {
		t.Fatalf("len = %d", len(b))
	}
	var pv ProtocolVersion
	if err := pv.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if UUID(b[13:29]) != exampleWireUUID || pv.UUID.String() != exampleTextUUID {
		t.Fatalf("UUID at 13..29 = %x (%s)", b[13:29], pv.UUID)
	}
}

func TestUserAuthFailureMPSForm(t *testing.T) {
	var m UserAuthFailure
	if err := m.UnmarshalBinary(h(t, "33 00000008 70617373776f7264 00 00")); err != nil {
		t.Fatalf("15-byte MPS form: %v", err)
	}
	if m.Methods != "password" || m.PartialSuccess {
		t.Fatalf("%+v", m)
	}
	if err := m.UnmarshalBinary(h(t, "33 00000008 70617373776f7264 00 01")); err == nil {
		t.Fatal("non-zero trailing byte accepted")
	}
}

func TestUnmarshalErrors(t *testing.T) {
	if _, err := Unmarshal(nil); !errors.Is(err, ErrTruncated) {
		t.Errorf("empty: %v", err)
	}
	var ute UnknownTypeError
	if _, err := Unmarshal([]byte{0x47, 0x45, 0x54}); !errors.As(err, &ute) || byte(ute) != 'G' {
		t.Errorf("GET: %v", err)
	}
	var ka KeepaliveRequest
	if err := ka.UnmarshalBinary(h(t, "d1 00000001")); !errors.Is(err, ErrWrongType) {
		t.Errorf("wrong type: %v", err)
	}
	// A string length pointing past the end.
	if _, err := Unmarshal(h(t, "05 ffffffff 61")); !errors.Is(err, ErrTruncated) {
		t.Errorf("long string: %v", err)
	}
	// Methods without an APF layout.
	if _, err := Unmarshal(h(t, "32 00000000 00000000 00000009 7075626c69636b6579")); !errors.Is(err, ErrUnsupported) {
		t.Errorf("publickey: %v", err)
	}
	if _, err := Marshal(&UserAuthRequest{Method: "publickey"}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("marshal publickey: %v", err)
	}
}

func TestUserAuthRequestRedaction(t *testing.T) {
	m := &UserAuthRequest{Username: "admin", Service: ServicePortForward, Method: MethodPassword, Password: "s3cr3t-pw"}
	if s := m.String(); strings.Contains(s, "s3cr3t") || !strings.Contains(s, "admin") {
		t.Errorf("String() = %s", s)
	}
	if s := m.LogValue().String(); strings.Contains(s, "s3cr3t") {
		t.Errorf("LogValue() = %s", s)
	}
}
