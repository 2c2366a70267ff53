package rpcproto

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Payload is the first message's payload (rpc-protocol.md §5).
type Payload struct {
	Ver               string           `json:"ver"`
	Build             string           `json:"build"`
	SKU               string           `json:"sku"`
	Features          string           `json:"features"`
	UUID              string           `json:"-"`
	RawUUID           json.RawMessage  `json:"uuid"`
	Username          string           `json:"username"`
	Password          string           `json:"password"`
	CurrentMode       int              `json:"currentMode"`
	Hostname          string           `json:"hostname"`
	FQDN              string           `json:"fqdn"` // the DNS suffix
	Client            string           `json:"client"`
	CertHashes        []string         `json:"certHashes"`
	IPConfiguration   *IPConfiguration `json:"ipConfiguration"`
	HostnameInfo      *HostnameInfo    `json:"hostnameInfo"`
	FriendlyName      string           `json:"friendlyName"`
	TLSEnforced       bool             `json:"tlsEnforced"`
	TLSTunnel         bool             `json:"tlsTunnel"`
	LMSInstalled      bool             `json:"lmsInstalled"`
	ProgressSupported bool             `json:"progressSupported"`
}

// IPConfiguration is filled by rpc-go v2 for maintenance syncip.
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

// HostnameInfo is filled by rpc-go v2 for maintenance synchostname.
type HostnameInfo struct {
	DNSSuffixOS string `json:"dnsSuffixOS"`
	Hostname    string `json:"hostname"`
}

var errInvalidPayload = errors.New("Invalid payload from client")

// DecodePayload decodes and checks the base64 JSON payload of a first
// message. Errors carry RPS's texts (rpc-protocol.md §12).
func DecodePayload(b64payload string) (*Payload, error) {
	raw, err := base64.StdEncoding.DecodeString(b64payload)
	if err != nil {
		return nil, fmt.Errorf("Failed to parse client message payload. %v", err)
	}
	var p Payload
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("Failed to parse client message payload. %v", err)
	}
	uuid, err := decodeUUID(p.RawUUID)
	if err != nil {
		return nil, fmt.Errorf("Failed to parse client message payload. %v", err)
	}
	p.UUID = uuid
	if p.Client == "" || p.Ver == "" || p.Build == "" || p.UUID == "" {
		return nil, errInvalidPayload
	}
	return &p, nil
}

// decodeUUID accepts the string form or a JSON array of 16 numbers (first
// three fields little-endian), and returns the lower-case string form.
func decodeUUID(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", err
		}
		return strings.ToLower(s), nil
	}
	var b []int
	if err := json.Unmarshal(raw, &b); err != nil {
		return "", errors.New("uuid must be a string or an array of 16 bytes")
	}
	if len(b) != 16 {
		return "", errors.New("uuid array must have 16 bytes")
	}
	var u [16]byte
	for i, v := range b {
		if v < 0 || v > 255 {
			return "", errors.New("uuid array values must be bytes")
		}
		u[i] = byte(v)
	}
	return FormatUUID(u), nil
}

// FormatUUID renders SMBIOS-order UUID bytes (first three fields
// little-endian) as the lower-case 8-4-4-4-12 string.
func FormatUUID(u [16]byte) string {
	return fmt.Sprintf("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		u[3], u[2], u[1], u[0], u[5], u[4], u[7], u[6], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15])
}
