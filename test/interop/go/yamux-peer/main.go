// Command yamux-peer is a hashicorp/yamux (Debian snapshot) peer for muxwire's interoperability
// tests. It runs one scenario over one TCP connection on loopback and prints exactly one RESULT line.
// See test/interop/README-go.md for the flags, scenarios and output grammar.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
)

type options struct {
	mode, addr, scenario, role, how string
	timeout, interval, linger       time.Duration
	acceptDelay, replyAfter         time.Duration
	keepAliveInterval               time.Duration
	count, expect, minResets        int
	chunk, backlog                  int
	goAwayAfter, perMs              int
	seed, size, maxSize, resetAfter int64
	window                          uint
	keepAlive, confirm              bool
}

// scenarioSpec gives each scenario its roles and defaults. The first role is the passive one
// (it accepts streams) and is the default when listening; the second is the default when dialling.
type scenarioSpec struct {
	roles []string
	count int
	size  int64 // -1: the mixed size set of echo-client
}

var scenarios = map[string]scenarioSpec{
	"echo-server": {[]string{"serve"}, 0, 0},
	"echo-client": {[]string{"open"}, 200, -1},
	"both":        {[]string{"both"}, 200, -1},
	"half-close":  {[]string{"accept", "open"}, 1, 1<<20 + 1},
	"reset":       {[]string{"accept", "open"}, 1, 1 << 20},
	"ping":        {[]string{"answer", "ping"}, 10, 0},
	"goaway":      {[]string{"send", "recv"}, 3, 262145},
	"slow-reader": {[]string{"read", "write"}, 1, 2 << 20},
	"graceful":    {[]string{"serve", "open"}, 1000, 16},
	"fill":        {[]string{"accept", "open"}, 4, 1 << 20},
	"late-accept": {[]string{"serve"}, 3, 0},
}

func usage(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "yamux-peer: "+format+"\n", a...)
	fmt.Printf("RESULT fail usage detail=%s\n", strconv.Quote(fmt.Sprintf(format, a...)))
	os.Exit(2)
}

