package provision

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/authorization"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/systempowerscheme"

	"github.com/amtd-project/amtd/internal/secrets"
	"github.com/amtd-project/amtd/internal/store"
)

// The profile's power package and additional AMT users (amtd extensions of
// the RPS profile, as ConfigMgr's AMT provisioning profiles had them). Both
// are applied in CCM and ACM: AMT_SystemPowerScheme.SetPowerScheme and the
// AMT_AuthorizationService user ACL methods are not among the functions
// Intel lists as blocked in client control mode.

// Steps of the provisioning log.
const (
	stepPowerPolicy = "power.policy"
	stepUserACLs    = "useracl"
)

// returnValue reads <ReturnValue> from a method response (-1 when absent).
func returnValue(body []byte) int {
	var env struct {
		Body struct {
			Output struct {
				ReturnValue *int `xml:"ReturnValue"`
			} `xml:",any"`
		} `xml:"Body"`
	}
	if err := xml.Unmarshal(body, &env); err != nil || env.Body.Output.ReturnValue == nil {
		return -1
	}
	return *env.Body.Output.ReturnValue
}

// invoke posts a raw method request and returns its ReturnValue.
func invoke(m wsman.Messages, env string) (int, error) {
	out, err := m.Client.Post(env)
	if err != nil {
		return -1, err
	}
	return returnValue(out), nil
}

// ---- power package ----

// parsePowerGUID reads a scheme GUID given as base64 (as AMT reports
// SchemeGUID), 32 hex digits in firmware byte order, or the GUID's text
// form 8-4-4-4-12 (as setup.bin's power package variable carries it: first
// three fields little-endian in the firmware bytes).
func parsePowerGUID(s string) ([]byte, bool) {
	s = strings.TrimSpace(s)
	if len(s) == 36 && s[8] == '-' && s[13] == '-' && s[18] == '-' && s[23] == '-' {
		b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
		if err != nil {
			return nil, false
		}
		slices.Reverse(b[0:4])
		slices.Reverse(b[4:6])
		slices.Reverse(b[6:8])
		return b, true
	}
	if len(s) == 32 {
		if b, err := hex.DecodeString(s); err == nil {
			return b, true
		}
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil && len(b) == 16 {
		return b, true
	}
	return nil, false
}

// matchPowerScheme finds the scheme a profile's powerPolicy names: by
// Description (case-insensitive), by SchemeGUID, or by ElementName when
// exactly one scheme has it.
func matchPowerScheme(items []systempowerscheme.SystemPowerScheme, policy string) (*systempowerscheme.SystemPowerScheme, error) {
	want := strings.TrimSpace(policy)
	for i := range items {
		if strings.EqualFold(strings.TrimSpace(items[i].Description), want) {
			return &items[i], nil
		}
	}
	if g, ok := parsePowerGUID(want); ok {
		for i := range items {
			if b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(items[i].SchemeGUID)); err == nil && slices.Equal(b, g) {
				return &items[i], nil
			}
		}
	}
	var byName []int
	for i := range items {
		if strings.EqualFold(strings.TrimSpace(items[i].ElementName), want) {
			byName = append(byName, i)
		}
	}
	if len(byName) == 1 {
		return &items[byName[0]], nil
	}
	names := make([]string, 0, len(items))
	for _, it := range items {
		names = append(names, fmt.Sprintf("%q (%s)", it.Description, it.SchemeGUID))
	}
	if len(byName) > 1 {
		return nil, fmt.Errorf("power policy %q names %d power schemes; give the description or the GUID of one: %s",
			policy, len(byName), strings.Join(names, ", "))
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("power policy %q: the device reports no power schemes", policy)
	}
	return nil, fmt.Errorf("power policy %q matches none of the device's power schemes: %s", policy, strings.Join(names, ", "))
}

// powerPolicy selects the profile's AMT power package: Enumerate/Pull
// AMT_SystemPowerScheme, then SetPowerScheme on the matching instance.
func (c *configRun) powerPolicy(ctx context.Context) error {
	if c.p.PowerPolicy == "" {
		return nil
	}
	c.t.Progress("Setting the power policy")
	var items []systempowerscheme.SystemPowerScheme
	err := c.do(ctx, func(m wsman.Messages) error {
		en, err := m.AMT.SystemPowerScheme.Enumerate()
		if err != nil {
			return err
		}
		pr, err := m.AMT.SystemPowerScheme.Pull(en.Body.EnumerateResponse.EnumerationContext)
		items = pr.Body.PullResponse.SystemPowerSchemeItems
		return err
	})
	if err != nil {
		err = fmt.Errorf("reading the power schemes: %w", err)
		c.j.Fail(ctx, stepPowerPolicy, err)
		return err
	}
	sch, err := matchPowerScheme(items, c.p.PowerPolicy)
	if err != nil {
		c.j.Fail(ctx, stepPowerPolicy, err)
		return err
	}
	rv := -1
	err = c.do(ctx, func(m wsman.Messages) error {
		var err error
		rv, err = invoke(m, methodEnvelope("AMT_SystemPowerScheme", "SetPowerScheme", [][2]string{{"InstanceID", sch.InstanceID}}, ""))
		return err
	})
	if err == nil {
		err = checkRV("AMT_SystemPowerScheme.SetPowerScheme", rv)
	}
	if err != nil {
		err = fmt.Errorf("selecting power scheme %q: %w", sch.Description, err)
		c.j.Fail(ctx, stepPowerPolicy, err)
		return err
	}
	c.j.OK(ctx, stepPowerPolicy, fmt.Sprintf("selected %q (%s, %s)", sch.Description, sch.InstanceID, sch.SchemeGUID))
	return nil
}

