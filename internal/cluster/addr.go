package cluster

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// AdvertiseURL returns the base URL other instances forward requests to.
//
// addr is the operator's setting: a URL ("http://10.0.0.5:8181",
// "https://amtd-1.internal:8181") or host:port, which gets https:// when
// the HTTP listener serves TLS and http:// otherwise. When addr is empty,
// the listener's own address is used if it is a concrete IP (not 0.0.0.0
// or ::); otherwise the result is "" and peers cannot forward to this
// instance (the caller should warn).
func AdvertiseURL(addr string, listener net.Addr, tlsOn bool) (string, error) {
	scheme := "http"
	if tlsOn {
		scheme = "https"
	}
	if addr == "" {
		ta, ok := listener.(*net.TCPAddr)
		if !ok || ta.IP == nil || ta.IP.IsUnspecified() {
			return "", nil
		}
		return scheme + "://" + net.JoinHostPort(ta.IP.String(), fmt.Sprint(ta.Port)), nil
	}
	if strings.Contains(addr, "://") {
		u, err := url.Parse(addr)
		if err != nil {
			return "", fmt.Errorf("advertised address %q: %w", addr, err)
		}
		if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.User != nil ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return "", fmt.Errorf("advertised address %q: want http(s)://host[:port]", addr)
		}
		return u.Scheme + "://" + u.Host, nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" {
		return "", fmt.Errorf("advertised address %q: want host:port or a URL", addr)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return "", fmt.Errorf("advertised address %q: not an address peers can reach", addr)
	}
	return scheme + "://" + net.JoinHostPort(host, port), nil
}

// peerTLS is the client TLS configuration for dialling the peer host over
// https. A peer is trusted when it presents trustLeaf — the certificate
// this instance serves (instances usually share one, and the handshake
// proves the peer holds its key) — or a certificate that roots (nil: the
// system's) vouch for under host, a name or an IP.
func peerTLS(host string, trustLeaf []byte, roots *x509.CertPool) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         host,
		NextProtos:         []string{"http/1.1"},
		InsecureSkipVerify: true, // replaced by VerifyConnection (it knows host, IPs included)
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("cluster: peer sent no certificate")
			}
			leaf := cs.PeerCertificates[0]
			if len(trustLeaf) > 0 && bytes.Equal(leaf.Raw, trustLeaf) {
				return nil
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: roots, Intermediates: inter})
			return err
		},
	}
}