func parseFlags() *options {
	o := &options{}
	flag.StringVar(&o.mode, "mode", "", "listen (yamux.Server) or dial (yamux.Client)")
	flag.StringVar(&o.addr, "addr", "127.0.0.1:0", "loopback host:port; listen may use port 0")
	flag.StringVar(&o.scenario, "scenario", "", "echo-server|echo-client|both|half-close|reset|ping|goaway|slow-reader|graceful|fill|late-accept")
	flag.StringVar(&o.role, "role", "", "scenario role (default: passive role when listening, active role when dialling)")
	flag.StringVar(&o.how, "how", "raw", "reset -role accept: raw (inject an RST frame), backlog (let yamux refuse SYNs), session (close the session)")
	flag.DurationVar(&o.timeout, "timeout", 60*time.Second, "bound on the whole run")
	flag.DurationVar(&o.linger, "linger", 5*time.Second, "after the work is done: how long to wait for streams to drain or the peer to close")
	flag.IntVar(&o.count, "count", 0, "streams to open/accept, or pings to send (0: scenario default)")
	flag.IntVar(&o.expect, "expect", 0, "both: streams the peer will open (0: same as -count)")
	flag.IntVar(&o.minResets, "min-resets", 0, "reset -role open: resets needed for success (0: -count)")
	flag.Int64Var(&o.seed, "seed", 1, "seed for payload sizes and bytes")
	flag.Int64Var(&o.size, "size", -2, "payload bytes per stream (-1: the mixed edge+random sizes; -2: the scenario default)")
	flag.Int64Var(&o.maxSize, "max-size", 64<<20, "largest length header the echo side accepts")
	flag.Int64Var(&o.resetAfter, "reset-after", 0, "reset -how raw: payload bytes to read before resetting")
	flag.IntVar(&o.chunk, "chunk", 16384, "slow-reader: bytes per read")
	flag.IntVar(&o.goAwayAfter, "goaway-after", 300, "graceful -role serve: streams to accept before GoAway() (0: at once)")
	flag.DurationVar(&o.acceptDelay, "accept-delay", 200*time.Millisecond, "late-accept: wait, once -count FINs came, before the first AcceptStream")
	flag.DurationVar(&o.replyAfter, "reply-after", 0, "late-accept: reply this long after reading a request (0: GoAway() and Close() without replying)")
	flag.BoolVar(&o.confirm, "confirm", false, "graceful -role serve: before closing, Ping() so that the peer has read our Go Away")
	flag.IntVar(&o.perMs, "per-ms", 5, "graceful -role open: streams opened per millisecond")
	flag.DurationVar(&o.interval, "interval", 20*time.Millisecond, "slow-reader: pause between reads")
	flag.IntVar(&o.backlog, "backlog", 0, "yamux AcceptBacklog (0: yamux default 256; 1 for -how backlog)")
	flag.UintVar(&o.window, "window", 0, "yamux MaxStreamWindowSize (0: yamux default 262144)")
	flag.BoolVar(&o.keepAlive, "keepalive", true, "yamux EnableKeepAlive")
	flag.DurationVar(&o.keepAliveInterval, "keepalive-interval", 30*time.Second, "yamux KeepAliveInterval")
	flag.Parse()

	if flag.NArg() > 0 {
		usage("unexpected arguments: %v", flag.Args())
	}
	if o.mode != "listen" && o.mode != "dial" {
		usage("-mode must be listen or dial")
	}
	spec, ok := scenarios[o.scenario]
	if !ok {
		names := make([]string, 0, len(scenarios))
		for n := range scenarios {
			names = append(names, n)
		}
		sort.Strings(names)
		usage("-scenario must be one of %s", strings.Join(names, ", "))
	}
	if o.role == "" {
		o.role = spec.roles[0]
		if o.mode == "dial" && len(spec.roles) > 1 {
			o.role = spec.roles[1]
		}
	}
	valid := false
	for _, r := range spec.roles {
		valid = valid || r == o.role
	}
	if !valid {
		usage("-role for %s must be one of %s", o.scenario, strings.Join(spec.roles, ", "))
	}
	if o.count == 0 {
		o.count = spec.count
	}
	if o.size == -2 {
		o.size = spec.size
	}
	if o.expect == 0 {
		o.expect = o.count
	}
	if o.minResets == 0 {
		o.minResets = o.count
	}
	if o.how != "raw" && o.how != "backlog" && o.how != "session" {
		usage("-how must be raw, backlog or session")
	}
	if o.backlog == 0 && o.scenario == "reset" && o.role == "accept" && o.how == "backlog" {
		o.backlog = 1
	}
	if o.count < 0 || o.size < -1 || o.chunk <= 0 || o.timeout <= 0 || o.goAwayAfter < 0 || o.perMs <= 0 {
		usage("-count, -size, -chunk, -timeout, -goaway-after and -per-ms must not be negative (-chunk, -timeout and -per-ms not zero)")
	}
	if err := checkLoopback(o.addr); err != nil {
		usage("%v", err)
	}
	return o
}

// checkLoopback keeps the peer off real networks: it is a test tool.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-addr: %v", err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-addr %q is not a loopback address", addr)
	}
	return nil
}

// printer serialises stdout lines; finish prints the single RESULT line and exits inside the lock so
// that a racing watchdog can never print a second RESULT or change the exit code.
type printer struct{ mu sync.Mutex }

var out printer

func (p *printer) line(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintln(os.Stdout, s)
}

func (p *printer) finish(ok bool, s string) {
	p.mu.Lock()
	fmt.Fprintln(os.Stdout, s)
	if ok {
		os.Exit(0)
	}
	os.Exit(1)
}

// kv renders key=value; values with spaces, quotes or '=' are Go-quoted.
func kv(k string, v interface{}) string {
	s := fmt.Sprint(v)
	if s == "" || strings.ContainsAny(s, " \t\"=\n") {
		s = strconv.Quote(s)
	}
	return k + "=" + s
}

type failure struct{ reason, detail string }

