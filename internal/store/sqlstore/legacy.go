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

// ---- Legacy allow-list ----

const legacyDeviceCols = `guid, tenant_id, hostname, dns_suffix, profile_name, created_at, updated_at`

func scanLegacyDevice(r rowScanner, d *store.LegacyDevice) error {
	return r.Scan(&d.GUID, &d.TenantID, &d.Hostname, &d.DNSSuffix, &d.ProfileName,
		timeCol{&d.CreatedAt}, timeCol{&d.UpdatedAt})
}

// PutLegacyDevices upserts the devices in one transaction: all or nothing.
func (s *Store) PutLegacyDevices(ctx context.Context, devs []store.LegacyDevice) error {
	const op = "put legacy devices"
	for i := range devs {
		if guidKey(devs[i].GUID) == "" {
			return fmt.Errorf("sqlstore: %s: entry %d has an empty GUID", op, i)
		}
	}
	ts := now()
	created := make([]time.Time, len(devs))
	err := s.inWrite(ctx, func(t tx) error {
		for i := range devs {
			d := &devs[i]
			guid := guidKey(d.GUID)
			err := t.queryRow(ctx, `INSERT INTO legacy_devices (`+legacyDeviceCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (guid) DO UPDATE SET hostname = excluded.hostname, dns_suffix = excluded.dns_suffix,
					profile_name = excluded.profile_name, updated_at = excluded.updated_at
				WHERE legacy_devices.tenant_id = excluded.tenant_id
				RETURNING created_at`,
				guid, d.TenantID, d.Hostname, d.DNSSuffix, d.ProfileName, s.timeArg(ts), s.timeArg(ts)).Scan(timeCol{&created[i]})
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("legacy device %s is on another tenant's list: %w", guid, store.ErrDuplicate)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return writeErr(op, err)
	}
	for i := range devs {
		devs[i].GUID = guidKey(devs[i].GUID)
		devs[i].CreatedAt = created[i]
		devs[i].UpdatedAt = ts
	}
	return nil
}

// GetLegacyDevice finds an allow-list entry by GUID in any tenant.
func (s *Store) GetLegacyDevice(ctx context.Context, guid string) (*store.LegacyDevice, error) {
	return getOne(ctx, s.r, "get legacy device", "SELECT "+legacyDeviceCols+" FROM legacy_devices WHERE guid = ?",
		[]any{guidKey(guid)}, scanLegacyDevice)
}

// ListLegacyDevices lists a tenant's allow-list ordered by GUID.
func (s *Store) ListLegacyDevices(ctx context.Context, tenant string, p store.Page) ([]store.LegacyDevice, error) {
	limit, offset, ok := limits(p)
	if !ok {
		return []store.LegacyDevice{}, nil
	}
	return listOf(ctx, s.r, "list legacy devices", "SELECT "+legacyDeviceCols+
		" FROM legacy_devices WHERE tenant_id = ? ORDER BY guid LIMIT ? OFFSET ?",
		[]any{tenant, limit, offset}, scanLegacyDevice)
}

// CountLegacyDevices counts a tenant's allow-list.
func (s *Store) CountLegacyDevices(ctx context.Context, tenant string) (int, error) {
	return s.count(ctx, "legacy_devices", tenant)
}

// DeleteLegacyDevice removes an allow-list entry of the tenant.
func (s *Store) DeleteLegacyDevice(ctx context.Context, tenant, guid string) error {
	res, err := s.w.exec(ctx, "DELETE FROM legacy_devices WHERE guid = ? AND tenant_id = ?", guidKey(guid), tenant)
	return deleted("delete legacy device", res, err)
}

// ---- Hello events ----

const helloCols = `id, tenant_id, guid, source_ip, version, retry_count, admin_credentials_set, hashes, pid,
	received_at, outcome, detail`

func scanHello(r rowScanner, e *store.HelloEvent) error {
	if err := r.Scan(&e.ID, &e.TenantID, &e.GUID, &e.SourceIP, &e.Version, &e.RetryCount, &e.AdminCredentialsSet,
		jsonCol{&e.Hashes}, &e.PID, timeCol{&e.ReceivedAt}, &e.Outcome, &e.Detail); err != nil {
		return err
	}
	e.Hashes = nonNil(e.Hashes)
	return nil
}

// AppendHelloEvent stores e and prunes all but the newest keep events.
func (s *Store) AppendHelloEvent(ctx context.Context, e *store.HelloEvent, keep int) error {
	const op = "append hello event"
	ts := e.ReceivedAt
	if ts.IsZero() {
		ts = now()
	}
	ts = ts.UTC().Truncate(time.Microsecond)
	hashes := e.Hashes
	if hashes == nil {
		hashes = []store.HelloHash{}
	}
	js, err := jsonArg(hashes)
	if err != nil {
		return wrap(op, err)
	}
	var id int64
	err = s.inWrite(ctx, func(t tx) error {
		if err := t.queryRow(ctx, `INSERT INTO legacy_hellos (tenant_id, guid, source_ip, version, retry_count,
				admin_credentials_set, hashes, pid, received_at, outcome, detail)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			e.TenantID, guidKey(e.GUID), e.SourceIP, e.Version, e.RetryCount, e.AdminCredentialsSet, js, e.PID,
			s.timeArg(ts), e.Outcome, e.Detail).Scan(&id); err != nil {
			return err
		}
		if keep > 0 && id > int64(keep) {
			if _, err := t.exec(ctx, "DELETE FROM legacy_hellos WHERE id <= ?", id-int64(keep)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return writeErr(op, err)
	}
	e.ID = id
	e.GUID = guidKey(e.GUID)
	e.ReceivedAt = ts
	e.Hashes = hashes
	return nil
}

// SetHelloOutcome updates a stored event's outcome.
func (s *Store) SetHelloOutcome(ctx context.Context, id int64, outcome, detail string) error {
	res, err := s.w.exec(ctx, "UPDATE legacy_hellos SET outcome = ?, detail = ? WHERE id = ?", outcome, detail, id)
	return deleted("set hello outcome", res, err)
}

func helloWhere(tenant string, f store.HelloFilter) (string, []any) {
	var b strings.Builder
	args := []any{tenant}
	b.WriteString(" WHERE tenant_id = ?")
	if f.GUID != "" {
		b.WriteString(" AND guid = ?")
		args = append(args, guidKey(f.GUID))
	}
	if f.SourceIP != "" {
		b.WriteString(" AND source_ip = ?")
		args = append(args, f.SourceIP)
	}
	return b.String(), args
}

// ListHelloEvents lists a tenant's hello events, newest first.
func (s *Store) ListHelloEvents(ctx context.Context, tenant string, f store.HelloFilter, p store.Page) ([]store.HelloEvent, error) {
	limit, offset, ok := limits(p)
	if !ok {
		return []store.HelloEvent{}, nil
	}
	where, args := helloWhere(tenant, f)
	return listOf(ctx, s.r, "list hello events", "SELECT "+helloCols+" FROM legacy_hellos"+where+
		" ORDER BY id DESC LIMIT ? OFFSET ?", append(args, limit, offset), scanHello)
}

// CountHelloEvents counts a tenant's hello events matching f.
func (s *Store) CountHelloEvents(ctx context.Context, tenant string, f store.HelloFilter) (int, error) {
	where, args := helloWhere(tenant, f)
	var n int
	if err := s.r.queryRow(ctx, "SELECT COUNT(*) FROM legacy_hellos"+where, args...).Scan(&n); err != nil {
		return 0, wrap("count hello events", err)
	}
	return n, nil
}

// ---- PSK pairs ----

const pskCols = `pid, tenant_id, secret_id, created_at, exported_at, exported_to, used_by, used_at`

func scanPSK(r rowScanner, p *store.PSKPair) error {
	return r.Scan(&p.PID, &p.TenantID, &p.SecretID, timeCol{&p.CreatedAt}, nullTimeCol{&p.ExportedAt},
		&p.ExportedTo, &p.UsedBy, nullTimeCol{&p.UsedAt})
}

// pidKey is the stored form of a PID (upper case, as the firmware sends it).
func pidKey(pid string) string { return strings.ToUpper(strings.TrimSpace(pid)) }

// CreatePSKPairs inserts the pairs, all or nothing.
func (s *Store) CreatePSKPairs(ctx context.Context, pairs []store.PSKPair) error {
	const op = "create psk pairs"
	ts := now()
	err := s.inWrite(ctx, func(t tx) error {
		for i := range pairs {
			p := &pairs[i]
			if pidKey(p.PID) == "" {
				return fmt.Errorf("entry %d has an empty PID", i)
			}
			if _, err := t.exec(ctx, `INSERT INTO legacy_psk_pairs (`+pskCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
				pidKey(p.PID), p.TenantID, p.SecretID, s.timeArg(ts), s.timePtrArg(p.ExportedAt), p.ExportedTo,
				guidKey(p.UsedBy), s.timePtrArg(p.UsedAt)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return writeErr(op, err)
	}
	for i := range pairs {
		pairs[i].PID = pidKey(pairs[i].PID)
		pairs[i].CreatedAt = ts
		pairs[i].UsedBy = guidKey(pairs[i].UsedBy)
		pairs[i].ExportedAt = truncTime(pairs[i].ExportedAt)
		pairs[i].UsedAt = truncTime(pairs[i].UsedAt)
	}
	return nil
}

// GetPSKPair finds a pair by PID in any tenant.
func (s *Store) GetPSKPair(ctx context.Context, pid string) (*store.PSKPair, error) {
	return getOne(ctx, s.r, "get psk pair", "SELECT "+pskCols+" FROM legacy_psk_pairs WHERE pid = ?",
		[]any{pidKey(pid)}, scanPSK)
}

func pskWhere(tenant string, f store.PSKFilter) string {
	w := " WHERE tenant_id = ?"
	if f.Available {
		w += " AND exported_at IS NULL AND used_by = ''"
	}
	return w
}

// ListPSKPairs lists a tenant's pairs by PID.
func (s *Store) ListPSKPairs(ctx context.Context, tenant string, f store.PSKFilter, p store.Page) ([]store.PSKPair, error) {
	limit, offset, ok := limits(p)
	if !ok {
		return []store.PSKPair{}, nil
	}
	return listOf(ctx, s.r, "list psk pairs", "SELECT "+pskCols+" FROM legacy_psk_pairs"+pskWhere(tenant, f)+
		" ORDER BY pid LIMIT ? OFFSET ?", []any{tenant, limit, offset}, scanPSK)
}

// CountPSKPairs counts a tenant's pairs matching f.
func (s *Store) CountPSKPairs(ctx context.Context, tenant string, f store.PSKFilter) (int, error) {
	var n int
	if err := s.r.queryRow(ctx, "SELECT COUNT(*) FROM legacy_psk_pairs"+pskWhere(tenant, f), tenant).Scan(&n); err != nil {
		return 0, wrap("count psk pairs", err)
	}
	return n, nil
}

// TakePSKPairs marks up to n available pairs as exported and returns them.
func (s *Store) TakePSKPairs(ctx context.Context, tenant string, n int, to string, at time.Time) ([]store.PSKPair, error) {
	const op = "take psk pairs"
	if n <= 0 {
		return []store.PSKPair{}, nil
	}
	at = at.UTC().Truncate(time.Microsecond)
	skipLocked := ""
	if s.pg {
		skipLocked = " FOR UPDATE SKIP LOCKED"
	}
	var out []store.PSKPair
	err := s.inWrite(ctx, func(t tx) error {
		out = out[:0]
		rows, err := t.query(ctx, "SELECT "+pskCols+" FROM legacy_psk_pairs"+pskWhere(tenant, store.PSKFilter{Available: true})+
			" ORDER BY created_at, pid LIMIT ?"+skipLocked, tenant, n)
		if err != nil {
			return err
		}
		for rows.Next() {
			var p store.PSKPair
			if err := scanPSK(rows, &p); err != nil {
				rows.Close()
				return err
			}
			out = append(out, p)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for i := range out {
			if _, err := t.exec(ctx, "UPDATE legacy_psk_pairs SET exported_at = ?, exported_to = ? WHERE pid = ?",
				s.timeArg(at), to, out[i].PID); err != nil {
				return err
			}
			out[i].ExportedAt = &at
			out[i].ExportedTo = to
		}
		return nil
	})
	if err != nil {
		return nil, writeErr(op, err)
	}
	return nonNil(out), nil
}

// MarkPSKPairUsed records the device that authenticated with a pair.
func (s *Store) MarkPSKPairUsed(ctx context.Context, pid, guid string, at time.Time) error {
	res, err := s.w.exec(ctx, "UPDATE legacy_psk_pairs SET used_by = ?, used_at = ? WHERE pid = ?",
		guidKey(guid), s.timeArg(at), pidKey(pid))
	return deleted("mark psk pair used", res, err)
}

// DeletePSKPair removes a tenant's pair (its secret entry is the caller's).
func (s *Store) DeletePSKPair(ctx context.Context, tenant, pid string) error {
	res, err := s.w.exec(ctx, "DELETE FROM legacy_psk_pairs WHERE pid = ? AND tenant_id = ?", pidKey(pid), tenant)
	return deleted("delete psk pair", res, err)
}
