package sqlstore

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// sqliteTime is the fixed-width UTC text form of times in SQLite columns; it
// sorts like the instants it encodes.
const sqliteTime = "2006-01-02T15:04:05.000000Z"

// timeArg encodes t for a query argument; times are kept to the microsecond
// (PostgreSQL's resolution) in both dialects.
func (s *Store) timeArg(t time.Time) any {
	t = t.UTC().Truncate(time.Microsecond)
	if s.pg {
		return t
	}
	return t.Format(sqliteTime)
}

func (s *Store) timePtrArg(t *time.Time) any {
	if t == nil {
		return nil
	}
	return s.timeArg(*t)
}

// now is the current time at the stored resolution.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func truncTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := t.UTC().Truncate(time.Microsecond)
	return &v
}

// timeCol scans a NOT NULL time column of either dialect.
type timeCol struct{ p *time.Time }

func (c timeCol) Scan(src any) error {
	t, ok, err := parseTime(src)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("sqlstore: unexpected NULL time")
	}
	*c.p = t
	return nil
}

// nullTimeCol scans a nullable time column into a *time.Time.
type nullTimeCol struct{ p **time.Time }

func (c nullTimeCol) Scan(src any) error {
	t, ok, err := parseTime(src)
	if err != nil {
		return err
	}
	if !ok {
		*c.p = nil
		return nil
	}
	*c.p = &t
	return nil
}

// zeroTimeCol scans a nullable time column into a time.Time (zero when NULL).
type zeroTimeCol struct{ p *time.Time }

func (c zeroTimeCol) Scan(src any) error {
	t, ok, err := parseTime(src)
	if err != nil {
		return err
	}
	if !ok {
		*c.p = time.Time{}
		return nil
	}
	*c.p = t
	return nil
}

func parseTime(src any) (time.Time, bool, error) {
	switch v := src.(type) {
	case nil:
		return time.Time{}, false, nil
	case time.Time:
		return v.UTC(), true, nil
	case string:
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return time.Time{}, false, fmt.Errorf("sqlstore: bad stored time %q: %w", v, err)
		}
		return t.UTC(), true, nil
	case []byte:
		return parseTime(string(v))
	default:
		return time.Time{}, false, fmt.Errorf("sqlstore: cannot scan %T into a time", src)
	}
}

// jsonArg encodes v as JSON text for a JSON (SQLite TEXT, PostgreSQL JSONB) column.
func jsonArg(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// stringsArg encodes a string list, never as JSON null.
func stringsArg(v []string) string {
	if len(v) == 0 {
		return "[]"
	}
	s, _ := jsonArg(v) // []string always marshals
	return s
}

func intsArg(v []int) string {
	if len(v) == 0 {
		return "[]"
	}
	s, _ := jsonArg(v)
	return s
}

// jsonCol scans a JSON column into p (a pointer). NULL leaves p untouched.
type jsonCol struct{ p any }

func (c jsonCol) Scan(src any) error {
	var b []byte
	switch v := src.(type) {
	case nil:
		return nil
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		return fmt.Errorf("sqlstore: cannot scan %T as JSON", src)
	}
	if err := json.Unmarshal(b, c.p); err != nil {
		return fmt.Errorf("sqlstore: bad stored JSON: %w", err)
	}
	return nil
}

// nonNil returns s, or an empty slice when s is nil.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// strPtrArg, boolPtrArg, intPtrArg turn nil pointers into SQL NULL.
func strPtrArg(p *string) any {
	if p == nil {
		return nil
	}
	return *p
}

func boolPtrArg(p *bool) any {
	if p == nil {
		return nil
	}
	return *p
}

func intPtrArg(p *int) any {
	if p == nil {
		return nil
	}
	return int64(*p)
}

// ptrCol scans a nullable column into a **T.
type ptrCol[T any] struct{ p **T }

func (c ptrCol[T]) Scan(src any) error {
	if src == nil {
		*c.p = nil
		return nil
	}
	var n sql.Null[T]
	if err := n.Scan(src); err != nil {
		return err
	}
	v := n.V
	*c.p = &v
	return nil
}
