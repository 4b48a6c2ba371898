// Command bench runs the workloads of issue 7 against commitlog and its
// peers on this machine, in one run, and prints a markdown report: the
// machine's raw limits, one table per workload with absolute figures,
// ratios to the best peer and CPU seconds per million records, and the
// targets met or missed.
//
//	go run . -runs 3             # everything at full size
//	go run . -scale 0.05 -runs 1 # a quick smoke run
//
// A client over the network (franz-go, nats.go) runs in a child process,
// this binary started again with -child, so that this process's CPU time
// during a phase is the broker's alone.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A system is one thing measured: a broker, or a plain log.
type system struct {
	name string // as shown in the report
	key  string // as named on the command line
	ours bool   // commitlog
	peer bool   // a peer broker: counts for "best peer"
	raw  bool   // a plain log: reference rows, not a broker
	// client is the driver a child process runs against the instance's
	// addr ("kgo", "nats"); empty for systems driven in this process.
	client     string
	durability func(sc *scenario) string
	// supports returns why the scenario is not measured, or "".
	supports func(sc *scenario) string
	start    func(sc *scenario, dir string) (*instance, error)
}

// An instance is a started system.
type instance struct {
	addr  string // for a child's client
	drv   driver // for systems driven in this process
	close func() error
}

var allSystems = []*system{&sysCommitlog, &sysCommitlogKafka, &sysKfake, &sysJetStream, &sysTidwall, &sysRaftWAL}

type config struct {
	runs      int
	scale     float64
	maxDur    time.Duration
	dir       string
	cpuProf   string
	memProf   string
	systems   []*system
	workloads map[string]bool
}

func main() {
	var (
		runs     = flag.Int("runs", 3, "runs of each workload against each system")
		scale    = flag.Float64("scale", 1, "scale of record counts and durations (1: issue 7's sizes, 10 M records for W1)")
		maxDur   = flag.Duration("maxdur", 60*time.Second, "longest a produce phase sends before it stops and waits for its acks (slow systems then produce fewer records)")
		systems  = flag.String("systems", "all", "comma-separated systems: "+systemKeys())
		wls      = flag.String("workloads", "all", "comma-separated workloads, W1 to W7 (W1 and W2, W3 and W7 run together)")
		dir      = flag.String("dir", os.TempDir(), "directory for the systems' data")
		noLimits = flag.Bool("nolimits", false, "skip measuring the machine's raw limits")
		out      = flag.String("o", "", "also write the report to this file")
		cpuProf  = flag.String("cpuprofile", "", "write a CPU profile of this process (the broker; client too for in-process systems) for each timed phase into this directory")
		memProf  = flag.String("memprofile", "", "write allocation profiles at the start and end of each timed phase into this directory (compare with pprof -base)")

		child    = flag.Bool("child", false, "internal: run the client side of a scenario")
		client   = flag.String("client", "", "internal: the child's client (kgo, nats)")
		addr     = flag.String("addr", "", "internal: the child's server address")
		scenName = flag.String("scenario", "", "internal: the child's scenario")
	)
	flag.Parse()
	if *child {
		if err := runChild(*client, *addr, *scenName, *scale, *maxDur); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		return
	}
	cfg := config{runs: *runs, scale: *scale, maxDur: *maxDur, dir: *dir, cpuProf: *cpuProf, memProf: *memProf, workloads: map[string]bool{}}
	for _, k := range strings.Split(*systems, ",") {
		if k == "all" {
			cfg.systems = allSystems
			break
		}
		i := slices.IndexFunc(allSystems, func(s *system) bool { return s.key == k })
		if i < 0 {
			fatalf("unknown system %q; known: %s", k, systemKeys())
		}
		cfg.systems = append(cfg.systems, allSystems[i])
	}
	for _, w := range strings.Split(*wls, ",") {
		if w == "all" {
			for _, wl := range workloads {
				cfg.workloads[wl.id] = true
			}
			break
		}
		cfg.workloads[strings.ToUpper(w)] = true
	}
	for _, p := range []string{cfg.cpuProf, cfg.memProf} {
		if p != "" {
			if err := os.MkdirAll(p, 0o755); err != nil {
				fatalf("%v", err)
			}
		}
	}

	rep := newReport(cfg)
	if !*noLimits {
		logf("measuring the machine's raw limits")
		lim := measureLimits(cfg.dir)
		rep.limits = &lim
	}
	for _, sc := range scenarios(cfg.scale) {
		if !slices.ContainsFunc(sc.workloadIDs(), func(id string) bool { return cfg.workloads[id] }) {
			continue
		}
		for run := 1; run <= cfg.runs; run++ {
			for _, sys := range cfg.systems {
				if why := sys.supports(sc); why != "" {
					rep.skip(sc, sys, why)
					continue
				}
				logf("%s run %d/%d: %s", sc.name, run, cfg.runs, sys.name)
				phases, err := runOne(cfg, sys, sc, run)
				for _, p := range phases {
					logf("  %s: %d records in %.2f s: %.3f M rec/s, %.1f MB/s, broker CPU %.2f s %v %s", p.Workload, p.Records, p.Seconds,
						float64(p.Records)/p.Seconds/1e6, float64(p.Bytes)/p.Seconds/1e6, p.BrokerCPU, p.Lat, p.Err)
				}
				if err != nil {
					logf("  error: %v", err)
				}
				rep.add(sc, sys, phases, err)
			}
		}
	}
	md := rep.markdown()
	fmt.Print(md)
	if *out != "" {
		if err := os.WriteFile(*out, []byte(md), 0o644); err != nil {
			fatalf("%v", err)
		}
	}
}

