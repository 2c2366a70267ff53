package cluster

import (
	"net/http"
	"strings"
)

// DeviceOf is the default route matcher of a Forwarder: it returns the
// device GUID (lower case) of a request that must run where the device's
// CIRA connection is —
//
//	/api/v1/amt/…/<guid>[/…]                      every AMT action
//	/api/v1/devices/disconnect/<guid>             DELETE
//	/api/v1/devices/redirectstatus/<guid>         GET
//	/api/v1/devices/refresh/<guid>                DELETE
//	/relay/webrelay.ashx?host=<guid>&…            the relay WebSocket
//
// also under the gateway prefix /mps (and the relay at its gateway path
// /mps/ws/relay/webrelay.ashx), matched case-insensitively as the
// API router does. The GUID is the first path segment after the route's
// literal part that is a UUID; requests without one are not matched (the
// local handler validates them).
func DeviceOf(r *http.Request) (string, bool) {
	p := r.URL.Path
	if hasPrefixFold(p, "/mps/") {
		p = p[len("/mps"):]
		if hasPrefixFold(p, "/ws/relay/") { // the relay's gateway alias
			p = p[len("/ws"):]
		}
	}
	switch {
	case hasPrefixFold(p, "/api/v1/amt/"):
		rest := p[len("/api/v1/amt/"):]
		for rest != "" {
			var seg string
			seg, rest, _ = strings.Cut(rest, "/")
			if isUUID(seg) {
				return strings.ToLower(seg), true
			}
		}
	case hasPrefixFold(p, "/api/v1/devices/"):
		sub, rest, _ := strings.Cut(p[len("/api/v1/devices/"):], "/")
		if strings.EqualFold(sub, "disconnect") || strings.EqualFold(sub, "redirectstatus") || strings.EqualFold(sub, "refresh") {
			seg, _, _ := strings.Cut(rest, "/")
			if isUUID(seg) {
				return strings.ToLower(seg), true
			}
		}
	case strings.EqualFold(strings.TrimSuffix(p, "/"), "/relay/webrelay.ashx"):
		if h := r.URL.Query().Get("host"); isUUID(h) {
			return strings.ToLower(h), true
		}
	}
	return "", false
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// isUUID reports the 8-4-4-4-12 hexadecimal form.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}
