// Package cira is amtd's CIRA presence server: the TLS listener AMT devices
// call home to, the APF session of each device (spec/mps.md §1–§5), and the
// channels through which WS-MAN and the redirection relay reach devices.
//
// Wiring (the serve command):
//
//	srv, err := cira.NewServer(cira.Config{
//		Certificate:   &ciraCert,          // from internal/ca
//		Authenticator: deviceAuthenticator, // store-backed: UUID -> MPS credentials, tenant
//		Observer:      statusUpdater,       // Connected / Disconnected -> device store, events
//		Logger:        logger,
//	})
//	ln, _ := net.Listen("tcp", ":4433")
//	go srv.Serve(ctx, ln) // returns after ctx is done and every connection is closed
//
// Management API:
//
//	rt := srv.RoundTripper(uuid)               // WS-MAN, one channel to 16992 per exchange
//	ch, err := srv.Dial(ctx, uuid, 16994)      // raw channel (net.Conn) for KVM/SOL/IDER
//	info, ok := srv.Lookup(uuid)               // connected? since when, from where, last seen
//	srv.Disconnect(uuid)                       // DELETE /api/v1/devices/disconnect/:guid
//
// Design (after golang.org/x/crypto/ssh's mux): one goroutine per
// connection reads and dispatches every message; writes are made by
// whichever goroutine has something to send, under a mutex; channels have no
// goroutine. Timers are the socket's own deadlines. An idle connection holds
// its TLS state, a 96-byte frame buffer and a 4 KiB goroutine stack: it
// waits for the socket outside tls.Conn.Read (idlewait_unix.go) and drops
// TLS's empty input buffer meanwhile (tlsbuf.go). BenchmarkIdleConnections
// measured 8.4 KiB of Go heap and stacks per idle connection (10 KiB of
// resident memory) with 19,500 devices on loopback.
package cira
