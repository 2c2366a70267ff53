package device_test

import (
	"bufio"
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/client"

	"github.com/amtd-project/amtd/internal/testutil/testpki"
	"github.com/amtd-project/amtd/sim/device"
	"github.com/amtd-project/amtd/sim/firmware"
)

const (
	testSuffix   = "corp.example.com"
	testPassword = "P@ssw0rd-Sim1"
)

type devOpts struct {
	fw     firmware.Config
	dev    device.Config
	chain  *testpki.Chain // its root hash is added as a user hash
	noPath bool
}

// keySource hands out cached test keys so that GenerateKeyPair is fast; each
// device gets distinct keys (slots 100+).
func keySource() func(bits int) (*rsa.PrivateKey, error) {
	var n atomic.Int64
	return func(bits int) (*rsa.PrivateKey, error) {
		return testpki.Key(bits, 100+int(n.Add(1))), nil
	}
}

func rootHash(c *testpki.Chain) string {
	sum := sha256.Sum256(c.Root.Raw)
	return hex.EncodeToString(sum[:])
}

// startDevice runs a device on a free loopback port.
func startDevice(t *testing.T, o devOpts) *device.Device {
	t.Helper()
	cfg := o.fw
	if !o.noPath && cfg.Path == "" {
		cfg.Path = filepath.Join(t.TempDir(), "firmware.json")
	}
	if cfg.DNSSuffix == "" {
		cfg.DNSSuffix = testSuffix
	}
	if cfg.GenerateKey == nil {
		cfg.GenerateKey = keySource()
	}
	if o.chain != nil {
		cfg.TrustHashes = append(cfg.TrustHashes, rootHash(o.chain))
	}
	fw, err := firmware.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dc := o.dev
	dc.Firmware = fw
	if len(dc.Addrs) == 0 {
		dc.Addrs = []string{"127.0.0.1:0"}
	}
	d, err := device.New(dc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := d.Start(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		d.Close()
	})
	return d
}

// dialTo makes go-wsman-messages' fixed 16992/16993 URL reach the device.
func dialTo(addr func() string) func(ctx context.Context, network, _ string) (net.Conn, error) {
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr())
	}
}

// wsmanClient is Intel's client talking to the device over real HTTP.
func wsmanClient(d *device.Device, user, pw string) wsman.Messages {
	tr := &http.Transport{DisableKeepAlives: true, DialContext: dialTo(d.Addr)}
	return wsman.NewMessages(client.Parameters{Target: "127.0.0.1", Username: user, Password: pw, UseDigest: true, Transport: tr, Timeout: 10 * time.Second})
}

// wsmanTLSClient talks HTTPS to the device's 16993 address.
func wsmanTLSClient(d *device.Device, user, pw string, cfg *tls.Config) wsman.Messages {
	tr := &http.Transport{DisableKeepAlives: true, DialContext: dialTo(d.TLSAddr), TLSClientConfig: cfg}
	return wsman.NewMessages(client.Parameters{Target: "127.0.0.1", Username: user, Password: pw, UseDigest: true, UseTLS: true, Transport: tr, Timeout: 10 * time.Second})
}

func lsaClient(d *device.Device) wsman.Messages {
	u, p := d.Firmware().LocalSystemAccount()
	return wsmanClient(d, u, p)
}

func adminClient(d *device.Device) wsman.Messages { return wsmanClient(d, "admin", testPassword) }

// rawExchange sends raw bytes and returns the raw response.
func rawExchange(t *testing.T, addr, request string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("read: %v (got %q)", err, b)
	}
	return string(b)
}

func soapRequest(action, resource, messageID, selectors, body string) string {
	return `<?xml version="1.0" encoding="utf-8"?><Envelope xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns="http://www.w3.org/2003/05/soap-envelope"><Header><a:Action>` + action +
		`</a:Action><a:To>/wsman</a:To><w:ResourceURI>` + resource + `</w:ResourceURI><a:MessageID>` + messageID +
		`</a:MessageID><a:ReplyTo><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo><w:OperationTimeout>PT60S</w:OperationTimeout>` + selectors + `</Header><Body>` + body + `</Body></Envelope>`
}

// digestPost performs one digest-authenticated POST by hand (401 first) and
// returns the raw authorised response.
func digestPost(t *testing.T, addr, user, pw, body string, chunked bool) string {
	t.Helper()
	first := rawExchange(t, addr, "POST /wsman HTTP/1.1\r\nHost: "+addr+"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	ch := header(first, "WWW-Authenticate")
	realm := between(ch, `realm="`, `"`)
	nonce := between(ch, `nonce="`, `"`)
	ha1 := md5hex(user + ":" + realm + ":" + pw)
	resp := md5hex(ha1 + ":" + nonce + ":00000001:c0ffee:auth:" + md5hex("POST:/wsman"))
	auth := fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="/wsman", qop=auth, response="%s", nc=00000001, cnonce="c0ffee"`, user, realm, nonce, resp)
	var b strings.Builder
	b.WriteString("POST /wsman HTTP/1.1\r\nHost: " + addr + "\r\nAuthorization: " + auth + "\r\nConnection: close\r\n")
	if chunked {
		b.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		for i := 0; i < len(body); i += 100 {
			part := body[i:min(i+100, len(body))]
			fmt.Fprintf(&b, "%x\r\n%s\r\n", len(part), part)
		}
		b.WriteString("0\r\n\r\n")
	} else {
		fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	}
	return rawExchange(t, addr, b.String())
}

func header(raw, name string) string {
	r := bufio.NewReader(strings.NewReader(raw))
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		return ""
	}
	return resp.Header.Get(name)
}

func between(s, a, b string) string {
	i := strings.Index(s, a)
	if i < 0 {
		return ""
	}
	s = s[i+len(a):]
	j := strings.Index(s, b)
	if j < 0 {
		return ""
	}
	return s[:j]
}

func netDial(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, 5*time.Second) }
