package api

import (
	"context"
	"net/http"
	"strings"
	"time"
)

// HealthTimeout bounds each backend probe of a health check.
const HealthTimeout = 5 * time.Second

// DBHealth is the "db" part of a health report.
type DBHealth struct {
	Name   string `json:"name"`   // "SQLITE" or "POSTGRES"
	Status string `json:"status"` // "OK" or a short error code
}

// SecretStoreHealth is the "secretStore" part: Status is the backend's
// sys/health-shaped map, or a short error string.
type SecretStoreHealth struct {
	Name   string `json:"name"`
	Status any    `json:"status"`
}

// HealthReport is the body of the RPS and MPS health routes (admin-api.md
// §10, mps.md §6.4).
type HealthReport struct {
	DB          DBHealth          `json:"db"`
	SecretStore SecretStoreHealth `json:"secretStore"`
}

// Health probes the database and the secret store. status is 200, or 503
// when the database is not OK or the secret store is not initialized or is
// sealed. Error details are reduced to short codes: nothing internal (paths,
// addresses, credentials) reaches the client.
func (s *Server) Health(ctx context.Context) (int, HealthReport) {
	var rep HealthReport
	healthy := true

	rep.DB.Name = strings.ToUpper(s.store.Dialect())
	dctx, cancel := context.WithTimeout(ctx, HealthTimeout)
	err := s.store.Ping(dctx)
	cancel()
	if err != nil {
		healthy = false
		rep.DB.Status = dbErrorCode(err)
		LoggerFrom(ctx).Warn("health: database check failed", "err", err)
	} else {
		rep.DB.Status = "OK"
	}

	rep.SecretStore.Name = strings.ToUpper(s.secrets.Name())
	sctx, cancel := context.WithTimeout(ctx, HealthTimeout)
	st, err := s.secrets.Health(sctx)
	cancel()
	switch {
	case err != nil:
		healthy = false
		rep.SecretStore.Status = "unknown error"
		LoggerFrom(ctx).Warn("health: secret store check failed", "err", err)
	default:
		rep.SecretStore.Status = st
		if st["initialized"] != true || st["sealed"] == true {
			healthy = false
		}
	}
	if !healthy {
		return http.StatusServiceUnavailable, rep
	}
	return http.StatusOK, rep
}

// dbErrorCode maps a database error to RPS's status strings.
func dbErrorCode(err error) string {
	msg := err.Error()
	if strings.Contains(msg, "28P01") || strings.Contains(msg, "password authentication failed") {
		return "invalid_password"
	}
	return "unknown error"
}
