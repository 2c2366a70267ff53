package provision

import (
	"context"
	"hash/maphash"
	"sync"
)

// deviceLocks serialises sessions per device GUID so that two sessions for
// one device never interleave their WS-MAN calls or credential updates. Locks
// are created on demand and dropped when unused; the map is sharded so that
// sessions for different devices do not contend on one mutex.
type deviceLocks struct {
	seed   maphash.Seed
	shards [64]lockShard
}

type lockShard struct {
	mu sync.Mutex
	m  map[string]*deviceLock
}

type deviceLock struct {
	ch   chan struct{} // holds one token while locked
	refs int           // holders and waiters
}

func newDeviceLocks() *deviceLocks {
	l := &deviceLocks{seed: maphash.MakeSeed()}
	for i := range l.shards {
		l.shards[i].m = map[string]*deviceLock{}
	}
	return l
}

func (l *deviceLocks) shard(key string) *lockShard {
	return &l.shards[maphash.String(l.seed, key)%uint64(len(l.shards))]
}

// lock waits for the device's lock or ctx. The returned function unlocks.
func (l *deviceLocks) lock(ctx context.Context, key string) (func(), error) {
	sh := l.shard(key)
	sh.mu.Lock()
	dl := sh.m[key]
	if dl == nil {
		dl = &deviceLock{ch: make(chan struct{}, 1)}
		sh.m[key] = dl
	}
	dl.refs++
	sh.mu.Unlock()

	release := func() {
		sh.mu.Lock()
		dl.refs--
		if dl.refs == 0 {
			delete(sh.m, key)
		}
		sh.mu.Unlock()
	}
	select {
	case dl.ch <- struct{}{}:
		return func() { <-dl.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}
