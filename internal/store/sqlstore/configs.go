package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/amtd-project/amtd/internal/store"
)

// Helpers shared by the config tables: lists, counts, version misses and
// reference resolution.

// listOf runs a list query and scans each row with scan.
func listOf[T any](ctx context.Context, p *pool, op, query string, args []any, scan func(rowScanner, *T) error) ([]T, error) {
	rows, err := p.query(ctx, query, args...)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		var v T
		if err := scan(rows, &v); err != nil {
			return nil, wrap(op, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(op, err)
	}
	return out, nil
}

// getOne runs a one-row query; no row is store.ErrNotFound.
func getOne[T any](ctx context.Context, p *pool, op, query string, args []any, scan func(rowScanner, *T) error) (*T, error) {
	var v T
	if err := scan(p.queryRow(ctx, query, args...), &v); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, store.ErrNotFound
		}
		return nil, wrap(op, err)
	}
	return &v, nil
}

func (s *Store) count(ctx context.Context, table, tenant string) (int, error) {
	var n int
	if err := s.r.queryRow(ctx, "SELECT COUNT(*) FROM "+table+" WHERE tenant_id = ?", tenant).Scan(&n); err != nil {
		return 0, wrap("count "+table, err)
	}
	return n, nil
}

// versionMiss explains an UPDATE … WHERE version = ? that matched no row.
func versionMiss(ctx context.Context, q interface {
	queryRow(context.Context, string, ...any) rowScanner
}, table, tenant, name string) error {
	var v int64
	err := q.queryRow(ctx, "SELECT version FROM "+table+" WHERE tenant_id = ? AND name_key = ?", tenant, key(name)).Scan(&v)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return store.ErrNotFound
	case err != nil:
		return wrap("update "+table, err)
	default:
		return store.ErrConflict
	}
}

// resolve finds the id of the named object of table in tenant, share-locking
// the row on PostgreSQL so that it cannot be deleted before the referring
// write commits. A missing object is a *store.RefError (ErrMissingReference).
func (s *Store) resolve(ctx context.Context, t tx, table, kind, tenant string, name *string) (any, error) {
	if name == nil {
		return nil, nil
	}
	var id int64
	err := t.queryRow(ctx, "SELECT id FROM "+table+" WHERE tenant_id = ? AND name_key = ?"+s.lockShare(),
		tenant, key(*name)).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, &store.RefError{Err: store.ErrMissingReference, Kind: kind, Name: *name}
	}
	if err != nil {
		return nil, err
	}
	return id, nil
}

// lockForDelete finds (and on PostgreSQL locks) the row to delete.
func (s *Store) lockForDelete(ctx context.Context, t tx, table, tenant, name string) (int64, error) {
	var id int64
	err := t.queryRow(ctx, "SELECT id FROM "+table+" WHERE tenant_id = ? AND name_key = ?"+s.lockUpdate(),
		tenant, key(name)).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, store.ErrNotFound
	}
	return id, err
}

// firstReferrer returns a *store.RefError (ErrInUse) naming the first object
// found by query (which selects one name), or nil when there is none.
func firstReferrer(ctx context.Context, t tx, kind, query string, args ...any) error {
	var name string
	err := t.queryRow(ctx, query, args...).Scan(&name)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	return &store.RefError{Err: store.ErrInUse, Kind: kind, Name: name}
}

// deleteRow deletes the locked row; a foreign-key violation (a referrer that
// appeared despite the checks) is ErrInUse by an object of kind referrer.
func deleteRow(ctx context.Context, t tx, table string, id int64, referrer string) error {
	if _, err := t.exec(ctx, "DELETE FROM "+table+" WHERE id = ?", id); err != nil {
		if isForeignKey(err) {
			return &store.RefError{Err: store.ErrInUse, Kind: referrer}
		}
		return err
	}
	return nil
}

// writeErr maps constraint violations of a create or update.
func writeErr(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case isUnique(err):
		return fmt.Errorf("%s: %w", op, store.ErrDuplicate)
	case isForeignKey(err):
		return &store.RefError{Err: store.ErrMissingReference}
	default:
		var re *store.RefError
		if errors.As(err, &re) || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
			return err
		}
		return wrap(op, err)
	}
}

// ---- CIRA configs ----

const ciraCols = `tenant_id, name, mps_server_address, mps_port, username, common_name,
	server_address_format, auth_method, mps_root_certificate, proxy_details, secret_id, version`

