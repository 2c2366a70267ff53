//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package firmware

import (
	"context"
	"errors"
	"os"
	"syscall"
	"time"
)

// lockSetupFile takes an exclusive lock on the file at path (flock), so
// that devices and processes sharing a setup.bin apply its records one at a
// time. The lock is on the file's current inode: a writer replaces the file
// by renaming, so after locking, the path must still name the locked file.
func lockSetupFile(ctx context.Context, path string) (unlock func(), err error) {
	delay := time.Millisecond
	for {
		f, err := os.OpenFile(path, os.O_RDONLY, 0)
		if err != nil {
			return nil, err
		}
		for {
			err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
			if !errors.Is(err, syscall.EWOULDBLOCK) {
				break
			}
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				f.Close()
				return nil, ctx.Err()
			case <-t.C:
			}
			delay = min(2*delay, 50*time.Millisecond)
		}
		if err != nil {
			f.Close()
			return nil, err
		}
		held, err1 := f.Stat()
		now, err2 := os.Stat(path)
		if err1 == nil && err2 == nil && os.SameFile(held, now) {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		// replaced while we waited: lock the new file
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
		if err2 != nil {
			return nil, err2
		}
	}
}
