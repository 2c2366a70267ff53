package api

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/argon2"

	"github.com/amtd-project/amtd/internal/api/valid"
	"github.com/amtd-project/amtd/internal/secrets"
	"github.com/amtd-project/amtd/internal/store"
)

// Authentication modes.
const (
	AuthJWT  = "jwt"  // bearer JWT required on every non-public route (default)
	AuthNone = "none" // no token required (development, or behind a gateway)
)

// AllDevices is the deviceId claim of API tokens; relay tokens carry a
// device GUID instead and are refused on API routes (mps.md §6.2).
const AllDevices = "*"

// Defaults.
const (
	DefaultIssuer        = "amtd"
	DefaultTokenLifetime = 24 * time.Hour // MPS default: 1440 minutes
	DefaultAdminUsername = "admin"
)

// Store keys.
const (
	// SigningKeySecret is the secret-store key of the JWT signing key, shared
	// by every instance using the same secret store.
	SigningKeySecret = "system/api/jwt-signing-key"
	signingKeyField  = "KEY"
	// SettingAdminUsername and SettingAdminPasswordHash hold the generated
	// admin credentials (argon2id hash, never the password).
	SettingAdminUsername     = "api.admin.username"
	SettingAdminPasswordHash = "api.admin.password_hash"
)

// AuthConfig configures the API's authentication.
type AuthConfig struct {
	// Mode is AuthJWT (default when empty) or AuthNone.
	Mode string
	// Username and Password of the administrator. When Password is empty,
	// the first start generates one (reported once by
	// Server.GeneratedCredentials) and stores only its argon2id hash; later
	// starts use the stored hash. Username defaults to "admin".
	Username string
	Password string
	// Issuer is the JWT iss claim, checked on every token (default "amtd").
	Issuer string
	// TokenLifetime of tokens from POST /api/v1/authorize (default 24h).
	TokenLifetime time.Duration
}

// Claims is the JWT payload MPS issues and Kong checks:
// {"tenantId":…,"iss":…,"deviceId":"*"|<guid>,"exp":…}.
type Claims struct {
	TenantID  string           `json:"tenantId"`
	Issuer    string           `json:"iss"`
	DeviceID  string           `json:"deviceId"`
	ExpiresAt *jwt.NumericDate `json:"exp"`
}

// jwt.Claims implementation.
func (c *Claims) GetExpirationTime() (*jwt.NumericDate, error) { return c.ExpiresAt, nil }
func (c *Claims) GetIssuedAt() (*jwt.NumericDate, error)       { return nil, nil }
func (c *Claims) GetNotBefore() (*jwt.NumericDate, error)      { return nil, nil }
func (c *Claims) GetIssuer() (string, error)                   { return c.Issuer, nil }
func (c *Claims) GetSubject() (string, error)                  { return "", nil }
func (c *Claims) GetAudience() (jwt.ClaimStrings, error)       { return nil, nil }

// Authenticator issues and verifies amtd's tokens and checks the admin
// credentials.
type Authenticator struct {
	mode     string
	issuer   string
	lifetime time.Duration
	key      []byte
	now      func() time.Time
	log      *slog.Logger

	mu       sync.RWMutex
	username string
	password string // configured password (plaintext, from configuration)
	hash     string // argon2id hash of a generated password
}

// Mode is AuthJWT or AuthNone.
func (a *Authenticator) Mode() string { return a.mode }

// Issuer is the iss claim of issued tokens.
func (a *Authenticator) Issuer() string { return a.issuer }

// Sentinel verification errors.
var (
	ErrNoToken      = errors.New("missing bearer token")
	ErrInvalidToken = errors.New("invalid token")
	ErrExpiredToken = errors.New("token expired")
)

