package pgbin

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestDirCredentialFreePort(t *testing.T) {
	dir, err := Dir()
	if err != nil {
		t.Fatal(err) // the machine has PostgreSQL's binaries (README, .ci/run)
	}
	for _, tool := range []string{"initdb", "pg_ctl", "postgres"} {
		if _, err := os.Stat(filepath.Join(dir, tool)); err != nil {
			t.Errorf("%s: %v", tool, err)
		}
	}

	cred, err := Credential()
	switch {
	case err != nil:
		t.Fatal(err)
	case os.Geteuid() != 0 && cred != nil:
		t.Fatalf("not root, yet a credential %+v", cred)
	case os.Geteuid() == 0 && (cred == nil || cred.Uid == 0):
		t.Fatalf("root, and PostgreSQL would run as %+v", cred)
	}

	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("the free port %d cannot be bound: %v", port, err)
	}
	l.Close()
}
