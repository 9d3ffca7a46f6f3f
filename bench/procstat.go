package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of the CPU times in /proc/<pid>/stat: USER_HZ,
// which Linux fixes at 100 for what it reports to user space.
const clockTick = 10 * time.Millisecond

// CPUTime is what /proc/<pid>/stat says a process has run: utime + stime,
// and cutime + cstime (children it waited for: the extractor's sandboxed
// parses).
type CPUTime struct {
	Self, Children time.Duration
}

// Total is the process's own time and its children's.
func (c CPUTime) Total() time.Duration { return c.Self + c.Children }

// Sub is c - o.
func (c CPUTime) Sub(o CPUTime) CPUTime {
	return CPUTime{Self: c.Self - o.Self, Children: c.Children - o.Children}
}

// ReadCPU reads the CPU time of pid (0: this process) from /proc.
func ReadCPU(pid int) (CPUTime, error) {
	path := "/proc/self/stat"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/stat", pid)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return CPUTime{}, err
	}
	_, cpu, err := parseStat(b)
	if err != nil {
		return CPUTime{}, fmt.Errorf("bench: %s: %w", path, err)
	}
	return cpu, nil
}

// parseStat reads the parent pid and the CPU times of a /proc/<pid>/stat.
func parseStat(b []byte) (ppid int, cpu CPUTime, err error) {
	// The command name (field 2) is in parentheses and may hold spaces:
	// the fields counted from 3 start after its last ')'.
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return 0, CPUTime{}, errors.New("no command name")
	}
	f := strings.Fields(string(b[end+1:]))
	// Field 4 (ppid) is f[1]; fields 14-17 (utime, stime, cutime, cstime)
	// are f[11:15].
	if len(f) < 15 {
		return 0, CPUTime{}, fmt.Errorf("%d fields", len(f)+2)
	}
	if ppid, err = strconv.Atoi(f[1]); err != nil {
		return 0, CPUTime{}, err
	}
	var ticks [4]int64
	for i := range ticks {
		if ticks[i], err = strconv.ParseInt(f[11+i], 10, 64); err != nil {
			return 0, CPUTime{}, err
		}
	}
	return ppid, CPUTime{Self: time.Duration(ticks[0]+ticks[1]) * clockTick, Children: time.Duration(ticks[2]+ticks[3]) * clockTick}, nil
}

// Memory is a process's resident set now (VmRSS) and at its peak (VmHWM).
type Memory struct {
	RSS, HWM int64 // bytes
}

// ReadMemory reads VmRSS and VmHWM of pid from /proc/<pid>/status.
func ReadMemory(pid int) (Memory, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Memory{}, err
	}
	defer f.Close()
	var m Memory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		fields := strings.Fields(value) // "12345 kB"
		if len(fields) != 2 || fields[1] != "kB" {
			return Memory{}, fmt.Errorf("bench: %s %q", name, value)
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return Memory{}, err
		}
		if name == "VmRSS" {
			m.RSS = kb << 10
		} else {
			m.HWM = kb << 10
		}
	}
	if m.RSS == 0 || m.HWM == 0 {
		return Memory{}, fmt.Errorf("bench: no VmRSS or VmHWM for pid %d", pid)
	}
	return m, sc.Err()
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// MachineCPU is the machine's CPU time from /proc/stat, all processes
// (other users' too): busy and total, in clock ticks.
type MachineCPU struct{ Busy, Total int64 }

// ReadMachineCPU reads the first line of /proc/stat.
func ReadMachineCPU() (MachineCPU, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return MachineCPU{}, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return MachineCPU{}, fmt.Errorf("bench: /proc/stat: %q", line)
	}
	var m MachineCPU
	for i, s := range f[1:] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return MachineCPU{}, fmt.Errorf("bench: /proc/stat: %w", err)
		}
		// guest and guest_nice (9th, 10th) are already in user and nice.
		if i >= 8 {
			break
		}
		m.Total += v
		if i != 3 && i != 4 { // idle, iowait
			m.Busy += v
		}
	}
	return m, nil
}

// BusyShare is the share of the machine's CPU time that was busy between o
// and m.
func (m MachineCPU) BusyShare(o MachineCPU) float64 {
	if m.Total == o.Total {
		return 0
	}
	return float64(m.Busy-o.Busy) / float64(m.Total-o.Total)
}

// LoadAverage is /proc/loadavg's one-minute figure (0 when unreadable).
func LoadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// TreeCPU is the CPU time of pid and of every process descending from it
// now (an extractor's sandboxed parses, PostgreSQL's backends), plus what
// they reaped: the whole tree's, over its life.
func TreeCPU(pid int) (CPUTime, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return CPUTime{}, err
	}
	type proc struct {
		ppid int
		cpu  CPUTime
	}
	procs := map[int]proc{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		ppid, cpu, err := parseStat(b)
		if err != nil {
			continue
		}
		procs[p] = proc{ppid: ppid, cpu: cpu}
	}
	if _, ok := procs[pid]; !ok {
		return CPUTime{}, fmt.Errorf("bench: no process %d", pid)
	}
	var total CPUTime
	for p, pr := range procs {
		// Walk up to pid (or the root); bounded by the number of processes.
		for q, n := p, 0; n <= len(procs); n++ {
			if q == pid {
				total.Self += pr.cpu.Self
				total.Children += pr.cpu.Children
				break
			}
			up, ok := procs[q]
			if !ok || up.ppid == q || up.ppid == 0 {
				break
			}
			q = up.ppid
		}
	}
	return total, nil
}

// SchedCPU is the time pid's threads have run, to the nanosecond: the sum
// of the first field of /proc/<pid>/task/*/schedstat. /proc/<pid>/stat
// counts in ticks of 10 ms; this resolves the short windows whose ratios
// are compared pair by pair. A thread that exited is no longer counted
// (Go keeps its threads).
func SchedCPU(pid int) (time.Duration, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var total time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/schedstat")
		if err != nil {
			continue // exited meanwhile
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			continue
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bench: %s: %w", dir, err)
		}
		total += time.Duration(ns)
	}
	return total, nil
}