// peer holds one session and everything the scenarios report on.
type peer struct {
	o        *options
	sess     *yamux.Session
	tap      *tapConn
	deadline time.Time
	expired  chan struct{}
	started  time.Time

	closing  atomic.Bool // set before we close the session ourselves
	handlers sync.WaitGroup
	endCh    chan struct{} // closed when the accept loop sees the session end
	endErr   error

	mu       sync.Mutex
	failures []failure
	yamuxErr int
	yamuxWrn int
	stage    atomic.Value // string: what the scenario is waiting for (for timeout reports)
}

func (p *peer) setStage(s string) { p.stage.Store(s) }

// fail records a failure; the RESULT reason is the first protocol error if any, else the first failure.
func (p *peer) fail(reason string, err interface{}) {
	detail := fmt.Sprint(err)
	if e, ok := err.(error); ok && errors.Is(e, yamux.ErrTimeout) {
		reason = "timeout"
	}
	p.mu.Lock()
	p.failures = append(p.failures, failure{reason, detail})
	n := len(p.failures)
	p.mu.Unlock()
	if n <= 20 { // one broken session can fail hundreds of streams; the first few tell the story
		fmt.Fprintf(os.Stderr, "yamux-peer: FAIL %s: %s\n", reason, detail)
	}
}

func (p *peer) failed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.failures) > 0
}

// done prints the RESULT line and exits: ok only if nothing failed anywhere.
func (p *peer) done(fields ...string) {
	p.mu.Lock()
	fs := append([]failure(nil), p.failures...)
	nerr, nwrn := p.yamuxErr, p.yamuxWrn
	p.mu.Unlock()
	st := p.tap.snapshot()
	head := []string{kv("scenario", p.o.scenario), kv("role", p.o.role), kv("mode", p.o.mode)}
	tail := []string{
		kv("yamux_errors", nerr), kv("yamux_warnings", nwrn),
		kv("frames_in", st.framesIn), kv("frames_out", st.framesOut),
		kv("elapsed_ms", time.Since(p.started).Milliseconds()),
	}
	if len(fs) == 0 {
		out.finish(true, "RESULT ok "+strings.Join(append(append(head, fields...), tail...), " "))
	}
	pick := fs[0]
	for _, f := range fs {
		if f.reason == "protocol-error" {
			pick = f
			break
		}
	}
	line := append([]string{"RESULT", "fail", pick.reason}, head...)
	line = append(line, fields...)
	line = append(line, tail...)
	line = append(line, kv("failures", len(fs)), kv("detail", pick.detail))
	out.finish(false, strings.Join(line, " "))
}

// protocolPatterns are yamux log texts that mean the peer broke the protocol (or yamux's view of it).
var protocolPatterns = []string{
	"receive window exceeded", "Invalid protocol version", "duplicate stream",
	"unexpected FIN flag", "protocol error go away", "internal error go away",
	"unexpected go away", "SYN tracking out of sync", "without inflight SYN",
}

// yamuxLog receives yamux's log lines: they go to stderr verbatim and, tagged, to stdout; [ERR]
// lines fail the run unless they are I/O noise after the session was already shutting down.
type yamuxLog struct{ p *peer }

func (w yamuxLog) Write(b []byte) (int, error) {
	os.Stderr.Write(append([]byte("yamux-peer: "), b...))
	msg := strings.TrimSpace(string(b))
	level := "INFO"
	switch {
	case strings.Contains(msg, "[ERR]"):
		level = "ERR"
	case strings.Contains(msg, "[WARN]"):
		level = "WARN"
	}
	if i := strings.Index(msg, "yamux: "); i >= 0 {
		msg = msg[i+len("yamux: "):]
	}
	out.line("YAMUX " + level + " " + strconv.Quote(msg))
	p := w.p
	p.mu.Lock()
	switch level {
	case "ERR":
		p.yamuxErr++
	case "WARN":
		p.yamuxWrn++
	}
	p.mu.Unlock()
	if level != "ERR" {
		return len(b), nil
	}
	for _, pat := range protocolPatterns {
		if strings.Contains(msg, pat) {
			p.fail("protocol-error", msg)
			return len(b), nil
		}
	}
	shuttingDown := p.closing.Load() || (p.sess != nil && p.sess.IsClosed())
	if !shuttingDown {
		p.fail("yamux-error", msg)
	}
	return len(b), nil
}

