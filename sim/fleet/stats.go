package fleet

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
)

// Stats is a snapshot of the process's cost.
type Stats struct {
	// RSS is the resident set (VmRSS of /proc/self/status; 0 elsewhere).
	RSS int64
	// HeapAlloc and HeapInuse, StackInuse and Sys from runtime.MemStats.
	HeapAlloc, HeapInuse, StackInuse, Sys uint64
	Goroutines                            int
	// FDs is the number of open descriptors (/proc/self/fd; -1 elsewhere).
	FDs int
}

// ReadStats collects garbage (and returns free memory to the system when
// release is set, so that RSS shows what is live), then measures.
func ReadStats(release bool) Stats {
	runtime.GC()
	if release {
		debug.FreeOSMemory()
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	s := Stats{HeapAlloc: m.HeapAlloc, HeapInuse: m.HeapInuse, StackInuse: m.StackInuse, Sys: m.Sys,
		Goroutines: runtime.NumGoroutine(), FDs: -1}
	if data, err := os.ReadFile("/proc/self/status"); err == nil {
		s.RSS = vmRSS(data)
	}
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		s.FDs = len(ents) - 1 // the descriptor ReadDir itself held
	}
	return s
}

// vmRSS extracts VmRSS (in bytes) from /proc/self/status.
func vmRSS(status []byte) int64 {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0
		}
		return kb << 10
	}
	return 0
}