// IssueToken signs a token for tenant and deviceID ("*" for API access, a
// device GUID for one relay session) valid for lifetime.
func (a *Authenticator) IssueToken(tenant, deviceID string, lifetime time.Duration) (string, error) {
	c := &Claims{
		TenantID:  tenant,
		Issuer:    a.issuer,
		DeviceID:  deviceID,
		ExpiresAt: jwt.NewNumericDate(a.now().Add(lifetime).Truncate(time.Second)),
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(a.key)
}

// Verify checks a token's signature (HS256 only), expiry and issuer and
// returns its claims. Errors are ErrInvalidToken or ErrExpiredToken.
func (a *Authenticator) Verify(token string) (*Claims, error) {
	c := &Claims{}
	_, err := jwt.ParseWithClaims(token, c, func(t *jwt.Token) (any, error) { return a.key, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(a.issuer),
		jwt.WithExpirationRequired(),
		jwt.WithStrictDecoding(),
		jwt.WithTimeFunc(a.now),
	)
	switch {
	case err == nil:
		return c, nil
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, ErrExpiredToken
	default:
		return nil, ErrInvalidToken
	}
}

// CheckPassword reports whether username (case-insensitive, as MPS) and
// password are the administrator's. It reports false when no credentials
// exist (auth=none without configured credentials).
func (a *Authenticator) CheckPassword(username, password string) bool {
	a.mu.RLock()
	wantUser, wantPw, hash := a.username, a.password, a.hash
	a.mu.RUnlock()
	userOK := wantUser != "" && strings.EqualFold(username, wantUser)
	var pwOK bool
	switch {
	case wantPw != "":
		pwOK = subtle.ConstantTimeCompare([]byte(password), []byte(wantPw)) == 1
	case hash != "":
		pwOK = verifyPassword(hash, password)
	}
	return userOK && pwOK
}

func (a *Authenticator) hasCredentials() bool {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.username != "" && (a.password != "" || a.hash != "")
}

// bearer extracts the token of an "Authorization: Bearer …" header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// authenticate checks an API request and returns its claims. With AuthNone
// a valid token still sets the tenant; anything else is the default tenant.
func (a *Authenticator) authenticate(r *http.Request) (*Claims, *Error) {
	tok, ok := bearer(r)
	if a.mode == AuthNone {
		if ok {
			if c, err := a.Verify(tok); err == nil && c.DeviceID == AllDevices {
				return c, nil
			}
		}
		return &Claims{DeviceID: AllDevices}, nil
	}
	if !ok {
		return nil, unauthorized(ErrNoToken.Error())
	}
	c, err := a.Verify(tok)
	if err != nil {
		return nil, unauthorized(err.Error())
	}
	if c.DeviceID != AllDevices {
		return nil, unauthorized("token is not valid for API access")
	}
	return c, nil
}

func unauthorized(reason string) *Error {
	return &Error{Status: http.StatusUnauthorized, Title: "Unauthorized", Message: reason}
}

// newAuthenticator loads or creates the signing key and the admin
// credentials. generated is the new admin password when one was generated
// by this call ("" otherwise).
func newAuthenticator(ctx context.Context, cfg AuthConfig, st store.Store, sec secrets.Store, log *slog.Logger, now func() time.Time) (a *Authenticator, generated string, err error) {
	mode := cfg.Mode
	if mode == "" {
		mode = AuthJWT
	}
	if mode != AuthJWT && mode != AuthNone {
		return nil, "", fmt.Errorf("api: unknown auth mode %q (want %q or %q)", cfg.Mode, AuthJWT, AuthNone)
	}
	a = &Authenticator{mode: mode, issuer: cfg.Issuer, lifetime: cfg.TokenLifetime, now: now, log: log}
	if a.issuer == "" {
		a.issuer = DefaultIssuer
	}
	if a.lifetime <= 0 {
		a.lifetime = DefaultTokenLifetime
	}
	if a.key, err = loadSigningKey(ctx, sec); err != nil {
		return nil, "", err
	}
	if generated, err = a.loadCredentials(ctx, cfg, st); err != nil {
		return nil, "", err
	}
	return a, generated, nil
}

// loadSigningKey reads the shared signing key, creating it on first use.
// Of instances starting together on an empty store, one key is created
// (secrets.Store.Create) and every instance reads that one.
func loadSigningKey(ctx context.Context, sec secrets.Store) ([]byte, error) {
	data, err := sec.Get(ctx, SigningKeySecret)
	if errors.Is(err, secrets.ErrNotFound) {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		created := sec.Create(ctx, SigningKeySecret, map[string]string{signingKeyField: base64.StdEncoding.EncodeToString(key)})
		if created != nil && !errors.Is(created, secrets.ErrExists) {
			return nil, fmt.Errorf("api: storing the JWT signing key: %w", created)
		}
		data, err = sec.Get(ctx, SigningKeySecret)
	}
	if err != nil {
		return nil, fmt.Errorf("api: reading the JWT signing key: %w", err)
	}
	key, err := base64.StdEncoding.DecodeString(data[signingKeyField])
	if err != nil || len(key) < 32 {
		return nil, errors.New("api: the stored JWT signing key is malformed")
	}
	return key, nil
}

// loadCredentials sets the admin credentials from the configuration, the
// stored hash, or a newly generated password.
func (a *Authenticator) loadCredentials(ctx context.Context, cfg AuthConfig, st store.Store) (string, error) {
	a.username = cfg.Username
	if cfg.Password != "" {
		if a.username == "" {
			a.username = DefaultAdminUsername
		}
		a.password = cfg.Password
		return "", nil
	}
	hash, err := st.GetSetting(ctx, SettingAdminPasswordHash)
	switch {
	case err == nil:
		a.hash = hash
		if a.username == "" {
			if u, err := st.GetSetting(ctx, SettingAdminUsername); err == nil {
				a.username = u
			}
		}
		if a.username == "" {
			a.username = DefaultAdminUsername
		}
		return "", nil
	case !errors.Is(err, store.ErrNotFound):
		return "", fmt.Errorf("api: reading the admin credentials: %w", err)
	}
	if a.mode == AuthNone {
		// Nothing to protect: no password is generated, and
		// POST /api/v1/authorize answers 405 as MPS does with auth disabled.
		a.username = ""
		return "", nil
	}
	if a.username == "" {
		a.username = DefaultAdminUsername
	}
	pw, err := GeneratePassword()
	if err != nil {
		return "", err
	}
	hash, err = hashPassword(pw)
	if err != nil {
		return "", err
	}
	if err := st.PutSetting(ctx, SettingAdminUsername, a.username); err != nil {
		return "", fmt.Errorf("api: storing the admin credentials: %w", err)
	}
	if err := st.PutSetting(ctx, SettingAdminPasswordHash, hash); err != nil {
		return "", fmt.Errorf("api: storing the admin credentials: %w", err)
	}
	// Another instance may have generated its own at the same time; the
	// stored hash is the one that counts.
	stored, err := st.GetSetting(ctx, SettingAdminPasswordHash)
	if err != nil {
		return "", fmt.Errorf("api: reading the admin credentials: %w", err)
	}
	a.hash = stored
	if stored != hash {
		return "", nil
	}
	return pw, nil
}

// GeneratePassword returns a random 27-character password (160 bits).
func GeneratePassword() (string, error) {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// argon2id parameters (OWASP's recommended minimum: 19 MiB, t=2, p=1).
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
)

// hashPassword returns an argon2id hash in PHC string form.
func hashPassword(pw string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	sum := argon2.IDKey([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(sum)), nil
}

// verifyPassword checks pw against a PHC argon2id hash.
func verifyPassword(encoded, pw string) bool {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false
	}
	var m uint32
	var t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m == 0 || t == 0 || p == 0 || m > 1<<22 || t > 64 {
		return false
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil {
		return false
	}
	want, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(want) == 0 || len(want) > 128 {
		return false
	}
	got := argon2.IDKey([]byte(pw), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// handleAuthorize is POST /api/v1/authorize (mps.md §6.2).
func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	body, err := DecodeBody(r)
	if err != nil {
		var e *Error
		errors.As(err, &e)
		WriteError(w, r, e)
		return
	}
	v := valid.New()
	// MPS: isString() (default message) then not-empty, as its suite checks.
	v.Body(body, "username").IsString("Invalid value").NotEmpty("User name is required")
	v.Body(body, "password").NotEmpty("Password is required")
	if v.Failed() {
		WriteJSON(w, r, http.StatusBadRequest, v.Errors().Body())
		return
	}
	if s.auth.mode == AuthNone && !s.auth.hasCredentials() {
		WriteJSON(w, r, http.StatusMethodNotAllowed, map[string]string{"message": "Authentication disabled on MPS"})
		return
	}
	user, pw := valid.String(body["username"]), valid.String(body["password"])
	if !s.auth.CheckPassword(user, pw) {
		LoggerFrom(r.Context()).Warn("authorize: rejected credentials", "remote", r.RemoteAddr)
		WriteJSON(w, r, http.StatusUnauthorized, map[string]string{"message": "Incorrect Username and/or Password!"})
		return
	}
	tok, err := s.auth.IssueToken(Tenant(r.Context()), AllDevices, s.auth.lifetime)
	if err != nil {
		LoggerFrom(r.Context()).Error("authorize: signing a token", "err", err)
		WriteJSON(w, r, http.StatusInternalServerError, map[string]string{"message": "Internal Server Error"})
		return
	}
	WriteJSON(w, r, http.StatusOK, map[string]string{"token": tok})
}