func systemKeys() string {
	var keys []string
	for _, s := range allSystems {
		keys = append(keys, s.key)
	}
	return strings.Join(keys, ",")
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(2)
}

// runOne starts sys for sc in a fresh directory, runs the scenario once and
// stops it.
func runOne(cfg config, sys *system, sc *scenario, run int) (phases []phase, err error) {
	dir, err := os.MkdirTemp(cfg.dir, "bench-"+sys.key+"-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	warmMemory(min(4<<30, 2*sc.dataBytes()+256<<20))
	inst, err := sys.start(sc, dir)
	if err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	defer func() {
		if inst.drv != nil {
			err = firstErr(err, inst.drv.close())
		}
		err = firstErr(err, inst.close())
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 4*cfg.maxDur+2*time.Minute)
	defer cancel()
	prof := &profiler{cfg: cfg, name: fmt.Sprintf("%s-%%s-run%d", sys.key, run)}
	if sys.client == "" {
		m := &localMarker{prof: prof}
		err := runScenario(ctx, inst.drv, sc, m, cfg.maxDur)
		return m.phases, err
	}

	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe, "-child", "-client", sys.client, "-addr", inst.addr, "-scenario", sc.name,
		"-scale", strconv.FormatFloat(cfg.scale, 'g', -1, 64), "-maxdur", cfg.maxDur.String())
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	var cpu0 time.Duration
	sc2 := bufio.NewScanner(stdout)
	for sc2.Scan() {
		line := sc2.Text()
		switch {
		case strings.HasPrefix(line, "START "):
			prof.start(strings.TrimPrefix(line, "START "))
			cpu0 = cpuTime()
		case strings.HasPrefix(line, "END "):
			cpu := cpuTime() - cpu0
			prof.stop()
			var p phase
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "END ")), &p); err != nil {
				return phases, fmt.Errorf("child said %q: %w", line, err)
			}
			p.BrokerCPU = cpu.Seconds()
			phases = append(phases, p)
		default:
			fmt.Fprintln(os.Stderr, "child:", line)
		}
	}
	if err := cmd.Wait(); err != nil {
		return phases, fmt.Errorf("client process: %w", err)
	}
	return phases, nil
}

// localMarker measures the process's CPU time around each phase: client
// and broker together.
type localMarker struct {
	prof   *profiler
	cpu0   time.Duration
	phases []phase
}

func (m *localMarker) start(wl string) {
	m.prof.start(wl)
	m.cpu0 = cpuTime()
}

func (m *localMarker) end(p *phase) {
	p.BrokerCPU = (cpuTime() - m.cpu0).Seconds()
	m.prof.stop()
	p.Combined = true
	p.ClientCPU = -1
	m.phases = append(m.phases, *p)
}

// childMarker tells the parent on stdout when a phase starts and ends, and
// measures the child's own (the client's) CPU time.
type childMarker struct{ cpu0 time.Duration }

func (m *childMarker) start(wl string) {
	m.cpu0 = cpuTime()
	fmt.Println("START " + wl)
}

func (m *childMarker) end(p *phase) {
	p.ClientCPU = (cpuTime() - m.cpu0).Seconds()
	b, _ := json.Marshal(p)
	fmt.Println("END " + string(b))
}

func runChild(client, addr, scen string, scale float64, maxDur time.Duration) error {
	sc, err := findScenario(scale, scen)
	if err != nil {
		return err
	}
	var d driver
	switch client {
	case "kgo":
		d = &kgoDriver{addr: addr}
	case "nats":
		d = &natsDriver{url: addr}
	default:
		return fmt.Errorf("unknown client %q", client)
	}
	warmMemory(512 << 20)
	ctx, cancel := context.WithTimeout(context.Background(), 4*maxDur+2*time.Minute)
	defer cancel()
	return firstErr(runScenario(ctx, d, sc, &childMarker{}, maxDur), d.close())
}

// profiler writes the profiles the flags ask for, one file per phase.
type profiler struct {
	cfg  config
	name string // with %s for the workload
	wl   string
	cpu  *os.File
}

func (p *profiler) path(dir, suffix string) string {
	return filepath.Join(dir, fmt.Sprintf(p.name, p.wl)+suffix)
}

func (p *profiler) start(wl string) {
	p.wl = wl
	if p.cfg.memProf != "" {
		p.writeHeap(".allocs-start.pprof")
	}
	if p.cfg.cpuProf != "" {
		f, err := os.Create(p.path(p.cfg.cpuProf, ".cpu.pprof"))
		if err == nil {
			if err = pprof.StartCPUProfile(f); err == nil {
				p.cpu = f
				return
			}
		}
		logf("cpu profile: %v", err)
	}
}

func (p *profiler) stop() {
	if p.cpu != nil {
		pprof.StopCPUProfile()
		_ = p.cpu.Close()
		p.cpu = nil
	}
	if p.cfg.memProf != "" {
		p.writeHeap(".allocs-end.pprof")
	}
}

func (p *profiler) writeHeap(suffix string) {
	f, err := os.Create(p.path(p.cfg.memProf, suffix))
	if err != nil {
		logf("alloc profile: %v", err)
		return
	}
	defer func() { _ = f.Close() }()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		logf("alloc profile: %v", err)
	}
}
