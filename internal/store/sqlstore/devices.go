package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/amtd-project/amtd/internal/store"
)

const deviceCols = `guid, tenant_id, hostname, friendly_name, dns_suffix, mps_username, tags, profile_name,
	connection_status, mps_instance, last_connected, last_seen, last_disconnected, device_info,
	created_at, updated_at`

func scanDevice(r rowScanner, d *store.Device) error {
	var info *store.DeviceInfo
	if err := r.Scan(&d.GUID, &d.TenantID, &d.Hostname, &d.FriendlyName, &d.DNSSuffix, &d.MPSUsername,
		jsonCol{&d.Tags}, &d.ProfileName, &d.ConnectionStatus, ptrCol[string]{&d.MPSInstance},
		nullTimeCol{&d.LastConnected}, nullTimeCol{&d.LastSeen}, nullTimeCol{&d.LastDisconnected},
		jsonCol{&info}, timeCol{&d.CreatedAt}, timeCol{&d.UpdatedAt}); err != nil {
		return err
	}
	d.Tags = nonNil(d.Tags)
	d.DeviceInfo = info
	return nil
}

// guidKey normalises a GUID for storage and lookup.
func guidKey(guid string) string { return strings.ToLower(strings.TrimSpace(guid)) }

// jsonElems is the FROM item that expands the JSON string array in col to rows
// with a "value" column, aliased t.
func (s *Store) jsonElems(col string) string {
	if s.pg {
		return "jsonb_array_elements_text(" + col + ") AS t(value)"
	}
	return "json_each(" + col + ") AS t"
}

// deviceWhere builds the WHERE clause of a device list or count (MPS
// semantics: the first non-empty of hostname, friendly name, tags applies;
// Connected filters in addition).
func (s *Store) deviceWhere(tenant string, f store.DeviceFilter) (string, []any) {
	var b strings.Builder
	args := []any{tenant}
	b.WriteString(" WHERE d.tenant_id = ?")
	switch {
	case f.Hostname != "":
		b.WriteString(" AND d.hostname = ?")
		args = append(args, f.Hostname)
	case f.FriendlyName != "":
		b.WriteString(" AND d.friendly_name = ?")
		args = append(args, f.FriendlyName)
	case len(f.Tags) > 0:
		var tags []any
		seen := map[string]bool{}
		for _, t := range f.Tags {
			if !seen[t] {
				seen[t] = true
				tags = append(tags, t)
			}
		}
		in := "t.value IN (" + placeholders(len(tags)) + ")"
		if f.TagsMatchAll {
			fmt.Fprintf(&b, " AND (SELECT COUNT(DISTINCT t.value) FROM %s WHERE %s) = ?", s.jsonElems("d.tags"), in)
			args = append(args, tags...)
			args = append(args, len(tags))
		} else {
			fmt.Fprintf(&b, " AND EXISTS (SELECT 1 FROM %s WHERE %s)", s.jsonElems("d.tags"), in)
			args = append(args, tags...)
		}
	}
	if f.Connected != nil {
		b.WriteString(" AND d.connection_status = ?")
		args = append(args, *f.Connected)
	}
	return b.String(), args
}

// ListDevices lists a tenant's devices matching f, ordered by GUID.
func (s *Store) ListDevices(ctx context.Context, tenant string, f store.DeviceFilter, p store.Page) ([]store.Device, error) {
	limit, offset, ok := limits(p)
	if !ok {
		return []store.Device{}, nil
	}
	where, args := s.deviceWhere(tenant, f)
	args = append(args, limit, offset)
	q := "SELECT " + deviceCols + " FROM devices d" + where + " ORDER BY d.guid LIMIT ? OFFSET ?"
	if len(f.Tags) > 0 && f.Hostname == "" && f.FriendlyName == "" {
		// Tag queries vary in shape; do not fill the statement cache with them.
		rows, err := s.r.db.QueryContext(ctx, rebind(s.pg, q), args...)
		if err != nil {
			return nil, wrap("list devices", err)
		}
		return collectDevices(rows)
	}
	rows, err := s.r.query(ctx, q, args...)
	if err != nil {
		return nil, wrap("list devices", err)
	}
	return collectDevices(rows)
}

