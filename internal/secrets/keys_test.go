package secrets

import "testing"

func TestObjectKey(t *testing.T) {
	for _, c := range []struct{ tenant, want string }{
		{"", "tenants/t_/profiles/abc"},
		{"acme-1", "tenants/t_acme-1/profiles/abc"},
		{"a/../b", "tenants/x_612f2e2e2f62/profiles/abc"},
	} {
		if got := ObjectKey(c.tenant, KindProfile, "abc"); got != c.want {
			t.Errorf("ObjectKey(%q) = %q, want %q", c.tenant, got, c.want)
		}
	}
}
