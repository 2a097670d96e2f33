// Command yamux-bench is the Go side of bench/go-yamux.ts: one process is a server or a client of the
// benchmark's three workloads (bulk, rr, open) over loopback TCP, with hashicorp/yamux (the Debian snapshot)
// or over plain TCP connections (one per channel). The protocol is the one bench/go-yamux.ts speaks, so any
// client works with any server:
//
//	each channel starts with one byte that names its workload;
//	'B' bulk: the client writes bytes and ends its writing side; the server counts the bytes after 'B' up to
//	    EOF and answers with the count as 8 bytes big-endian, then closes;
//	'R' rr: the server echoes every byte after 'R' until EOF, then closes;
//	'O' open: the client writes "hello" (in the same write as 'O'); the server reads the 5 bytes, echoes
//	    them and closes; the client reads them and closes.
//
// Control (lines on stdin/stdout, for the runner): the server prints "LISTENING <port>" and answers each
// "cpu" line with "CPU <user+sys µs> <channels> <errors>"; it exits when stdin closes. The client prints
// "READY" once set up (rr: after its warm-up), waits for a "go" line, runs the measured part, prints
// "RESULT <json>" (or "FAIL <reason>" and exits 1) and exits when stdin closes. Every process ends itself
// after -timeout.
package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/yamux"
)

type options struct {
	role, transport, addr, workload string
	window                          uint
	bytes                           int64
	writeSize, count, warmup        int
	msgSize, inflight               int
	timeout, eofGrace               time.Duration
}

var (
	opt      options
	channels int64 // server: channels (streams or connections) seen
	failures int64 // server: channels that ended in an error
	outMu    sync.Mutex
)

func say(format string, a ...interface{}) {
	outMu.Lock()
	defer outMu.Unlock()
	fmt.Printf(format+"\n", a...)
}

func fail(format string, a ...interface{}) {
	say("FAIL "+format, a...)
	os.Exit(1)
}

// cpuMicros is the process's CPU time so far, user + system, all threads.
func cpuMicros() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	return ru.Utime.Sec*1e6 + int64(ru.Utime.Usec) + ru.Stime.Sec*1e6 + int64(ru.Stime.Usec)
}

func config() *yamux.Config {
	c := yamux.DefaultConfig()
	if opt.window > 0 {
		c.MaxStreamWindowSize = uint32(opt.window)
	}
	return c
}

// readFull reads exactly len(b) bytes. This yamux's Read returns io.EOF whenever its buffer is empty once the
// stream was closed locally (Close is meant as a half-close), so after an EOF it polls, every 20 µs, until
// the bytes come or eofGrace passes without any.
func readFull(r io.Reader, b []byte) error {
	got := 0
	var eofAt time.Time
	for got < len(b) {
		n, err := r.Read(b[got:])
		got += n
		if n > 0 {
			eofAt = time.Time{}
		}
		if err == nil || got == len(b) {
			continue
		}
		if err != io.EOF {
			return err
		}
		if s, ok := r.(*yamux.Stream); !ok || s.Session().IsClosed() {
			return io.ErrUnexpectedEOF
		}
		if eofAt.IsZero() {
			eofAt = time.Now()
		} else if time.Since(eofAt) > opt.eofGrace {
			return io.ErrUnexpectedEOF
		}
		time.Sleep(20 * time.Microsecond)
	}
	return nil
}

// ---- server ----

func serve(c net.Conn) {
	atomic.AddInt64(&channels, 1)
	if err := handle(c); err != nil {
		atomic.AddInt64(&failures, 1)
		log.Printf("channel: %v", err)
	}
}

func handle(c net.Conn) error {
	defer c.Close()
	kind := make([]byte, 1)
	if err := readFull(c, kind); err != nil {
		return fmt.Errorf("first byte: %w", err)
	}
	switch kind[0] {
	case 'B':
		buf := make([]byte, 64<<10)
		var total int64
		for {
			n, err := c.Read(buf)
			total += int64(n)
			if err == io.EOF {
				break
			}
			if err != nil {
				return fmt.Errorf("bulk after %d bytes: %w", total, err)
			}
		}
		var answer [8]byte
		binary.BigEndian.PutUint64(answer[:], uint64(total))
		_, err := c.Write(answer[:])
		return err
	case 'R':
		buf := make([]byte, 64<<10)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				if _, werr := c.Write(buf[:n]); werr != nil {
					return werr
				}
			}
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
		}
	case 'O':
		hello := make([]byte, 5)
		if err := readFull(c, hello); err != nil {
			return fmt.Errorf("open: %w", err)
		}
		_, err := c.Write(hello)
		return err
	}
	return fmt.Errorf("unknown workload byte %q", kind[0])
}

