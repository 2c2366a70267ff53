package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
)

// MaxBodyBytes is the largest request body amtd accepts (1 MiB). A domain's
// base64 PFX is a few KiB; nothing the API takes comes close. A larger body is
// answered 413 before the handler runs (or when it reads past the limit).
const MaxBodyBytes int64 = 1 << 20

// TooLarge is the 413 answer for an oversized body.
func TooLarge(limit int64) *Error {
	return &Error{Status: http.StatusRequestEntityTooLarge,
		Message: fmt.Sprintf("request body exceeds the limit of %d bytes", limit)}
}

// badBody is the 400 answer for a body that is not a JSON object.
func badBody(reason string) *Error {
	return &Error{Status: http.StatusBadRequest, Title: "Incorrect URI or Bad Request", Message: reason}
}

// DecodeBody reads the request body into a generic JSON object, as Express's
// body parsers leave it in req.body:
//
//   - an empty body is an empty object;
//   - application/x-www-form-urlencoded bodies become string values (RPS
//     accepts them);
//   - anything else is parsed as JSON (whatever the Content-Type, since some
//     clients omit it) and must be a single JSON object;
//   - numbers are float64, like JavaScript numbers.
//
// Errors are *Error values: 400 with the parse failure, or 413 when the body
// exceeds the server's limit.
func DecodeBody(r *http.Request) (map[string]any, error) {
	if r.Body == nil {
		return map[string]any{}, nil
	}
	data, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, TooLarge(mbe.Limit)
		}
		return nil, badBody("could not read the request body")
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "application/x-www-form-urlencoded" {
		vals, err := url.ParseQuery(string(data))
		if err != nil {
			return nil, badBody("malformed form body")
		}
		out := make(map[string]any, len(vals))
		for k, vs := range vals {
			if len(vs) == 1 {
				out[k] = vs[0]
				continue
			}
			arr := make([]any, len(vs))
			for i, v := range vs {
				arr[i] = v
			}
			out[k] = arr
		}
		return out, nil
	}
	return ParseJSONObject(data)
}

// ParseJSONObject parses data as one JSON object (empty or whitespace-only
// data is an empty object). It is the parser behind DecodeBody.
func ParseJSONObject(data []byte) (map[string]any, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return map[string]any{}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, badBody("malformed JSON body: " + jsonErrorReason(err))
	}
	if dec.More() {
		return nil, badBody("malformed JSON body: data after the JSON value")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, badBody("malformed JSON body: data after the JSON value")
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, badBody("request body must be a JSON object")
	}
	return obj, nil
}

// jsonErrorReason describes a JSON syntax error without echoing the input.
func jsonErrorReason(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return "unexpected end of input"
	}
	return "invalid JSON"
}
