package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/amtd-project/amtd/internal/legacy/hello"
)

// MaxRead is the most a hello connection may send (legacy.md §5 step 2):
// more closes the connection without processing.
const MaxRead = 16000

// kind is what the bytes received so far on a hello connection are.
type kind int

const (
	needMore kind = iota // not decided yet
	gotHello             // a complete hello of n bytes
	gotGET               // an HTTP GET request (an operator's browser), headers complete
	tooLarge             // more than MaxRead bytes
	invalid              // cannot become a valid hello
)

var getPrefix = []byte("GET ")

// classify decides what buf, the bytes received so far, is. It never needs
// more than MaxRead+1 bytes to decide. For gotHello, n is the hello's length
// (bytes after it are ignored); for invalid, err says why.
func classify(buf []byte) (k kind, n int, err error) {
	if len(buf) > MaxRead {
		return tooLarge, 0, nil
	}
	if len(buf) < len(getPrefix) && bytes.HasPrefix(getPrefix, buf) {
		return needMore, 0, nil
	}
	if bytes.HasPrefix(buf, getPrefix) {
		if bytes.Contains(buf, []byte("\r\n\r\n")) || bytes.Contains(buf, []byte("\n\n")) {
			return gotGET, 0, nil
		}
		return needMore, 0, nil
	}
	n, err = hello.Complete(buf)
	switch {
	case err != nil:
		return invalid, 0, err
	case n > 0:
		return gotHello, n, nil
	}
	return needMore, 0, nil
}

// readOutcome is the end of reading one hello connection.
type readOutcome struct {
	kind  kind
	hello *hello.Hello
	err   error // invalid: the reason; needMore: why reading stopped
	bytes int   // received
}

// readHello reads one connection until classify decides, the peer closes
// (a complete hello is processed even then; MeshCentral waits for the close),
// or the deadline passes.
func readHello(ctx context.Context, conn net.Conn, timeout time.Duration) readOutcome {
	_ = conn.SetReadDeadline(time.Now().Add(timeout))
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, 0, 1024)
	var tmp [2048]byte
	for {
		k, n, err := classify(buf)
		switch k {
		case gotHello:
			h, perr := hello.Parse(buf[:n])
			if perr != nil { // Complete and Parse disagree: never expected
				return readOutcome{kind: invalid, err: perr, bytes: len(buf)}
			}
			return readOutcome{kind: gotHello, hello: h, bytes: len(buf)}
		case gotGET, tooLarge:
			return readOutcome{kind: k, bytes: len(buf)}
		case invalid:
			return readOutcome{kind: invalid, err: err, bytes: len(buf)}
		}
		room := min(len(tmp), MaxRead+1-len(buf))
		m, rerr := conn.Read(tmp[:room])
		buf = append(buf, tmp[:m]...)
		if rerr == nil {
			continue
		}
		if k, _, _ := classify(buf); k != needMore {
			continue // decide on what arrived with the error
		}
		switch {
		case errors.Is(rerr, io.EOF) && len(buf) == 0:
			return readOutcome{kind: needMore, err: errors.New("closed without sending anything"), bytes: 0}
		case errors.Is(rerr, io.EOF):
			if bytes.HasPrefix(buf, getPrefix) {
				return readOutcome{kind: gotGET, bytes: len(buf)}
			}
			// Decode what there is for the reason (e.g. hash count vs data).
			_, perr := hello.Parse(buf)
			return readOutcome{kind: invalid, err: perr, bytes: len(buf)}
		case ctx.Err() != nil:
			return readOutcome{kind: needMore, err: ctx.Err(), bytes: len(buf)}
		case errors.Is(rerr, os.ErrDeadlineExceeded):
			return readOutcome{kind: needMore, err: fmt.Errorf("incomplete after %v", timeout), bytes: len(buf)}
		default:
			return readOutcome{kind: needMore, err: rerr, bytes: len(buf)}
		}
	}
}

// helloPage is the answer to a browser pointed at the hello port.
const helloPage = `<!DOCTYPE html><html><head><meta charset="utf-8"><title>Intel AMT hello server</title></head>` +
	`<body><h1>Intel AMT hello server</h1><p>This is amtd's Intel AMT hello server: Intel AMT devices should send ` +
	`notification to this port for activation. It serves no web pages.</p></body></html>`

func writeHelloPage(conn net.Conn) {
	_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		len(helloPage), helloPage)
}
