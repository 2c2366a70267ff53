package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/amtd-project/amtd/internal/store"
)

const profileCols = `p.id, p.tenant_id, p.name, p.activation, p.generate_random_password,
	p.generate_random_mebx_password, c.name, p.tags, p.dhcp_enabled, p.ip_sync_enabled,
	p.local_wifi_sync_enabled, p.uefi_wifi_sync_enabled, p.tls_mode, p.tls_signing_authority,
	p.user_consent, p.ider_enabled, p.kvm_enabled, p.sol_enabled, x.name, p.power_policy, p.user_acls,
	p.secret_id, p.version`

const profileFrom = ` FROM profiles p
	LEFT JOIN ciraconfigs c ON c.id = p.cira_id
	LEFT JOIN ieee8021xconfigs x ON x.id = p.ieee8021x_id`

func scanProfile(r rowScanner, id *int64, p *store.Profile) error {
	if err := r.Scan(id, &p.TenantID, &p.Name, &p.Activation, &p.GenerateRandomPassword,
		&p.GenerateRandomMEBxPassword, ptrCol[string]{&p.CIRAConfigName}, jsonCol{&p.Tags}, &p.DHCPEnabled,
		ptrCol[bool]{&p.IPSyncEnabled}, ptrCol[bool]{&p.LocalWifiSyncEnabled}, ptrCol[bool]{&p.UEFIWifiSyncEnabled},
		ptrCol[int]{&p.TLSMode}, ptrCol[string]{&p.TLSSigningAuthority}, &p.UserConsent, &p.IDEREnabled,
		&p.KVMEnabled, &p.SOLEnabled, ptrCol[string]{&p.IEEE8021xProfileName}, &p.PowerPolicy, jsonCol{&p.UserACLs},
		&p.SecretID, &p.Version); err != nil {
		return err
	}
	p.Tags = nonNil(p.Tags)
	p.UserACLs = normalizeACLs(p.UserACLs)
	p.WifiConfigs = []store.ProfileWifi{}
	p.ProxyConfigs = []store.ProfileProxy{}
	return nil
}

// loadLinks fills the wifi and proxy links of the profiles in byID, selecting
// link rows whose profile_id matches idCond (e.g. "= ?" or "IN (SELECT …)").
// Two queries whatever the number of profiles.
func loadLinks(ctx context.Context, t tx, byID map[int64]*store.Profile, idCond string, args ...any) error {
	rows, err := t.query(ctx, `SELECT l.profile_id, w.name, l.priority FROM profile_wireless l
		JOIN wirelessconfigs w ON w.id = l.wireless_id
		WHERE l.profile_id `+idCond+` ORDER BY l.profile_id, l.priority, w.name_key`, args...)
	if err != nil {
		return err
	}
	for rows.Next() {
		var id int64
		var l store.ProfileWifi
		if err := rows.Scan(&id, &l.Name, &l.Priority); err != nil {
			rows.Close()
			return err
		}
		if p := byID[id]; p != nil {
			p.WifiConfigs = append(p.WifiConfigs, l)
		}
	}
	if err := rows.Close(); err != nil {
		return err
	}
	if err := rows.Err(); err != nil {
		return err
	}

	rows, err = t.query(ctx, `SELECT l.profile_id, x.name, l.priority FROM profile_proxies l
		JOIN proxyconfigs x ON x.id = l.proxy_id
		WHERE l.profile_id `+idCond+` ORDER BY l.profile_id, l.priority, x.name_key`, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var l store.ProfileProxy
		if err := rows.Scan(&id, &l.Name, &l.Priority); err != nil {
			return err
		}
		if p := byID[id]; p != nil {
			p.ProxyConfigs = append(p.ProxyConfigs, l)
		}
	}
	return rows.Err()
}

