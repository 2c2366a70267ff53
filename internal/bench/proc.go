package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTick is the unit of /proc/<pid>/stat CPU times (USER_HZ, 100 on
// Linux).
const clockTick = 10 * time.Millisecond

// proc is a child process of the harness: amtd serve, amtd sim, postgres.
// Its standard output and error go to files in the run folder.
type proc struct {
	name    string
	cmd     *exec.Cmd
	outPath string
	errPath string
	done    chan struct{}
	waitErr error
}

// startProc starts exe args… with stdout and stderr in dir/name.out and
// dir/name.err. The child is killed if the harness dies (Pdeathsig).
func startProc(name, dir string, env []string, cred *syscall.Credential, exe string, args ...string) (*proc, error) {
	p := &proc{name: name, outPath: filepath.Join(dir, name+".out"), errPath: filepath.Join(dir, name+".err"), done: make(chan struct{})}
	out, err := os.Create(p.outPath)
	if err != nil {
		return nil, err
	}
	errf, err := os.Create(p.errPath)
	if err != nil {
		out.Close()
		return nil, err
	}
	p.cmd = exec.Command(exe, args...)
	p.cmd.Stdout, p.cmd.Stderr = out, errf
	p.cmd.Env = append(childEnv(), env...)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: cred}
	err = p.cmd.Start()
	out.Close()
	errf.Close()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// childEnv is the harness's environment without AMTD_* settings and
// GODEBUG, which would change what the children do.
func childEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "AMTD_") || strings.HasPrefix(kv, "GODEBUG=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGINT (amtd's graceful stop, postgres's fast shutdown) and
// waits up to timeout, then kills.
func (p *proc) stop(timeout time.Duration) error {
	if p.exited() {
		return p.waitErr
	}
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		return p.waitErr
	case <-t.C:
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop within %s; killed", p.name, timeout)
	}
}

// wait waits for the process to end by itself.
func (p *proc) wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.waitErr
	case <-ctx.Done():
		_ = p.cmd.Process.Kill()
		<-p.done
		return ctx.Err()
	}
}

// stdout and stderr read the output files so far.
func (p *proc) stdout() string { b, _ := os.ReadFile(p.outPath); return string(b) }
func (p *proc) stderr() string { b, _ := os.ReadFile(p.errPath); return string(b) }

// tail is the end of the process's stderr, for error messages.
func (p *proc) tail() string {
	s := p.stderr()
	if len(s) > 2000 {
		s = "…" + s[len(s)-2000:]
	}
	return s
}

// usage is the rusage of an ended process: CPU and peak RSS.
func (p *proc) usage() (cpu time.Duration, maxRSS int64) {
	if p.cmd.ProcessState == nil {
		return 0, 0
	}
	if ru, ok := p.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), ru.Maxrss << 10
	}
	return 0, 0
}

// sample is a running process's cost read from /proc.
type sample struct {
	At       time.Time
	CPU      time.Duration // utime + stime of the process
	ChildCPU time.Duration // cutime + cstime: children it has waited for
	RSS, HWM int64         // VmRSS, VmHWM in bytes
	FDs      int
	Threads  int
}

// readSample reads /proc/<pid>/stat, status and fd.
func readSample(pid int) (sample, error) {
	s := sample{At: time.Now()}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// fields after the command name (which may hold spaces) in parentheses
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, errors.New("bench: malformed /proc stat")
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state); utime is field 14 → f[11]
	if len(f) < 15 {
		return s, errors.New("bench: short /proc stat")
	}
	tick := func(k int) time.Duration { v, _ := strconv.ParseInt(f[k], 10, 64); return time.Duration(v) * clockTick }
	s.CPU = tick(11) + tick(12)
	s.ChildCPU = tick(13) + tick(14)
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	sc := bufio.NewScanner(bytes.NewReader(st))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fs := strings.Fields(v)
		if len(fs) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(fs[0], 10, 64)
		switch k {
		case "VmRSS":
			s.RSS = n << 10
		case "VmHWM":
			s.HWM = n << 10
		case "Threads":
			s.Threads = int(n)
		}
	}
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		s.FDs = len(ents)
	}
	return s, nil
}

// resetHWM resets the process's peak RSS (VmHWM) to its current RSS
// (/proc/<pid>/clear_refs, Linux 4.0+).
func resetHWM(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, n)
		}
	}
	return out
}

// treeCPU is the CPU time of pid, of the children it has reaped and of its
// live children (PostgreSQL: the postmaster and its backends).
func treeCPU(pid int) time.Duration {
	s, err := readSample(pid)
	if err != nil {
		return 0
	}
	total := s.CPU + s.ChildCPU
	for _, c := range childrenOf(pid) {
		if cs, err := readSample(c); err == nil {
			total += cs.CPU
		}
	}
	return total
}