func scanCIRA(r rowScanner, c *store.CIRAConfig) error {
	return r.Scan(&c.TenantID, &c.Name, &c.MPSServerAddress, &c.MPSPort, &c.Username, &c.CommonName,
		&c.ServerAddressFormat, &c.AuthMethod, &c.MPSRootCertificate, &c.ProxyDetails, &c.SecretID, &c.Version)
}

// ListCIRAConfigs lists a tenant's CIRA configs by name.
func (s *Store) ListCIRAConfigs(ctx context.Context, tenant string, p store.Page) ([]store.CIRAConfig, error) {
	limit, offset, ok := limits(p)
	if !ok {
		return []store.CIRAConfig{}, nil
	}
	return listOf(ctx, s.r, "list ciraconfigs",
		"SELECT "+ciraCols+" FROM ciraconfigs WHERE tenant_id = ? ORDER BY name_key LIMIT ? OFFSET ?",
		[]any{tenant, limit, offset}, scanCIRA)
}

// CountCIRAConfigs counts a tenant's CIRA configs.
func (s *Store) CountCIRAConfigs(ctx context.Context, tenant string) (int, error) {
	return s.count(ctx, "ciraconfigs", tenant)
}

// GetCIRAConfig finds a CIRA config by name.
func (s *Store) GetCIRAConfig(ctx context.Context, tenant, name string) (*store.CIRAConfig, error) {
	return getOne(ctx, s.r, "get ciraconfig",
		"SELECT "+ciraCols+" FROM ciraconfigs WHERE tenant_id = ? AND name_key = ?",
		[]any{tenant, key(name)}, scanCIRA)
}

// CreateCIRAConfig inserts c with Version 1.
func (s *Store) CreateCIRAConfig(ctx context.Context, c *store.CIRAConfig) error {
	_, err := s.w.exec(ctx, `INSERT INTO ciraconfigs (tenant_id, name, name_key, mps_server_address, mps_port,
		username, common_name, server_address_format, auth_method, mps_root_certificate, proxy_details,
		secret_id, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)`,
		c.TenantID, c.Name, key(c.Name), c.MPSServerAddress, c.MPSPort, c.Username, c.CommonName,
		c.ServerAddressFormat, c.AuthMethod, c.MPSRootCertificate, c.ProxyDetails, c.SecretID)
	if err != nil {
		return writeErr("create ciraconfig", err)
	}
	c.Version = 1
	return nil
}

// UpdateCIRAConfig stores c if c.Version is current.
func (s *Store) UpdateCIRAConfig(ctx context.Context, c *store.CIRAConfig) error {
	var v int64
	err := s.w.queryRow(ctx, `UPDATE ciraconfigs SET mps_server_address = ?, mps_port = ?, username = ?,
		common_name = ?, server_address_format = ?, auth_method = ?, mps_root_certificate = ?,
		proxy_details = ?, secret_id = ?, version = version + 1
		WHERE tenant_id = ? AND name_key = ? AND version = ? RETURNING version`,
		c.MPSServerAddress, c.MPSPort, c.Username, c.CommonName, c.ServerAddressFormat, c.AuthMethod,
		c.MPSRootCertificate, c.ProxyDetails, c.SecretID, c.TenantID, key(c.Name), c.Version).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return versionMiss(ctx, s.r, "ciraconfigs", c.TenantID, c.Name)
	}
	if err != nil {
		return writeErr("update ciraconfig", err)
	}
	c.Version = v
	return nil
}

// DeleteCIRAConfig deletes a CIRA config no profile uses.
func (s *Store) DeleteCIRAConfig(ctx context.Context, tenant, name string) error {
	return s.inWrite(ctx, func(t tx) error {
		id, err := s.lockForDelete(ctx, t, "ciraconfigs", tenant, name)
		if err != nil {
			return writeErr("delete ciraconfig", err)
		}
		if err := firstReferrer(ctx, t, "profile",
			"SELECT name FROM profiles WHERE cira_id = ? ORDER BY name_key LIMIT 1", id); err != nil {
			return writeErr("delete ciraconfig", err)
		}
		return writeErr("delete ciraconfig", deleteRow(ctx, t, "ciraconfigs", id, "profile"))
	})
}

// ---- Domains ----

const domainCols = `tenant_id, name, domain_suffix, storage_format, expiration_date, secret_id, version`