// ListProfiles lists a tenant's profiles by name, with their links, in three
// queries inside one read snapshot.
func (s *Store) ListProfiles(ctx context.Context, tenant string, pg store.Page) ([]store.Profile, error) {
	limit, offset, ok := limits(pg)
	if !ok {
		return []store.Profile{}, nil
	}
	var out []store.Profile
	err := s.inRead(ctx, func(t tx) error {
		out = []store.Profile{}
		rows, err := t.query(ctx, "SELECT "+profileCols+profileFrom+
			" WHERE p.tenant_id = ? ORDER BY p.name_key LIMIT ? OFFSET ?", tenant, limit, offset)
		if err != nil {
			return err
		}
		var ids []int64
		for rows.Next() {
			var id int64
			var p store.Profile
			if err := scanProfile(rows, &id, &p); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
			out = append(out, p)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(out) == 0 {
			return nil
		}
		byID := make(map[int64]*store.Profile, len(out))
		for i, id := range ids {
			byID[id] = &out[i]
		}
		return loadLinks(ctx, t, byID,
			"IN (SELECT id FROM profiles WHERE tenant_id = ? ORDER BY name_key LIMIT ? OFFSET ?)",
			tenant, limit, offset)
	})
	if err != nil {
		return nil, wrap("list profiles", err)
	}
	return out, nil
}

// CountProfiles counts a tenant's profiles.
func (s *Store) CountProfiles(ctx context.Context, tenant string) (int, error) {
	return s.count(ctx, "profiles", tenant)
}

// GetProfile finds a profile by name, with its links.
func (s *Store) GetProfile(ctx context.Context, tenant, name string) (*store.Profile, error) {
	var p store.Profile
	err := s.inRead(ctx, func(t tx) error {
		var id int64
		err := scanProfile(t.queryRow(ctx, "SELECT "+profileCols+profileFrom+
			" WHERE p.tenant_id = ? AND p.name_key = ?", tenant, key(name)), &id, &p)
		if err != nil {
			return err
		}
		return loadLinks(ctx, t, map[int64]*store.Profile{id: &p}, "= ?", id)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, wrap("get profile", err)
	}
	return &p, nil
}

// profileRefs are the resolved ids a profile row and its links point to.
type profileRefs struct {
	cira, ieee any // int64 or nil
	wifi       []int64
	proxy      []int64
}

func (s *Store) resolveProfileRefs(ctx context.Context, t tx, p *store.Profile) (*profileRefs, error) {
	var r profileRefs
	var err error
	if r.cira, err = s.resolve(ctx, t, "ciraconfigs", "ciraconfig", p.TenantID, p.CIRAConfigName); err != nil {
		return nil, err
	}
	if r.ieee, err = s.resolve(ctx, t, "ieee8021xconfigs", "ieee8021x", p.TenantID, p.IEEE8021xProfileName); err != nil {
		return nil, err
	}
	wifiNames := make([]string, len(p.WifiConfigs))
	for i, l := range p.WifiConfigs {
		wifiNames[i] = l.Name
	}
	if r.wifi, err = s.resolveMany(ctx, t, "wirelessconfigs", "wireless", p.TenantID, wifiNames); err != nil {
		return nil, err
	}
	proxyNames := make([]string, len(p.ProxyConfigs))
	for i, l := range p.ProxyConfigs {
		proxyNames[i] = l.Name
	}
	if r.proxy, err = s.resolveMany(ctx, t, "proxyconfigs", "proxy", p.TenantID, proxyNames); err != nil {
		return nil, err
	}
	return &r, nil
}

// resolveMany resolves names (in one query) to ids in the same order. Missing
// names give one *store.RefError whose Name lists them all, comma-separated, in
// the order given. A name given twice is ErrDuplicate.
func (s *Store) resolveMany(ctx context.Context, t tx, table, kind, tenant string, names []string) ([]int64, error) {
	if len(names) == 0 {
		return nil, nil
	}
	args := []any{tenant}
	seen := map[string]bool{}
	for _, n := range names {
		k := key(n)
		if seen[k] {
			return nil, fmt.Errorf("%s config %q listed twice: %w", kind, n, store.ErrDuplicate)
		}
		seen[k] = true
		args = append(args, k)
	}
	rows, err := t.query(ctx, "SELECT id, name_key FROM "+table+" WHERE tenant_id = ? AND name_key IN ("+
		placeholders(len(names))+")"+s.lockShare(), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	ids := map[string]int64{}
	for rows.Next() {
		var id int64
		var k string
		if err := rows.Scan(&id, &k); err != nil {
			return nil, err
		}
		ids[k] = id
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]int64, len(names))
	var missing []string
	for i, n := range names {
		id, ok := ids[key(n)]
		if !ok {
			missing = append(missing, n)
		}
		out[i] = id
	}
	if len(missing) > 0 {
		return nil, &store.RefError{Err: store.ErrMissingReference, Kind: kind, Name: strings.Join(missing, ",")}
	}
	return out, nil
}

func (s *Store) insertLinks(ctx context.Context, t tx, profileID int64, p *store.Profile, r *profileRefs) error {
	if n := len(r.wifi); n > 0 {
		args := make([]any, 0, 3*n)
		for i, id := range r.wifi {
			args = append(args, profileID, id, p.WifiConfigs[i].Priority)
		}
		if _, err := t.exec(ctx, "INSERT INTO profile_wireless (profile_id, wireless_id, priority) VALUES "+
			valueRows(n, 3), args...); err != nil {
			return err
		}
	}
	if n := len(r.proxy); n > 0 {
		args := make([]any, 0, 3*n)
		for i, id := range r.proxy {
			args = append(args, profileID, id, p.ProxyConfigs[i].Priority)
		}
		if _, err := t.exec(ctx, "INSERT INTO profile_proxies (profile_id, proxy_id, priority) VALUES "+
			valueRows(n, 3), args...); err != nil {
			return err
		}
	}
	return nil
}

// valueRows returns "(?, ?, ?), (?, ?, ?)" for rows × cols.
func valueRows(rows, cols int) string {
	row := "(" + placeholders(cols) + ")"
	return strings.Repeat(row+", ", rows-1) + row
}

// CreateProfile inserts p with its links; ErrDuplicate when the name exists,
// *store.RefError (ErrMissingReference) when a CIRA, 802.1x, wireless or proxy
// config it names does not exist.
func (s *Store) CreateProfile(ctx context.Context, p *store.Profile) error {
	const op = "create profile"
	err := s.inWrite(ctx, func(t tx) error {
		r, err := s.resolveProfileRefs(ctx, t, p)
		if err != nil {
			return err
		}
		var id int64
		err = t.queryRow(ctx, `INSERT INTO profiles (tenant_id, name, name_key, activation,
			generate_random_password, generate_random_mebx_password, cira_id, tags, dhcp_enabled,
			ip_sync_enabled, local_wifi_sync_enabled, uefi_wifi_sync_enabled, tls_mode,
			tls_signing_authority, user_consent, ider_enabled, kvm_enabled, sol_enabled, ieee8021x_id,
			power_policy, user_acls, secret_id, version)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1) RETURNING id`,
			p.TenantID, p.Name, key(p.Name), p.Activation, p.GenerateRandomPassword, p.GenerateRandomMEBxPassword,
			r.cira, stringsArg(p.Tags), p.DHCPEnabled, boolPtrArg(p.IPSyncEnabled), boolPtrArg(p.LocalWifiSyncEnabled),
			boolPtrArg(p.UEFIWifiSyncEnabled), intPtrArg(p.TLSMode), strPtrArg(p.TLSSigningAuthority), p.UserConsent,
			p.IDEREnabled, p.KVMEnabled, p.SOLEnabled, r.ieee, p.PowerPolicy, aclsArg(p.UserACLs), p.SecretID).Scan(&id)
		if err != nil {
			return err
		}
		return s.insertLinks(ctx, t, id, p, r)
	})
	if err != nil {
		return writeErr(op, err)
	}
	p.Version = 1
	normalizeProfile(p)
	return nil
}

func normalizeProfile(p *store.Profile) {
	p.Tags = nonNil(p.Tags)
	p.UserACLs = normalizeACLs(p.UserACLs)
	p.WifiConfigs = nonNil(p.WifiConfigs)
	p.ProxyConfigs = nonNil(p.ProxyConfigs)
}

// UpdateProfile stores p if p.Version is current and replaces its links.
func (s *Store) UpdateProfile(ctx context.Context, p *store.Profile) error {
	const op = "update profile"
	var v int64
	err := s.inWrite(ctx, func(t tx) error {
		r, err := s.resolveProfileRefs(ctx, t, p)
		if err != nil {
			return err
		}
		var id int64
		err = t.queryRow(ctx, `UPDATE profiles SET activation = ?, generate_random_password = ?,
			generate_random_mebx_password = ?, cira_id = ?, tags = ?, dhcp_enabled = ?, ip_sync_enabled = ?,
			local_wifi_sync_enabled = ?, uefi_wifi_sync_enabled = ?, tls_mode = ?, tls_signing_authority = ?,
			user_consent = ?, ider_enabled = ?, kvm_enabled = ?, sol_enabled = ?, ieee8021x_id = ?,
			power_policy = ?, user_acls = ?, secret_id = ?, version = version + 1
			WHERE tenant_id = ? AND name_key = ? AND version = ? RETURNING id, version`,
			p.Activation, p.GenerateRandomPassword, p.GenerateRandomMEBxPassword, r.cira, stringsArg(p.Tags),
			p.DHCPEnabled, boolPtrArg(p.IPSyncEnabled), boolPtrArg(p.LocalWifiSyncEnabled),
			boolPtrArg(p.UEFIWifiSyncEnabled), intPtrArg(p.TLSMode), strPtrArg(p.TLSSigningAuthority),
			p.UserConsent, p.IDEREnabled, p.KVMEnabled, p.SOLEnabled, r.ieee, p.PowerPolicy, aclsArg(p.UserACLs),
			p.SecretID, p.TenantID, key(p.Name), p.Version).Scan(&id, &v)
		if errors.Is(err, sql.ErrNoRows) {
			return versionMiss(ctx, t, "profiles", p.TenantID, p.Name)
		}
		if err != nil {
			return err
		}
		if _, err := t.exec(ctx, "DELETE FROM profile_wireless WHERE profile_id = ?", id); err != nil {
			return err
		}
		if _, err := t.exec(ctx, "DELETE FROM profile_proxies WHERE profile_id = ?", id); err != nil {
			return err
		}
		return s.insertLinks(ctx, t, id, p, r)
	})
	if err != nil {
		return writeErr(op, err)
	}
	p.Version = v
	normalizeProfile(p)
	return nil
}

// DeleteProfile deletes a profile and its links.
func (s *Store) DeleteProfile(ctx context.Context, tenant, name string) error {
	res, err := s.w.exec(ctx, "DELETE FROM profiles WHERE tenant_id = ? AND name_key = ?", tenant, key(name))
	return deleted("delete profile", res, err)
}

// aclsArg encodes a profile's user ACLs (no passwords: they are in the
// secret store), never as JSON null.
func aclsArg(v []store.UserACL) string {
	s, _ := jsonArg(normalizeACLs(v)) // always marshals
	return s
}

// normalizeACLs returns non-nil slices (an empty list, empty realm lists).
func normalizeACLs(v []store.UserACL) []store.UserACL {
	out := make([]store.UserACL, len(v))
	for i, a := range v {
		a.Realms = nonNil(append([]int(nil), a.Realms...))
		out[i] = a
	}
	return out
}
