package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/amtd-project/amtd/internal/store"
)

// ---- Instance leases (spec/mps.md §9) ----
//
// Lease times come from the database's clock on PostgreSQL (instances on
// several machines compare one clock) and from the process clock on SQLite
// (one machine).

const instanceCols = "id, addr, incarnation, started_at, expires_at"

func scanInstance(r rowScanner, i *store.Instance) error {
	return r.Scan(&i.ID, &i.Addr, &i.Incarnation, timeCol{&i.StartedAt}, timeCol{&i.ExpiresAt})
}

// dbNow is the lease clock, read inside t.
func (s *Store) dbNow(ctx context.Context, t tx) (time.Time, error) {
	if !s.pg {
		return now(), nil
	}
	var n time.Time
	if err := t.queryRow(ctx, "SELECT now()").Scan(&n); err != nil {
		return time.Time{}, err
	}
	return n.UTC().Truncate(time.Microsecond), nil
}

// ClaimInstance creates, renews or takes over the lease of inst.ID.
func (s *Store) ClaimInstance(ctx context.Context, inst store.Instance, ttl time.Duration, takeOver bool) (store.InstanceClaim, error) {
	const op = "claim instance"
	if inst.ID == "" || inst.Incarnation == "" {
		return store.InstanceClaim{}, fmt.Errorf("sqlstore: %s: empty ID or incarnation", op)
	}
	if ttl <= 0 {
		return store.InstanceClaim{}, fmt.Errorf("sqlstore: %s: lease duration %v", op, ttl)
	}
	var (
		out      store.InstanceClaim
		conflict bool
		err      error
	)
	// Two first claims of one ID racing on PostgreSQL: the loser's INSERT
	// fails on the primary key; the second attempt sees the winner's row.
	for attempt := 0; attempt < 2; attempt++ {
		out, conflict = store.InstanceClaim{}, false
		err = s.inWrite(ctx, func(t tx) error {
			n, err := s.dbNow(ctx, t)
			if err != nil {
				return err
			}
			exp := n.Add(ttl)
			var cur store.Instance
			err = scanInstance(t.queryRow(ctx, "SELECT "+instanceCols+" FROM instances WHERE id = ?"+s.lockUpdate(), inst.ID), &cur)
			if errors.Is(err, sql.ErrNoRows) {
				if _, err := t.exec(ctx, "INSERT INTO instances (id, addr, incarnation, started_at, renewed_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
					inst.ID, inst.Addr, inst.Incarnation, s.timeArg(n), s.timeArg(n), s.timeArg(exp)); err != nil {
					return err
				}
				inst.StartedAt, inst.ExpiresAt = n, exp
				out.Instance = inst
				return nil
			}
			if err != nil {
				return err
			}
			live := cur.ExpiresAt.After(n)
			same := cur.Incarnation == inst.Incarnation
			if live && !same && !takeOver {
				out.Instance, conflict = cur, true
				return nil
			}
			started := n
			if same {
				started = cur.StartedAt
			}
			if _, err := t.exec(ctx, "UPDATE instances SET addr = ?, incarnation = ?, started_at = ?, renewed_at = ?, expires_at = ? WHERE id = ?",
				inst.Addr, inst.Incarnation, s.timeArg(started), s.timeArg(n), s.timeArg(exp), inst.ID); err != nil {
				return err
			}
			inst.StartedAt, inst.ExpiresAt = started, exp
			out = store.InstanceClaim{Instance: inst, Continued: same && live}
			return nil
		})
		if err == nil || !isUnique(err) {
			break
		}
	}
	if err != nil {
		return store.InstanceClaim{}, wrap(op, err)
	}
	if conflict {
		return out, fmt.Errorf("instance %s is held by incarnation %s until %s: %w",
			inst.ID, out.Incarnation, out.ExpiresAt.Format(time.RFC3339), store.ErrConflict)
	}
	return out, nil
}