func scanDomain(r rowScanner, d *store.Domain) error {
	return r.Scan(&d.TenantID, &d.Name, &d.DomainSuffix, &d.StorageFormat, zeroTimeCol{&d.ExpirationDate},
		&d.SecretID, &d.Version)
}

func (s *Store) expArg(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return s.timeArg(t)
}

// ListDomains lists a tenant's domains by name.
func (s *Store) ListDomains(ctx context.Context, tenant string, p store.Page) ([]store.Domain, error) {
	limit, offset, ok := limits(p)
	if !ok {
		return []store.Domain{}, nil
	}
	return listOf(ctx, s.r, "list domains",
		"SELECT "+domainCols+" FROM domains WHERE tenant_id = ? ORDER BY name_key LIMIT ? OFFSET ?",
		[]any{tenant, limit, offset}, scanDomain)
}

// CountDomains counts a tenant's domains.
func (s *Store) CountDomains(ctx context.Context, tenant string) (int, error) {
	return s.count(ctx, "domains", tenant)
}

// GetDomain finds a domain by name.
func (s *Store) GetDomain(ctx context.Context, tenant, name string) (*store.Domain, error) {
	return getOne(ctx, s.r, "get domain",
		"SELECT "+domainCols+" FROM domains WHERE tenant_id = ? AND name_key = ?",
		[]any{tenant, key(name)}, scanDomain)
}

// GetDomainBySuffix finds a domain by DNS suffix (case-insensitive).
func (s *Store) GetDomainBySuffix(ctx context.Context, tenant, suffix string) (*store.Domain, error) {
	return getOne(ctx, s.r, "get domain by suffix",
		"SELECT "+domainCols+" FROM domains WHERE tenant_id = ? AND suffix_key = ?",
		[]any{tenant, key(suffix)}, scanDomain)
}

// CreateDomain inserts d; ErrDuplicate on name or suffix.
func (s *Store) CreateDomain(ctx context.Context, d *store.Domain) error {
	_, err := s.w.exec(ctx, `INSERT INTO domains (tenant_id, name, name_key, domain_suffix, suffix_key,
		storage_format, expiration_date, secret_id, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)`,
		d.TenantID, d.Name, key(d.Name), d.DomainSuffix, key(d.DomainSuffix), d.StorageFormat,
		s.expArg(d.ExpirationDate), d.SecretID)
	if err != nil {
		return writeErr("create domain", err)
	}
	d.Version = 1
	d.ExpirationDate = truncZero(d.ExpirationDate)
	return nil
}

func truncZero(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(time.Microsecond)
}

// UpdateDomain stores d if d.Version is current; ErrDuplicate when the new
// suffix belongs to another domain.
func (s *Store) UpdateDomain(ctx context.Context, d *store.Domain) error {
	var v int64
	err := s.w.queryRow(ctx, `UPDATE domains SET domain_suffix = ?, suffix_key = ?, storage_format = ?,
		expiration_date = ?, secret_id = ?, version = version + 1
		WHERE tenant_id = ? AND name_key = ? AND version = ? RETURNING version`,
		d.DomainSuffix, key(d.DomainSuffix), d.StorageFormat, s.expArg(d.ExpirationDate), d.SecretID,
		d.TenantID, key(d.Name), d.Version).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return versionMiss(ctx, s.r, "domains", d.TenantID, d.Name)
	}
	if err != nil {
		return writeErr("update domain", err)
	}
	d.Version = v
	d.ExpirationDate = truncZero(d.ExpirationDate)
	return nil
}

// DeleteDomain deletes a domain.
func (s *Store) DeleteDomain(ctx context.Context, tenant, name string) error {
	res, err := s.w.exec(ctx, "DELETE FROM domains WHERE tenant_id = ? AND name_key = ?", tenant, key(name))
	return deleted("delete domain", res, err)
}

