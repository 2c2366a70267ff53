//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package fleet

import (
	"fmt"
	"os"
)

// LockName is the lock file that keeps two processes from running the same
// fleet folder (not enforced on this platform).
const LockName = ".lock"

type dirLock struct{}

func lockDir(dir string) (*dirLock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	return &dirLock{}, nil
}

func (*dirLock) release() {}