// disconnectOwned records the devices naming id disconnected.
func (s *Store) disconnectOwned(ctx context.Context, t tx, id string, at time.Time) (int, error) {
	res, err := t.exec(ctx, "UPDATE devices SET connection_status = ?, mps_instance = NULL, last_disconnected = ? WHERE mps_instance = ?",
		false, s.timeArg(at), id)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// ReleaseInstance ends this incarnation's lease and disconnects its devices.
func (s *Store) ReleaseInstance(ctx context.Context, id, incarnation string, at time.Time) (int, error) {
	var n int
	err := s.inWrite(ctx, func(t tx) error {
		var cur string
		err := t.queryRow(ctx, "SELECT incarnation FROM instances WHERE id = ?"+s.lockUpdate(), id).Scan(&cur)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if cur != incarnation {
			return nil
		}
		if n, err = s.disconnectOwned(ctx, t, id, at); err != nil {
			return err
		}
		_, err = t.exec(ctx, "DELETE FROM instances WHERE id = ?", id)
		return err
	})
	if err != nil {
		return 0, wrap("release instance", err)
	}
	return n, nil
}

// DisconnectInstanceDevices records every device naming id disconnected.
func (s *Store) DisconnectInstanceDevices(ctx context.Context, id string, at time.Time) (int, error) {
	var n int
	err := s.inWrite(ctx, func(t tx) error {
		var err error
		n, err = s.disconnectOwned(ctx, t, id, at)
		return err
	})
	if err != nil {
		return 0, wrap("disconnect instance devices", err)
	}
	return n, nil
}

// ReapInstances deletes expired leases and disconnects their devices.
func (s *Store) ReapInstances(ctx context.Context, at time.Time) (instances, devices int, err error) {
	skip := ""
	if s.pg {
		skip = " FOR UPDATE SKIP LOCKED" // another reaper has these
	}
	err = s.inWrite(ctx, func(t tx) error {
		instances, devices = 0, 0
		n, err := s.dbNow(ctx, t)
		if err != nil {
			return err
		}
		rows, err := t.query(ctx, "SELECT id FROM instances WHERE expires_at <= ?"+skip, s.timeArg(n))
		if err != nil {
			return err
		}
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for _, id := range ids {
			d, err := s.disconnectOwned(ctx, t, id, at)
			if err != nil {
				return err
			}
			if _, err := t.exec(ctx, "DELETE FROM instances WHERE id = ?", id); err != nil {
				return err
			}
			instances++
			devices += d
		}
		return nil
	})
	if err != nil {
		return 0, 0, wrap("reap instances", err)
	}
	return instances, devices, nil
}

// ReapOrphans disconnects devices naming an instance without a lease.
func (s *Store) ReapOrphans(ctx context.Context, at, connectedBefore time.Time) (int, error) {
	res, err := s.w.exec(ctx, `UPDATE devices SET connection_status = ?, mps_instance = NULL, last_disconnected = ?
		WHERE mps_instance IS NOT NULL AND (last_connected IS NULL OR last_connected < ?)
		AND NOT EXISTS (SELECT 1 FROM instances i WHERE i.id = devices.mps_instance)`,
		false, s.timeArg(at), s.timeArg(connectedBefore))
	if err != nil {
		return 0, wrap("reap orphans", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, wrap("reap orphans", err)
	}
	return int(n), nil
}

// nowCond is a "column > now" condition on the lease clock for queries
// outside transactions, with its arguments.
func (s *Store) afterNow(col string) (string, []any) {
	if s.pg {
		return col + " > now()", nil
	}
	return col + " > ?", []any{s.timeArg(now())}
}

// ListInstances returns the live leases ordered by ID.
func (s *Store) ListInstances(ctx context.Context) ([]store.Instance, error) {
	cond, args := s.afterNow("expires_at")
	out, err := listOf(ctx, s.r, "list instances", "SELECT "+instanceCols+" FROM instances WHERE "+cond, args, scanInstance)
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// DeviceOwner returns the live instance recorded as holding the device.
func (s *Store) DeviceOwner(ctx context.Context, guid string) (*store.Instance, error) {
	cond, args := s.afterNow("i.expires_at")
	return getOne(ctx, s.r, "device owner", `SELECT i.id, i.addr, i.incarnation, i.started_at, i.expires_at
		FROM devices d JOIN instances i ON i.id = d.mps_instance
		WHERE d.guid = ? AND d.connection_status AND `+cond, append([]any{guidKey(guid)}, args...), scanInstance)
}