// endIsClean tells whether the session ended the way a finished test should: the peer closed the
// transport (EOF) or we closed the session. Anything else (reset, protocol error) is a failure.
func endIsClean(err error) (bool, string) {
	switch {
	case err == nil:
		return true, "open"
	case err == io.EOF:
		return true, "eof"
	case err == yamux.ErrSessionShutdown:
		return true, "closed"
	}
	for _, e := range []error{yamux.ErrInvalidVersion, yamux.ErrInvalidMsgType, yamux.ErrDuplicateStream,
		yamux.ErrUnexpectedFlag, yamux.ErrRecvWindowExceeded} {
		if err == e {
			return false, "protocol-error"
		}
	}
	switch err.Error() {
	case "yamux protocol error", "remote yamux internal error", "unexpected go away received":
		return false, "protocol-error"
	}
	return false, "session-error"
}

func (p *peer) connect() net.Conn {
	o := p.o
	if o.mode == "dial" {
		c, err := net.DialTimeout("tcp", o.addr, time.Until(p.deadline))
		if err != nil {
			p.fail("connect", err)
			p.tap = newTapConn(nil)
			p.done()
		}
		return c
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		p.fail("connect", err)
		p.tap = newTapConn(nil)
		p.done()
	}
	out.line(fmt.Sprintf("LISTENING %d", ln.Addr().(*net.TCPAddr).Port))
	ln.(*net.TCPListener).SetDeadline(p.deadline)
	c, err := ln.Accept()
	ln.Close() // one connection per run
	if err != nil {
		p.fail("connect", err)
		p.tap = newTapConn(nil)
		p.done()
	}
	return c
}

func main() {
	o := parseFlags()
	p := &peer{o: o, started: time.Now(), expired: make(chan struct{}), endCh: make(chan struct{})}
	p.deadline = p.started.Add(o.timeout)
	p.setStage("connect")
	time.AfterFunc(o.timeout, func() { close(p.expired) })
	// Last resort if a wait without its own timeout (e.g. OpenStream on a full backlog) is stuck.
	time.AfterFunc(o.timeout+2*time.Second, func() {
		p.fail("timeout", fmt.Sprintf("still waiting for: %v", p.stage.Load()))
		p.done()
	})

	conn := p.connect()
	p.tap = newTapConn(conn)
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = nil // yamux wants exactly one of LogOutput/Logger
	cfg.Logger = log.New(yamuxLog{p}, "", log.Lmicroseconds)
	cfg.EnableKeepAlive = o.keepAlive
	cfg.KeepAliveInterval = o.keepAliveInterval
	if o.backlog > 0 {
		cfg.AcceptBacklog = o.backlog
	}
	if o.window > 0 {
		cfg.MaxStreamWindowSize = uint32(o.window)
	}
	var err error
	if o.mode == "listen" {
		p.sess, err = yamux.Server(p.tap, cfg)
	} else {
		p.sess, err = yamux.Client(p.tap, cfg)
	}
	if err != nil {
		p.fail("usage", err)
		p.done()
	}
	p.setStage("scenario")
	run(p)
}

func run(p *peer) {
	switch p.o.scenario + "/" + p.o.role {
	case "echo-server/serve":
		p.echoServer()
	case "echo-client/open":
		p.echoClient()
	case "both/both":
		p.both()
	case "half-close/open":
		p.halfCloseOpen()
	case "half-close/accept":
		p.halfCloseAccept()
	case "reset/open":
		p.resetOpen()
	case "reset/accept":
		p.resetAccept()
	case "ping/ping":
		p.pingActive()
	case "ping/answer":
		p.pingAnswer()
	case "goaway/send":
		p.goAwaySend()
	case "goaway/recv":
		p.goAwayRecv()
	case "slow-reader/read":
		p.slowRead()
	case "slow-reader/write":
		p.slowWrite()
	case "graceful/serve":
		p.gracefulServe()
	case "graceful/open":
		p.gracefulOpen()
	case "fill/accept", "fill/open":
		p.fill()
	case "late-accept/serve":
		p.lateAccept()
	}
}