// deleted maps the result of a DELETE by key.
func deleted(op string, res sql.Result, err error) error {
	if err != nil {
		return writeErr(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return wrap(op, err)
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// ---- IEEE 802.1x configs ----

const ieeeCols = `tenant_id, name, authentication_protocol, pxe_timeout, wired_interface, version`

func scanIEEE(r rowScanner, c *store.IEEE8021xConfig) error {
	return r.Scan(&c.TenantID, &c.Name, &c.AuthenticationProtocol, ptrCol[int]{&c.PXETimeout},
		&c.WiredInterface, &c.Version)
}

// ListIEEE8021xConfigs lists a tenant's 802.1x configs by name.
func (s *Store) ListIEEE8021xConfigs(ctx context.Context, tenant string, p store.Page) ([]store.IEEE8021xConfig, error) {
	limit, offset, ok := limits(p)
	if !ok {
		return []store.IEEE8021xConfig{}, nil
	}
	return listOf(ctx, s.r, "list ieee8021xconfigs",
		"SELECT "+ieeeCols+" FROM ieee8021xconfigs WHERE tenant_id = ? ORDER BY name_key LIMIT ? OFFSET ?",
		[]any{tenant, limit, offset}, scanIEEE)
}

// CountIEEE8021xConfigs counts a tenant's 802.1x configs.
func (s *Store) CountIEEE8021xConfigs(ctx context.Context, tenant string) (int, error) {
	return s.count(ctx, "ieee8021xconfigs", tenant)
}

// GetIEEE8021xConfig finds an 802.1x config by name.
func (s *Store) GetIEEE8021xConfig(ctx context.Context, tenant, name string) (*store.IEEE8021xConfig, error) {
	return getOne(ctx, s.r, "get ieee8021xconfig",
		"SELECT "+ieeeCols+" FROM ieee8021xconfigs WHERE tenant_id = ? AND name_key = ?",
		[]any{tenant, key(name)}, scanIEEE)
}

// CreateIEEE8021xConfig inserts c with Version 1.
func (s *Store) CreateIEEE8021xConfig(ctx context.Context, c *store.IEEE8021xConfig) error {
	_, err := s.w.exec(ctx, `INSERT INTO ieee8021xconfigs (tenant_id, name, name_key, authentication_protocol,
		pxe_timeout, wired_interface, version) VALUES (?, ?, ?, ?, ?, ?, 1)`,
		c.TenantID, c.Name, key(c.Name), c.AuthenticationProtocol, intPtrArg(c.PXETimeout), c.WiredInterface)
	if err != nil {
		return writeErr("create ieee8021xconfig", err)
	}
	c.Version = 1
	return nil
}

// UpdateIEEE8021xConfig stores c if c.Version is current.
func (s *Store) UpdateIEEE8021xConfig(ctx context.Context, c *store.IEEE8021xConfig) error {
	var v int64
	err := s.w.queryRow(ctx, `UPDATE ieee8021xconfigs SET authentication_protocol = ?, pxe_timeout = ?,
		wired_interface = ?, version = version + 1
		WHERE tenant_id = ? AND name_key = ? AND version = ? RETURNING version`,
		c.AuthenticationProtocol, intPtrArg(c.PXETimeout), c.WiredInterface, c.TenantID, key(c.Name), c.Version).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return versionMiss(ctx, s.r, "ieee8021xconfigs", c.TenantID, c.Name)
	}
	if err != nil {
		return writeErr("update ieee8021xconfig", err)
	}
	c.Version = v
	return nil
}

// DeleteIEEE8021xConfig deletes an 802.1x config no profile or wireless config uses.
func (s *Store) DeleteIEEE8021xConfig(ctx context.Context, tenant, name string) error {
	return s.inWrite(ctx, func(t tx) error {
		const op = "delete ieee8021xconfig"
		id, err := s.lockForDelete(ctx, t, "ieee8021xconfigs", tenant, name)
		if err != nil {
			return writeErr(op, err)
		}
		if err := firstReferrer(ctx, t, "profile",
			"SELECT name FROM profiles WHERE ieee8021x_id = ? ORDER BY name_key LIMIT 1", id); err != nil {
			return writeErr(op, err)
		}
		if err := firstReferrer(ctx, t, "wireless",
			"SELECT name FROM wirelessconfigs WHERE ieee8021x_id = ? ORDER BY name_key LIMIT 1", id); err != nil {
			return writeErr(op, err)
		}
		return writeErr(op, deleteRow(ctx, t, "ieee8021xconfigs", id, "profile"))
	})
}

// ---- Wireless configs ----

const wirelessCols = `w.tenant_id, w.name, w.authentication_method, w.encryption_method, w.ssid, w.link_policy,
	x.name, w.secret_id, w.version`

const wirelessFrom = ` FROM wirelessconfigs w LEFT JOIN ieee8021xconfigs x ON x.id = w.ieee8021x_id`

func scanWireless(r rowScanner, w *store.WirelessConfig) error {
	if err := r.Scan(&w.TenantID, &w.Name, &w.AuthenticationMethod, &w.EncryptionMethod, &w.SSID,
		jsonCol{&w.LinkPolicy}, ptrCol[string]{&w.IEEE8021xProfileName}, &w.SecretID, &w.Version); err != nil {
		return err
	}
	w.LinkPolicy = nonNil(w.LinkPolicy)
	return nil
}

// ListWirelessConfigs lists a tenant's wireless configs by name.
func (s *Store) ListWirelessConfigs(ctx context.Context, tenant string, p store.Page) ([]store.WirelessConfig, error) {
	limit, offset, ok := limits(p)
	if !ok {
		return []store.WirelessConfig{}, nil
	}
	return listOf(ctx, s.r, "list wirelessconfigs",
		"SELECT "+wirelessCols+wirelessFrom+" WHERE w.tenant_id = ? ORDER BY w.name_key LIMIT ? OFFSET ?",
		[]any{tenant, limit, offset}, scanWireless)
}

// CountWirelessConfigs counts a tenant's wireless configs.
func (s *Store) CountWirelessConfigs(ctx context.Context, tenant string) (int, error) {
	return s.count(ctx, "wirelessconfigs", tenant)
}

// GetWirelessConfig finds a wireless config by name.
func (s *Store) GetWirelessConfig(ctx context.Context, tenant, name string) (*store.WirelessConfig, error) {
	return getOne(ctx, s.r, "get wirelessconfig",
		"SELECT "+wirelessCols+wirelessFrom+" WHERE w.tenant_id = ? AND w.name_key = ?",
		[]any{tenant, key(name)}, scanWireless)
}

// CreateWirelessConfig inserts w; ErrMissingReference (RefError, Kind
// "ieee8021x") when its 802.1x config does not exist.
func (s *Store) CreateWirelessConfig(ctx context.Context, w *store.WirelessConfig) error {
	const op = "create wirelessconfig"
	return s.inWrite(ctx, func(t tx) error {
		ieee, err := s.resolve(ctx, t, "ieee8021xconfigs", "ieee8021x", w.TenantID, w.IEEE8021xProfileName)
		if err != nil {
			return writeErr(op, err)
		}
		_, err = t.exec(ctx, `INSERT INTO wirelessconfigs (tenant_id, name, name_key, authentication_method,
			encryption_method, ssid, link_policy, ieee8021x_id, secret_id, version)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1)`,
			w.TenantID, w.Name, key(w.Name), w.AuthenticationMethod, w.EncryptionMethod, w.SSID,
			intsArg(w.LinkPolicy), ieee, w.SecretID)
		if err != nil {
			return writeErr(op, err)
		}
		w.Version = 1
		w.LinkPolicy = nonNil(w.LinkPolicy)
		return nil
	})
}

// UpdateWirelessConfig stores w if w.Version is current.
func (s *Store) UpdateWirelessConfig(ctx context.Context, w *store.WirelessConfig) error {
	const op = "update wirelessconfig"
	return s.inWrite(ctx, func(t tx) error {
		ieee, err := s.resolve(ctx, t, "ieee8021xconfigs", "ieee8021x", w.TenantID, w.IEEE8021xProfileName)
		if err != nil {
			return writeErr(op, err)
		}
		var v int64
		err = t.queryRow(ctx, `UPDATE wirelessconfigs SET authentication_method = ?, encryption_method = ?,
			ssid = ?, link_policy = ?, ieee8021x_id = ?, secret_id = ?, version = version + 1
			WHERE tenant_id = ? AND name_key = ? AND version = ? RETURNING version`,
			w.AuthenticationMethod, w.EncryptionMethod, w.SSID, intsArg(w.LinkPolicy), ieee, w.SecretID,
			w.TenantID, key(w.Name), w.Version).Scan(&v)
		if errors.Is(err, sql.ErrNoRows) {
			return versionMiss(ctx, t, "wirelessconfigs", w.TenantID, w.Name)
		}
		if err != nil {
			return writeErr(op, err)
		}
		w.Version = v
		w.LinkPolicy = nonNil(w.LinkPolicy)
		return nil
	})
}

// DeleteWirelessConfig deletes a wireless config no profile links.
func (s *Store) DeleteWirelessConfig(ctx context.Context, tenant, name string) error {
	return s.inWrite(ctx, func(t tx) error {
		const op = "delete wirelessconfig"
		id, err := s.lockForDelete(ctx, t, "wirelessconfigs", tenant, name)
		if err != nil {
			return writeErr(op, err)
		}
		if err := firstReferrer(ctx, t, "profile", `SELECT p.name FROM profile_wireless l
			JOIN profiles p ON p.id = l.profile_id WHERE l.wireless_id = ? ORDER BY p.name_key LIMIT 1`, id); err != nil {
			return writeErr(op, err)
		}
		return writeErr(op, deleteRow(ctx, t, "wirelessconfigs", id, "profile"))
	})
}

// ---- Proxy configs ----

const proxyCols = `tenant_id, name, address, info_format, port, network_dns_suffix, version`

func scanProxy(r rowScanner, c *store.ProxyConfig) error {
	return r.Scan(&c.TenantID, &c.Name, &c.Address, &c.InfoFormat, &c.Port, &c.NetworkDNSSuffix, &c.Version)
}

// ListProxyConfigs lists a tenant's proxy configs by name.
func (s *Store) ListProxyConfigs(ctx context.Context, tenant string, p store.Page) ([]store.ProxyConfig, error) {
	limit, offset, ok := limits(p)
	if !ok {
		return []store.ProxyConfig{}, nil
	}
	return listOf(ctx, s.r, "list proxyconfigs",
		"SELECT "+proxyCols+" FROM proxyconfigs WHERE tenant_id = ? ORDER BY name_key LIMIT ? OFFSET ?",
		[]any{tenant, limit, offset}, scanProxy)
}

// CountProxyConfigs counts a tenant's proxy configs.
func (s *Store) CountProxyConfigs(ctx context.Context, tenant string) (int, error) {
	return s.count(ctx, "proxyconfigs", tenant)
}

// GetProxyConfig finds a proxy config by name.
func (s *Store) GetProxyConfig(ctx context.Context, tenant, name string) (*store.ProxyConfig, error) {
	return getOne(ctx, s.r, "get proxyconfig",
		"SELECT "+proxyCols+" FROM proxyconfigs WHERE tenant_id = ? AND name_key = ?",
		[]any{tenant, key(name)}, scanProxy)
}

// CreateProxyConfig inserts c; ErrDuplicate on name or (address, port).
func (s *Store) CreateProxyConfig(ctx context.Context, c *store.ProxyConfig) error {
	_, err := s.w.exec(ctx, `INSERT INTO proxyconfigs (tenant_id, name, name_key, address, address_key,
		info_format, port, network_dns_suffix, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)`,
		c.TenantID, c.Name, key(c.Name), c.Address, key(c.Address), c.InfoFormat, c.Port, c.NetworkDNSSuffix)
	if err != nil {
		return writeErr("create proxyconfig", err)
	}
	c.Version = 1
	return nil
}

// UpdateProxyConfig stores c whatever its Version (RPS has no concurrency
// control on proxies); the stored version still increases.
func (s *Store) UpdateProxyConfig(ctx context.Context, c *store.ProxyConfig) error {
	var v int64
	err := s.w.queryRow(ctx, `UPDATE proxyconfigs SET address = ?, address_key = ?, info_format = ?, port = ?,
		network_dns_suffix = ?, version = version + 1
		WHERE tenant_id = ? AND name_key = ? RETURNING version`,
		c.Address, key(c.Address), c.InfoFormat, c.Port, c.NetworkDNSSuffix, c.TenantID, key(c.Name)).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	if err != nil {
		return writeErr("update proxyconfig", err)
	}
	c.Version = v
	return nil
}

// DeleteProxyConfig deletes a proxy config no profile links.
func (s *Store) DeleteProxyConfig(ctx context.Context, tenant, name string) error {
	return s.inWrite(ctx, func(t tx) error {
		const op = "delete proxyconfig"
		id, err := s.lockForDelete(ctx, t, "proxyconfigs", tenant, name)
		if err != nil {
			return writeErr(op, err)
		}
		if err := firstReferrer(ctx, t, "profile", `SELECT p.name FROM profile_proxies l
			JOIN profiles p ON p.id = l.profile_id WHERE l.proxy_id = ? ORDER BY p.name_key LIMIT 1`, id); err != nil {
			return writeErr(op, err)
		}
		return writeErr(op, deleteRow(ctx, t, "proxyconfigs", id, "profile"))
	})
}