func collectDevices(rows *sql.Rows) ([]store.Device, error) {
	defer rows.Close()
	out := []store.Device{}
	for rows.Next() {
		var d store.Device
		if err := scanDevice(rows, &d); err != nil {
			return nil, wrap("list devices", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("list devices", err)
	}
	return out, nil
}

// CountDevices counts a tenant's devices matching f.
func (s *Store) CountDevices(ctx context.Context, tenant string, f store.DeviceFilter) (int, error) {
	where, args := s.deviceWhere(tenant, f)
	var n int
	if err := s.r.db.QueryRowContext(ctx, rebind(s.pg, "SELECT COUNT(*) FROM devices d"+where), args...).Scan(&n); err != nil {
		return 0, wrap("count devices", err)
	}
	return n, nil
}

// GetDevice finds a device by GUID in any tenant.
func (s *Store) GetDevice(ctx context.Context, guid string) (*store.Device, error) {
	return getOne(ctx, s.r, "get device", "SELECT "+deviceCols+" FROM devices d WHERE d.guid = ?",
		[]any{guidKey(guid)}, scanDevice)
}

// PutDevice inserts d, or replaces the stored record of the same GUID and
// tenant (created reports which). It sets GUID to its lower-case form,
// CreatedAt and UpdatedAt. A GUID stored under another tenant is ErrDuplicate.
func (s *Store) PutDevice(ctx context.Context, d *store.Device) (created bool, err error) {
	const op = "put device"
	guid := guidKey(d.GUID)
	if guid == "" {
		return false, fmt.Errorf("sqlstore: %s: empty GUID", op)
	}
	var info any
	if d.DeviceInfo != nil {
		js, err := jsonArg(d.DeviceInfo)
		if err != nil {
			return false, wrap(op, err)
		}
		info = js
	}
	ts := now()
	var createdAt time.Time
	err = s.inWrite(ctx, func(t tx) error {
		res, err := t.exec(ctx, `INSERT INTO devices (`+deviceCols+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (guid) DO NOTHING`,
			guid, d.TenantID, d.Hostname, d.FriendlyName, d.DNSSuffix, d.MPSUsername, stringsArg(d.Tags),
			d.ProfileName, d.ConnectionStatus, strPtrArg(d.MPSInstance), s.timePtrArg(d.LastConnected),
			s.timePtrArg(d.LastSeen), s.timePtrArg(d.LastDisconnected), info, s.timeArg(ts), s.timeArg(ts))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 1 {
			created = true
			createdAt = ts
			return nil
		}
		// Connection fields belong to SetDeviceConnection once the row
		// exists: read them back instead of overwriting them.
		err = t.queryRow(ctx, `UPDATE devices SET hostname = ?, friendly_name = ?, dns_suffix = ?,
			mps_username = ?, tags = ?, profile_name = ?, device_info = ?, updated_at = ?
			WHERE guid = ? AND tenant_id = ?
			RETURNING created_at, connection_status, mps_instance, last_connected, last_seen, last_disconnected`,
			d.Hostname, d.FriendlyName, d.DNSSuffix, d.MPSUsername, stringsArg(d.Tags), d.ProfileName,
			info, s.timeArg(ts), guid, d.TenantID).Scan(timeCol{&createdAt}, &d.ConnectionStatus,
			ptrCol[string]{&d.MPSInstance}, nullTimeCol{&d.LastConnected}, nullTimeCol{&d.LastSeen},
			nullTimeCol{&d.LastDisconnected})
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("device %s belongs to another tenant: %w", guid, store.ErrDuplicate)
		}
		return err
	})
	if err != nil {
		return false, writeErr(op, err)
	}
	d.GUID = guid
	d.Tags = nonNil(d.Tags)
	d.CreatedAt = createdAt
	d.UpdatedAt = ts
	d.LastConnected = truncTime(d.LastConnected)
	d.LastSeen = truncTime(d.LastSeen)
	d.LastDisconnected = truncTime(d.LastDisconnected)
	return created, nil
}

// SetDeviceConnection records a connect (owner = c.Instance) or a disconnect
// (only while c.Instance is the owner) without touching other fields.
func (s *Store) SetDeviceConnection(ctx context.Context, guid string, c store.DeviceConnection) error {
	var n int64
	err := s.inWrite(ctx, func(t tx) error {
		var err error
		n, err = s.setConnection(ctx, t, guid, c)
		return err
	})
	if err != nil {
		return writeErr("set device connection", err)
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// SetDeviceConnections applies changes in order in one transaction.
func (s *Store) SetDeviceConnections(ctx context.Context, changes []store.DeviceConnectionChange) error {
	if len(changes) == 0 {
		return nil
	}
	err := s.inWrite(ctx, func(t tx) error {
		for _, c := range changes {
			if _, err := s.setConnection(ctx, t, c.GUID, c.DeviceConnection); err != nil {
				return err
			}
		}
		return nil
	})
	return writeErr("set device connections", err)
}

func (s *Store) setConnection(ctx context.Context, t tx, guid string, c store.DeviceConnection) (int64, error) {
	var (
		res sql.Result
		err error
	)
	if c.Connected {
		res, err = t.exec(ctx, `UPDATE devices SET connection_status = ?, mps_instance = ?, last_connected = ?,
			last_seen = COALESCE(?, last_seen) WHERE guid = ?`,
			true, c.Instance, s.timeArg(c.At), s.timePtrArg(c.LastSeen), guidKey(guid))
	} else {
		res, err = t.exec(ctx, `UPDATE devices SET connection_status = ?, mps_instance = NULL, last_disconnected = ?,
			last_seen = COALESCE(?, last_seen) WHERE guid = ? AND mps_instance = ?`,
			false, s.timeArg(c.At), s.timePtrArg(c.LastSeen), guidKey(guid), c.Instance)
	}
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// DeleteDevice deletes a device record (its provisioning events stay).
func (s *Store) DeleteDevice(ctx context.Context, guid string) error {
	res, err := s.w.exec(ctx, "DELETE FROM devices WHERE guid = ?", guidKey(guid))
	return deleted("delete device", res, err)
}

// DeviceTags lists the distinct tags of a tenant's devices, sorted.
func (s *Store) DeviceTags(ctx context.Context, tenant string) ([]string, error) {
	rows, err := s.r.query(ctx, "SELECT DISTINCT t.value FROM devices d, "+s.jsonElems("d.tags")+
		" WHERE d.tenant_id = ? ORDER BY t.value", tenant)
	if err != nil {
		return nil, wrap("device tags", err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, wrap("device tags", err)
		}
		out = append(out, t)
	}
	return out, wrap("device tags", rows.Err())
}

// ---- Provisioning events ----

// eventLockClass is the first key of the per-device advisory transaction
// lock that serialises Seq assignment on PostgreSQL.
const eventLockClass = 0x616d74 // "amt"

// AppendEvent stores e with the next Seq of its device; Time defaults to now.
func (s *Store) AppendEvent(ctx context.Context, e *store.ProvisioningEvent) error {
	const op = "append event"
	guid := guidKey(e.GUID)
	ts := e.Time
	if ts.IsZero() {
		ts = now()
	}
	ts = ts.UTC().Truncate(time.Microsecond)
	var seq int64
	err := s.inWrite(ctx, func(t tx) error {
		if s.pg {
			if _, err := t.exec(ctx, "SELECT pg_advisory_xact_lock(?, hashtext(?))", eventLockClass, guid); err != nil {
				return err
			}
		}
		return t.queryRow(ctx, `INSERT INTO provisioning_events (guid, seq, tenant_id, time, session, step, result, detail)
			SELECT ?, COALESCE(MAX(seq), 0) + 1, ?, `+s.timeParam()+`, ?, ?, ?, ? FROM provisioning_events WHERE guid = ?
			RETURNING seq`,
			guid, e.TenantID, s.timeArg(ts), e.Session, e.Step, e.Result, e.Detail, guid).Scan(&seq)
	})
	if err != nil {
		return writeErr(op, err)
	}
	e.GUID = guid
	e.Seq = seq
	e.Time = ts
	return nil
}

// timeParam is a time placeholder usable where PostgreSQL cannot infer the
// type (a SELECT list).
func (s *Store) timeParam() string {
	if s.pg {
		return "CAST(? AS TIMESTAMPTZ)"
	}
	return "?"
}

// ListEvents lists a device's events in Seq order.
func (s *Store) ListEvents(ctx context.Context, guid string, p store.Page) ([]store.ProvisioningEvent, error) {
	limit, offset, ok := limits(p)
	if !ok {
		return []store.ProvisioningEvent{}, nil
	}
	return listOf(ctx, s.r, "list events", `SELECT guid, tenant_id, seq, time, session, step, result, detail
		FROM provisioning_events WHERE guid = ? ORDER BY seq LIMIT ? OFFSET ?`,
		[]any{guidKey(guid), limit, offset}, func(r rowScanner, e *store.ProvisioningEvent) error {
			return r.Scan(&e.GUID, &e.TenantID, &e.Seq, timeCol{&e.Time}, &e.Session, &e.Step, &e.Result, &e.Detail)
		})
}

// ---- Sealed blobs and settings ----

// PutSealed stores (or replaces) the blob at key.
func (s *Store) PutSealed(ctx context.Context, k string, blob []byte) error {
	if blob == nil {
		blob = []byte{}
	}
	_, err := s.w.exec(ctx, `INSERT INTO sealed_secrets (key, blob, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET blob = excluded.blob, updated_at = excluded.updated_at`,
		k, blob, s.timeArg(now()))
	return wrap("put sealed", err)
}

// CreateSealed stores blob at key only if nothing is there (ErrDuplicate
// otherwise): one statement, so concurrent creators cannot both succeed.
func (s *Store) CreateSealed(ctx context.Context, k string, blob []byte) error {
	if blob == nil {
		blob = []byte{}
	}
	res, err := s.w.exec(ctx, `INSERT INTO sealed_secrets (key, blob, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (key) DO NOTHING`, k, blob, s.timeArg(now()))
	if err != nil {
		return wrap("create sealed", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return wrap("create sealed", err)
	} else if n == 0 {
		return store.ErrDuplicate
	}
	return nil
}

// GetSealed returns the blob at key, or ErrNotFound.
func (s *Store) GetSealed(ctx context.Context, k string) ([]byte, error) {
	var b []byte
	err := s.r.queryRow(ctx, "SELECT blob FROM sealed_secrets WHERE key = ?", k).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, wrap("get sealed", err)
	}
	return b, nil
}

// DeleteSealed removes the blob at key; a missing key is not an error.
func (s *Store) DeleteSealed(ctx context.Context, k string) error {
	_, err := s.w.exec(ctx, "DELETE FROM sealed_secrets WHERE key = ?", k)
	return wrap("delete sealed", err)
}

// GetSetting returns the value of a setting, or ErrNotFound.
func (s *Store) GetSetting(ctx context.Context, k string) (string, error) {
	var v string
	err := s.r.queryRow(ctx, "SELECT value FROM settings WHERE key = ?", k).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", store.ErrNotFound
	}
	if err != nil {
		return "", wrap("get setting", err)
	}
	return v, nil
}

// PutSetting stores (or replaces) a setting.
func (s *Store) PutSetting(ctx context.Context, k, value string) error {
	_, err := s.w.exec(ctx, `INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
		k, value, s.timeArg(now()))
	return wrap("put setting", err)
}
