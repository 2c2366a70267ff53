package cira

import (
	"encoding/binary"
	"sync"

	"github.com/amtd-project/amtd/internal/apf"
)

// registry maps device UUIDs to their live connection. It is sharded so
// that look-ups for WS-MAN calls and relay sessions never contend on one
// lock, and keyed by the 16-byte UUID so an entry costs no string.
const shardBits = 6

type registry struct {
	shards [1 << shardBits]regShard
}

type regShard struct {
	mu sync.RWMutex
	m  map[apf.UUID]*conn
	_  [40]byte // keep shards on separate cache lines
}

func (r *registry) shard(u apf.UUID) *regShard {
	h := binary.LittleEndian.Uint64(u[:8]) ^ binary.LittleEndian.Uint64(u[8:])
	h *= 0x9E3779B97F4A7C15
	return &r.shards[h>>(64-shardBits)]
}

// swap registers c for its UUID and returns the connection it replaces.
func (r *registry) swap(c *conn) *conn {
	s := r.shard(c.uuid)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[apf.UUID]*conn)
	}
	old := s.m[c.uuid]
	s.m[c.uuid] = c
	return old
}

// remove unregisters c if it is still the connection for its UUID.
func (r *registry) remove(c *conn) bool {
	s := r.shard(c.uuid)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[c.uuid] != c {
		return false
	}
	delete(s.m, c.uuid)
	return true
}

func (r *registry) get(u apf.UUID) *conn {
	s := r.shard(u)
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.m[u]
}

func (r *registry) count() int {
	n := 0
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

// each calls fn for every registered connection, one shard at a time, with
// no lock held during fn; it stops when fn returns false.
func (r *registry) each(fn func(*conn) bool) {
	var batch []*conn
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.RLock()
		batch = batch[:0]
		for _, c := range s.m {
			batch = append(batch, c)
		}
		s.mu.RUnlock()
		for _, c := range batch {
			if !fn(c) {
				return
			}
		}
	}
}