// ---- user ACLs ----

// Access permissions of user ACL entries.
var accessNames = map[int]string{0: "local", 1: "network", 2: "any"}

// userHandles maps the device's user ACL entries' names to their handles
// (EnumerateUserAclEntries page by page, GetUserAclEntryEx each).
func (c *configRun) userHandles(ctx context.Context) (map[string]int, error) {
	var handles []int
	for start := 1; ; {
		var out authorization.EnumerateUserAclEntries_OUTPUT
		err := c.do(ctx, func(m wsman.Messages) error {
			r, err := m.AMT.AuthorizationService.EnumerateUserACLEntries(start)
			out = r.Body.EnumerateUserResponse
			return err
		})
		if err == nil {
			err = checkRV("EnumerateUserAclEntries", int(out.ReturnValue))
		}
		if err != nil {
			return nil, err
		}
		handles = append(handles, out.Handles...)
		if len(out.Handles) == 0 || len(handles) >= out.TotalCount {
			break
		}
		start += len(out.Handles)
	}
	byName := make(map[string]int, len(handles))
	for _, h := range handles {
		var out authorization.GetUserAclEntryEx_OUTPUT
		err := c.do(ctx, func(m wsman.Messages) error {
			r, err := m.AMT.AuthorizationService.GetUserACLEntryEx(h)
			out = r.Body.GetUserResponse
			return err
		})
		if err == nil {
			err = checkRV("GetUserAclEntryEx", int(out.ReturnValue))
		}
		if err != nil {
			return nil, err
		}
		if out.DigestUsername != "" { // Kerberos entries have none
			byName[out.DigestUsername] = h
		}
	}
	return byName, nil
}

// userACLs creates the profile's AMT users, or updates them (password,
// access, realms) when the device already has an entry of that name; users
// the profile does not name are left alone.
func (c *configRun) userACLs(ctx context.Context) error {
	if len(c.p.UserACLs) == 0 {
		return nil
	}
	c.t.Progress("Configuring AMT users")
	fail := func(err error) error {
		c.j.Fail(ctx, stepUserACLs, err)
		return err
	}
	realm := c.t.General.DigestRealm
	if realm == "" {
		return fail(fmt.Errorf("the device reported no digest realm"))
	}
	sec, err := c.e.secretEntry(ctx, c.p.TenantID, KindProfile, c.p.SecretID)
	if err != nil {
		return fail(err)
	}
	existing, err := c.userHandles(ctx)
	if err != nil {
		return fail(fmt.Errorf("reading the user ACL entries: %w", err))
	}
	var did []string
	for _, a := range c.p.UserACLs {
		pw := sec[secrets.UserACLPasswordField(a.Username)]
		if pw == "" {
			return fail(fmt.Errorf("profile %s has no password for AMT user %s in the secret store", c.p.Name, a.Username))
		}
		dp := aclDigestPassword(a.Username, realm, pw)
		desc := fmt.Sprintf("%s (%s, realms %s)", a.Username, accessNames[a.AccessPermission], realmList(a.Realms))
		if h, ok := existing[a.Username]; ok {
			rv := -1
			err := c.do(ctx, func(m wsman.Messages) error {
				var err error
				rv, err = invoke(m, methodEnvelope("AMT_AuthorizationService", "UpdateUserAclEntryEx", nil, aclParams(h, a, dp)))
				return err
			})
			if err == nil {
				err = checkRV("UpdateUserAclEntryEx", rv)
			}
			if err != nil {
				return fail(fmt.Errorf("updating AMT user %s: %w", a.Username, err))
			}
			did = append(did, "updated "+desc)
			continue
		}
		realms := make([]authorization.RealmValues, len(a.Realms))
		for i, r := range a.Realms {
			realms[i] = authorization.RealmValues(r)
		}
		rv := -1
		err := c.do(ctx, func(m wsman.Messages) error {
			r, err := m.AMT.AuthorizationService.AddUserAclEntryEx(a.Username, dp, authorization.AccessPermission(a.AccessPermission), realms)
			if err != nil {
				return err
			}
			rv = int(r.Body.AddUserResponse.ReturnValue)
			return nil
		})
		if err == nil {
			err = checkRV("AddUserAclEntryEx", rv)
		}
		if err != nil {
			return fail(fmt.Errorf("adding AMT user %s: %w", a.Username, err))
		}
		did = append(did, "added "+desc)
	}
	c.j.OK(ctx, stepUserACLs, strings.Join(did, "; "))
	return nil
}

// aclParams renders UpdateUserAclEntryEx's input parameters.
func aclParams(handle int, a store.UserACL, digest string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<h:Handle>%d</h:Handle><h:DigestUsername>%s</h:DigestUsername><h:DigestPassword>%s</h:DigestPassword><h:AccessPermission>%d</h:AccessPermission>",
		handle, xmlEscape(a.Username), digest, a.AccessPermission)
	for _, r := range a.Realms {
		fmt.Fprintf(&b, "<h:Realms>%d</h:Realms>", r)
	}
	return b.String()
}

func realmList(rs []int) string {
	if len(rs) == 0 {
		return "none"
	}
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = strconv.Itoa(r)
	}
	return strings.Join(s, ",")
}
