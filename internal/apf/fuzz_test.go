package apf

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
)

func addSeeds(f *testing.F) {
	for _, m := range session() {
		b, err := Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add([]byte{MsgUserAuthFailure, 0, 0, 0, 8, 'p', 'a', 's', 's', 'w', 'o', 'r', 'd', 0, 0})
	f.Add([]byte{MsgChannelData, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff})
}

// FuzzUnmarshal: Unmarshal never panics; whatever it accepts re-encodes to
// a message of the same length that decodes to the same value.
func FuzzUnmarshal(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Unmarshal(data)
		if err != nil {
			if m != nil {
				t.Fatal("message returned with an error")
			}
			return
		}
		b, err := Marshal(m)
		if err != nil {
			t.Fatalf("Marshal(%#v): %v", m, err)
		}
		quirk := m.Type() == MsgUserAuthFailure && len(data) == len(b)+1
		if len(b) != len(data) && !quirk {
			t.Fatalf("re-encoded %d bytes as %d", len(data), len(b))
		}
		m2, err := Unmarshal(b)
		if err != nil {
			t.Fatalf("Unmarshal(Marshal(m)): %v", err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip:\n%#v\n%#v", m, m2)
		}
		b2, _ := Marshal(m2)
		if !bytes.Equal(b, b2) {
			t.Fatal("encoding not stable")
		}
	})
}

// FuzzReader: the frame reader never panics on any stream cut into any
// reads, and every frame it returns is exactly one message that Unmarshal
// accepts.
func FuzzReader(f *testing.F) {
	addSeeds(f)
	f.Add(encodeAll(f, session()))
	f.Fuzz(func(t *testing.T, data []byte) {
		sizes := []int{1, 7, 64, 3, 1000}
		if len(data) > 0 {
			sizes[0] = int(data[0]%13) + 1
		}
		r := NewReader(&chunkReader{b: data, sizes: sizes}, Limits{MaxString: 300, MaxData: 5000})
		toggle := false
		r.RequestSuccessHasPort = func() bool { toggle = !toggle; return toggle }
		consumed := 0
		for {
			b, err := r.Next()
			if err != nil {
				var ute UnknownTypeError
				switch {
				case err == io.EOF, err == io.ErrUnexpectedEOF,
					errors.Is(err, ErrTooLong), errors.Is(err, ErrUnsupported), errors.As(err, &ute):
				default:
					t.Fatalf("unexpected error %v", err)
				}
				break
			}
			consumed += len(b)
			if consumed > len(data) {
				t.Fatal("framed more bytes than the stream holds")
			}
			if _, err := Unmarshal(b); err != nil {
				t.Fatalf("frame %x does not unmarshal: %v", b, err)
			}
		}
	})
}
