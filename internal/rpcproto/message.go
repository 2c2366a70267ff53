// Package rpcproto is the server side of the rpc-go ⇄ provisioning-server
// WebSocket protocol (spec/rpc-protocol.md): the envelope, the first message,
// WS-MAN relayed through the client as raw HTTP, heartbeats and the terminal
// success/error messages. What is done with a session (activation,
// deactivation, maintenance) is a Handler's business (package provision).
package rpcproto

import (
	"encoding/base64"
	"encoding/json"
)

// Methods of the envelope (rpc-protocol.md §3).
const (
	MethodWSMAN             = "wsman"
	MethodResponse          = "response"
	MethodSuccess           = "success"
	MethodError             = "error"
	MethodHeartbeatRequest  = "heartbeat_request"
	MethodHeartbeatResponse = "heartbeat_response"
	MethodProgress          = "progress"
	MethodTLSData           = "tls_data"
	MethodPortSwitch        = "port_switch"
	MethodPortSwitchAck     = "port_switch_ack"
	MethodConnectionReset   = "connection_reset"
)

// ClientMessage is a message from rpc-go. rpc-go always sends every key.
type ClientMessage struct {
	Method          string  `json:"method"`
	APIKey          string  `json:"apiKey"`
	AppVersion      string  `json:"appVersion"`
	ProtocolVersion *string `json:"protocolVersion"`
	Status          string  `json:"status"`
	Message         string  `json:"message"`
	FQDN            string  `json:"fqdn"`
	Payload         *string `json:"payload"`
	TenantID        string  `json:"tenantId"`
}

// serverMessage is what amtd sends; keys in RPS's order. Payload nil is sent
// as JSON null (terminal messages).
type serverMessage struct {
	Method          string  `json:"method"`
	APIKey          string  `json:"apiKey"`
	AppVersion      string  `json:"appVersion"`
	ProtocolVersion string  `json:"protocolVersion"`
	Status          string  `json:"status"`
	Message         string  `json:"message"`
	Payload         *string `json:"payload"`
	TenantID        string  `json:"tenantId"`
}

func (s *Server) newMessage(method, status, message string, payload *string) serverMessage {
	return serverMessage{Method: method, APIKey: "xxxxx", AppVersion: s.cfg.AppVersion,
		ProtocolVersion: ProtocolVersion, Status: status, Message: message, Payload: payload}
}

func b64(p []byte) *string {
	s := base64.StdEncoding.EncodeToString(p)
	return &s
}

func strPtr(s string) *string { return &s }

// StatusMessage is the JSON object carried as a string in the message of
// success and error after a flow ran (rpc-protocol.md §7.1).
type StatusMessage struct {
	Status           string      `json:"Status"`
	Network          string      `json:"Network,omitempty"`
	CIRAConnection   string      `json:"CIRAConnection,omitempty"`
	TLSConfiguration string      `json:"TLSConfiguration,omitempty"`
	Components       *Components `json:"Components,omitempty"`
}

// Components is RPS 2.40's per-component result.
type Components struct {
	Activation      ComponentResult `json:"Activation"`
	WiredNetwork    ComponentResult `json:"WiredNetwork"`
	WirelessNetwork ComponentResult `json:"WirelessNetwork"`
	TLS             ComponentResult `json:"TLS"`
	CIRAProxy       ComponentResult `json:"CIRAProxy"`
	CIRAConnection  ComponentResult `json:"CIRAConnection"`
}

// ComponentResult: Result is "Success", "Failure" or "NotApplicable".
type ComponentResult struct {
	Result  string `json:"Result"`
	Mode    string `json:"Mode,omitempty"`
	Details string `json:"Details,omitempty"`
}

// String serialises the status message as rpc-go expects it in "message".
func (m StatusMessage) String() string {
	b, _ := json.Marshal(m)
	return string(b)
}
