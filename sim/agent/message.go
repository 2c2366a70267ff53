package agent

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
)

// Protocol constants of rpc-go (spec/rpc-protocol.md §2).
const (
	protocolVersion   = "4.0.0"
	clientAPIKey      = "key"
	clientName        = "RPC"
	defaultAppVersion = "Development Build"
	statusOK          = "ok"
)

// envelope is one WebSocket message. The field order is rpc-go's; every key
// is always present.
type envelope struct {
	Method          string `json:"method"`
	APIKey          string `json:"apiKey"`
	AppVersion      string `json:"appVersion"`
	ProtocolVersion string `json:"protocolVersion"`
	Status          string `json:"status"`
	Message         string `json:"message"`
	Fqdn            string `json:"fqdn"`
	Payload         string `json:"payload"`
	TenantID        string `json:"tenantId"`
}

// IPConfiguration is the payload's ipConfiguration object (filled by v2 for
// maintenance syncip only).
type IPConfiguration struct {
	DHCP         bool   `json:"dhcp"`
	Static       bool   `json:"static"`
	IPSync       bool   `json:"ipsync"`
	IPAddress    string `json:"ipAddress"`
	Netmask      string `json:"netmask"`
	Gateway      string `json:"gateway"`
	PrimaryDNS   string `json:"primaryDns"`
	SecondaryDNS string `json:"secondaryDns"`
}

// HostnameInfo is the payload's hostnameInfo object (filled by v2 for
// maintenance synchostname only).
type HostnameInfo struct {
	DNSSuffixOS string `json:"dnsSuffixOS"`
	Hostname    string `json:"hostname"`
}

// Payload is the first message's payload, keys in rpc-go's order
// (spec/rpc-protocol.md §5).
type Payload struct {
	Version           string          `json:"ver"`
	Build             string          `json:"build"`
	SKU               string          `json:"sku"`
	Features          string          `json:"features"`
	UUID              string          `json:"uuid"`
	Username          string          `json:"username"`
	Password          string          `json:"password"`
	CurrentMode       int             `json:"currentMode"`
	Hostname          string          `json:"hostname"`
	FQDN              string          `json:"fqdn"`
	Client            string          `json:"client"`
	CertificateHashes []string        `json:"certHashes"`
	IPConfiguration   IPConfiguration `json:"ipConfiguration"`
	HostnameInfo      HostnameInfo    `json:"hostnameInfo"`
	FriendlyName      string          `json:"friendlyName,omitempty"`
	TLSEnforced       bool            `json:"tlsEnforced,omitempty"`
	TLSTunnel         bool            `json:"tlsTunnel,omitempty"`
	LMSInstalled      bool            `json:"lmsInstalled,omitempty"`
	ProgressSupported bool            `json:"progressSupported,omitempty"`
}

// StatusMessage is the JSON object the server puts in the message of
// success/error after its state machine ran (spec/rpc-protocol.md §7.1).
type StatusMessage struct {
	Status           string          `json:"Status,omitempty"`
	Network          string          `json:"Network,omitempty"`
	CIRAConnection   string          `json:"CIRAConnection,omitempty"`
	TLSConfiguration string          `json:"TLSConfiguration,omitempty"`
	Components       json.RawMessage `json:"Components,omitempty"`
}

// parseStatus returns the status message when msg is a JSON object.
func parseStatus(msg string) *StatusMessage {
	if !strings.HasPrefix(strings.TrimSpace(msg), "{") {
		return nil
	}
	var s StatusMessage
	if json.Unmarshal([]byte(msg), &s) != nil {
		return nil
	}
	return &s
}

// clientMessage builds a client → server message as rpc-go's
// CreateMessageResponse does (status/message "ok", no tenant).
func clientMessage(method, appVersion string, payload []byte) envelope {
	return envelope{
		Method:          method,
		APIKey:          clientAPIKey,
		AppVersion:      appVersion,
		ProtocolVersion: protocolVersion,
		Status:          statusOK,
		Message:         statusOK,
		Payload:         base64.StdEncoding.EncodeToString(payload),
	}
}

// decodeFeatures renders the SKU feature list the way rpc-go derives it
// from the AMT version and SKU strings.
func decodeFeatures(version, sku string) string {
	parts := strings.Split(version, ".")
	if len(parts) <= 1 {
		return "Invalid AMT version format"
	}
	major, err := strconv.ParseFloat(parts[0], 64)
	if err != nil {
		return "Invalid AMT version"
	}
	n, err := strconv.ParseInt(sku, 0, 64)
	if err != nil {
		return "Invalid SKU"
	}
	var out []string
	add := func(cond bool, s string) {
		if cond {
			out = append(out, s)
		}
	}
	switch {
	case major <= 2.2:
		switch n {
		case 0:
			return "AMT + ASF + iQST"
		case 1:
			return "ASF + iQST"
		case 2:
			return "iQST"
		}
		return "Unknown"
	case major < 5:
		add(n&0x02 != 0, "iQST")
		add(n&0x04 != 0, "ASF")
		add(n&0x08 != 0, "AMT")
	default:
		add(n&0x02 != 0 && major < 7, "iQST")
		add(n&0x04 != 0 && major < 6, "ASF")
		add(n&0x08 != 0, "AMT Pro")
		add(n&0x10 != 0, "Intel Standard Manageability")
		add(n&0x20 != 0 && major < 6, "TPM")
		add(n&0x100 != 0 && major < 6, "Home IT")
		add(n&0x400 != 0 && major < 6, "WOX")
		add(n&0x2000 != 0, "AT-p")
		add(n&0x4000 != 0, "Corporate")
		add(n&0x8000 != 0 && major < 8, "L3 Mgt Upgrade")
	}
	return strings.Join(out, " ")
}

// knownInvalidUUID reports the UUIDs rpc-go refuses to send.
func knownInvalidUUID(u string) bool {
	switch strings.ToLower(u) {
	case "00000000-0000-0000-0000-000000000000",
		"ffffffff-ffff-ffff-ffff-ffffffffffff",
		"03000200-0400-0500-0006-000700080009":
		return true
	}
	return false
}