func runServer() {
	ln, err := net.Listen("tcp", opt.addr)
	if err != nil {
		fail("listen: %v", err)
	}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			if opt.transport == "tcp" {
				go serve(conn)
				continue
			}
			go func() {
				sess, err := yamux.Server(conn, config())
				if err != nil {
					log.Printf("session: %v", err)
					return
				}
				for {
					s, err := sess.AcceptStream()
					if err != nil {
						return
					}
					go serve(s)
				}
			}()
		}
	}()
	say("LISTENING %d", ln.Addr().(*net.TCPAddr).Port)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if in.Text() == "cpu" {
			say("CPU %d %d %d", cpuMicros(), atomic.LoadInt64(&channels), atomic.LoadInt64(&failures))
		}
	}
	os.Exit(0)
}

// ---- client ----

type dialer struct {
	sess *yamux.Session
}

func (d *dialer) open() (net.Conn, error) {
	if d.sess != nil {
		return d.sess.OpenStream()
	}
	return net.Dial("tcp", opt.addr)
}

// closeWrite ends the channel's writing side: FIN on a stream (this yamux's Close), shutdown(SHUT_WR) on TCP.
func closeWrite(c net.Conn) error {
	if t, ok := c.(*net.TCPConn); ok {
		return t.CloseWrite()
	}
	return c.Close()
}

func waitForGo(in *bufio.Reader) {
	say("READY")
	line, err := in.ReadString('\n')
	if err != nil || line != "go\n" {
		fail("no go from the runner (%q, %v)", line, err)
	}
}

func runClient() {
	d := &dialer{}
	if opt.transport == "yamux" {
		conn, err := net.Dial("tcp", opt.addr)
		if err != nil {
			fail("dial: %v", err)
		}
		d.sess, err = yamux.Client(conn, config())
		if err != nil {
			fail("session: %v", err)
		}
	}
	in := bufio.NewReader(os.Stdin)
	result := map[string]interface{}{}
	switch opt.workload {
	case "bulk":
		waitForGo(in)
		cpu0, t0 := cpuMicros(), time.Now()
		c, err := d.open()
		if err != nil {
			fail("open: %v", err)
		}
		if _, err := c.Write([]byte{'B'}); err != nil {
			fail("write: %v", err)
		}
		buf := make([]byte, opt.writeSize)
		var sent int64
		for sent < opt.bytes {
			n := int64(len(buf))
			if opt.bytes-sent < n {
				n = opt.bytes - sent
			}
			if _, err := c.Write(buf[:n]); err != nil {
				fail("write after %d bytes: %v", sent, err)
			}
			sent += n
		}
		if err := closeWrite(c); err != nil {
			fail("close: %v", err)
		}
		answer := make([]byte, 8)
		if err := readFull(c, answer); err != nil {
			fail("reading the count: %v", err)
		}
		elapsed, cpu := time.Since(t0), cpuMicros()-cpu0
		if got := int64(binary.BigEndian.Uint64(answer)); got != sent {
			fail("server counted %d bytes, %d sent", got, sent)
		}
		c.Close()
		result["bytes"], result["seconds"], result["cpuUs"] = sent, elapsed.Seconds(), cpu
	case "rr":
		c, err := d.open()
		if err != nil {
			fail("open: %v", err)
		}
		if _, err := c.Write([]byte{'R'}); err != nil {
			fail("write: %v", err)
		}
		req, resp := make([]byte, opt.msgSize), make([]byte, opt.msgSize)
		trip := func(i int) {
			binary.BigEndian.PutUint64(req, uint64(i))
			req[len(req)-1] = byte(i)
			if _, err := c.Write(req); err != nil {
				fail("write in round trip %d: %v", i, err)
			}
			if err := readFull(c, resp); err != nil {
				fail("read in round trip %d: %v", i, err)
			}
			if string(resp) != string(req) {
				fail("round trip %d: the echo differs", i)
			}
		}
		for i := 0; i < opt.warmup; i++ {
			trip(i)
		}
		waitForGo(in)
		samples := make([]float64, opt.count)
		cpu0, t0 := cpuMicros(), time.Now()
		for i := 0; i < opt.count; i++ {
			s := time.Now()
			trip(opt.warmup + i)
			samples[i] = float64(time.Since(s).Nanoseconds()) / 1e3
		}
		elapsed, cpu := time.Since(t0), cpuMicros()-cpu0
		closeWrite(c)
		sort.Float64s(samples)
		result["count"], result["seconds"], result["cpuUs"] = opt.count, elapsed.Seconds(), cpu
		result["p50Us"], result["p99Us"] = percentile(samples, 0.5), percentile(samples, 0.99)
	case "open":
		waitForGo(in)
		var next, done int64
		var firstErr atomic.Value
		var wg sync.WaitGroup
		cpu0, t0 := cpuMicros(), time.Now()
		workers := opt.inflight
		if workers > opt.count {
			workers = opt.count
		}
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				hello := make([]byte, 5)
				for atomic.AddInt64(&next, 1) <= int64(opt.count) {
					if err := openOne(d, hello); err != nil {
						firstErr.CompareAndSwap(nil, err)
						return
					}
					atomic.AddInt64(&done, 1)
				}
			}()
		}
		wg.Wait()
		elapsed, cpu := time.Since(t0), cpuMicros()-cpu0
		if err, _ := firstErr.Load().(error); err != nil {
			fail("open: %v (%d channels done)", err, done)
		}
		result["count"], result["seconds"], result["cpuUs"] = done, elapsed.Seconds(), cpu
	default:
		fail("unknown workload %q", opt.workload)
	}
	out, _ := json.Marshal(result)
	say("RESULT %s", out)
	// Stay until the runner has read the server's figures and closes stdin: this yamux's Session.Close closes
	// the connection at once (no Go Away, nothing drained), which the server would see as an error on
	// channels it had not finished closing.
	io.Copy(io.Discard, in)
	os.Exit(0)
}

