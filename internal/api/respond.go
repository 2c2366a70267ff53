package api

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// Marshal encodes v as compact JSON the way JSON.stringify does: no HTML
// escaping, no trailing newline.
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// WeakETag computes Express's default ETag for a body:
// W/"<length in hex>-<base64 SHA-1, first 27 characters>".
func WeakETag(body []byte) string {
	sum := sha1.Sum(body)
	h := base64.StdEncoding.EncodeToString(sum[:])
	return fmt.Sprintf(`W/"%x-%s"`, len(body), h[:27])
}

// WriteJSON writes v as JSON with the given status. Every JSON response gets a
// weak ETag (unless the handler already set an ETag header, as the 409/412
// conflict answers do); a GET or HEAD with a 2xx status whose If-None-Match
// matches that ETag is answered 304 with an empty body instead
// (admin-api.md §2.4).
func WriteJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	body, err := Marshal(v)
	if err != nil {
		writeRaw(w, http.StatusInternalServerError, []byte(`{"message":"Internal Server Error"}`))
		return
	}
	WriteJSONBytes(w, r, status, body)
}

// WriteJSONBytes is WriteJSON for an already encoded body.
func WriteJSONBytes(w http.ResponseWriter, r *http.Request, status int, body []byte) {
	h := w.Header()
	etag := h.Get("ETag")
	if etag == "" {
		etag = WeakETag(body)
		h.Set("ETag", etag)
	}
	if r != nil && (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
		status >= 200 && status < 300 && fresh(r.Header, etag) {
		h.Del("Content-Type")
		h.Del("Content-Length")
		w.WriteHeader(http.StatusNotModified)
		return
	}
	writeRaw(w, status, body)
}

func writeRaw(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// fresh implements the If-None-Match part of HTTP conditional GET as Express
// (the "fresh" package) does: weak comparison, a list of tags, "*", and
// "Cache-Control: no-cache" in the request disables it.
func fresh(reqHdr http.Header, etag string) bool {
	inm := reqHdr.Get("If-None-Match")
	if inm == "" {
		return false
	}
	if cc := reqHdr.Get("Cache-Control"); cc != "" && strings.Contains(strings.ToLower(cc), "no-cache") {
		return false
	}
	if strings.TrimSpace(inm) == "*" {
		return true
	}
	want := strings.TrimPrefix(etag, "W/")
	for _, tag := range strings.Split(inm, ",") {
		tag = strings.TrimSpace(tag)
		if strings.TrimPrefix(tag, "W/") == want {
			return true
		}
	}
	return false
}

// NoContent answers 204 with no body.
func NoContent(w http.ResponseWriter) { w.WriteHeader(http.StatusNoContent) }

// Error is an HTTP error with a JSON body. Handlers of the different API
// families render their own shapes; Error's default rendering is
// {"error":<Title>,"message":<Message>}.
type Error struct {
	Status  int
	Title   string // e.g. "Bad Request"; defaults to http.StatusText(Status)
	Message string // the reason, safe to show to the client (never a secret)
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.title(), e.Message) }

func (e *Error) title() string {
	if e.Title != "" {
		return e.Title
	}
	return http.StatusText(e.Status)
}

// WriteError renders e as {"error":…,"message":…}.
func WriteError(w http.ResponseWriter, r *http.Request, e *Error) {
	WriteJSON(w, r, e.Status, struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}{e.title(), e.Message})
}