func openOne(d *dialer, hello []byte) error {
	c, err := d.open()
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Write([]byte("Ohello")); err != nil {
		return err
	}
	if err := readFull(c, hello); err != nil {
		return err
	}
	if string(hello) != "hello" {
		return errors.New("the echo is not hello")
	}
	return nil
}

// percentile: nearest rank, as bench/stats.ts.
func percentile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*q+0.999999999) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return sorted[i]
}

func main() {
	flag.StringVar(&opt.role, "role", "", "server or client")
	flag.StringVar(&opt.transport, "transport", "yamux", "yamux (one connection, hashicorp/yamux streams) or tcp (a connection per channel)")
	flag.StringVar(&opt.addr, "addr", "127.0.0.1:0", "server: where to listen; client: where to connect (loopback)")
	flag.UintVar(&opt.window, "window", 0, "yamux MaxStreamWindowSize in bytes (0: DefaultConfig's 256 KiB)")
	flag.StringVar(&opt.workload, "workload", "", "client: bulk, rr or open")
	flag.Int64Var(&opt.bytes, "bytes", 256<<20, "bulk: bytes to send")
	flag.IntVar(&opt.writeSize, "write-size", 64<<10, "bulk: bytes per write")
	flag.IntVar(&opt.count, "count", 0, "rr: measured round trips; open: channels")
	flag.IntVar(&opt.warmup, "warmup", 1000, "rr: round trips before the measured part")
	flag.IntVar(&opt.msgSize, "msg-size", 64, "rr: bytes each way per round trip (at least 8)")
	flag.IntVar(&opt.inflight, "inflight", 256, "open: channels in flight at once")
	flag.DurationVar(&opt.timeout, "timeout", 120*time.Second, "the process ends itself after this")
	flag.DurationVar(&opt.eofGrace, "eof-grace", 5*time.Second, "how long a read polls past an early io.EOF")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("yamux-bench: ")
	if ip := net.ParseIP(hostOf(opt.addr)); ip == nil || !ip.IsLoopback() {
		fail("-addr must be a loopback address, not %q", opt.addr)
	}
	if opt.transport != "yamux" && opt.transport != "tcp" {
		fail("-transport must be yamux or tcp")
	}
	if opt.msgSize < 8 {
		fail("-msg-size must be at least 8")
	}
	time.AfterFunc(opt.timeout, func() {
		log.Printf("timeout after %v", opt.timeout)
		os.Exit(3)
	})
	switch opt.role {
	case "server":
		runServer()
	case "client":
		runClient()
	default:
		fail("-role must be server or client")
	}
}

func hostOf(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	return h
}
