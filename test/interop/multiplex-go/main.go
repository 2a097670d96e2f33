// Command multiplex-peer runs one scenario of muxwire's live interoperability tests on the original Go
// package github.com/alecthomas/multiplex (commit e565e6f), over one TCP connection on loopback, and prints
// exactly one RESULT line. It is built at test time from ../shared (see build.sh); the flags, scenarios and
// output are described in test/interop/README.md.
//
// The original has defects this program steps around (they are the original's, not the format's):
// Channel.Write breaks on more than 1,024 bytes, so every Write here is at most 1,024 bytes; Write keeps the
// caller's slice until the frame is sent, so no slice handed to Write is ever changed afterwards; and its
// session loop blocks while any channel's data waits for a reader, so every channel here is read by its own
// goroutine for as long as the peer may send on it.
package main

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alecthomas/multiplex"
)

// fragment is the most the original's Channel.Write handles correctly in one call.
const fragment = multiplex.FragmentSize

type options struct {
	mode, addr, scenario, how   string
	timeout, linger, interval   time.Duration
	count                       int
	seed, size, after, maxBytes int64
}

// peer is one run: the session, the counters of its scenario and the single RESULT line.
type peer struct {
	o       *options
	conn    net.Conn
	mx      *multiplex.MultiplexedStream
	out     sync.Mutex // stdout lines
	printed bool
	fields  func() string // the scenario's counters, for RESULT (also on timeout)
	failure atomic.Value  // first failure reason (string)
	detail  atomic.Value  // its detail
	ended   chan error    // the session's end, once Accept fails
	start   time.Time
}

func (p *peer) line(s string) {
	p.out.Lock()
	defer p.out.Unlock()
	if !p.printed {
		fmt.Println(s)
	}
}

// result prints the RESULT line (once) and exits: 0 on success, 1 on failure.
func (p *peer) result() {
	p.out.Lock()
	if p.printed {
		p.out.Unlock()
		return
	}
	p.printed = true
	fields := ""
	if p.fields != nil {
		fields = " " + p.fields()
	}
	elapsed := fmt.Sprintf(" elapsed_ms=%d", time.Since(p.start).Milliseconds())
	if reason, _ := p.failure.Load().(string); reason != "" {
		detail, _ := p.detail.Load().(string)
		fmt.Printf("RESULT fail %s scenario=%s mode=%s%s%s detail=%s\n", reason, p.o.scenario, p.o.mode, fields,
			elapsed, strconv.Quote(detail))
		os.Exit(1)
	}
	fmt.Printf("RESULT ok scenario=%s mode=%s%s%s\n", p.o.scenario, p.o.mode, fields, elapsed)
	os.Exit(0)
}

// fail records the first failure; the run goes on to its RESULT line.
func (p *peer) fail(reason string, format string, a ...interface{}) {
	detail := fmt.Sprintf(format, a...)
	fmt.Fprintf(os.Stderr, "multiplex-peer: %s: %s\n", reason, detail)
	if p.failure.CompareAndSwap(nil, reason) {
		p.detail.Store(detail)
	}
}

func (p *peer) failed() bool { return p.failure.Load() != nil }

func usage(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "multiplex-peer: "+format+"\n", a...)
	fmt.Printf("RESULT fail usage detail=%s\n", strconv.Quote(fmt.Sprintf(format, a...)))
	os.Exit(2)
}

func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%q is not a loopback address", addr)
}

func main() {
	o := &options{}
	flag.StringVar(&o.mode, "mode", "", "listen (MultiplexedServer) or dial (MultiplexedClient)")
	flag.StringVar(&o.addr, "addr", "127.0.0.1:0", "loopback host:port")
	flag.StringVar(&o.scenario, "scenario", "", "echo|hello|bulk-open|bulk-serve|close-mid|write-until-closed|cut")
	flag.StringVar(&o.how, "how", "session", "cut: session (MultiplexedStream.Close) or reset (TCP reset)")
	flag.DurationVar(&o.timeout, "timeout", 60*time.Second, "bound on the whole run")
	flag.DurationVar(&o.interval, "interval", 0, "write-until-closed: pause after each fragment written")
	flag.DurationVar(&o.linger, "linger", 10*time.Second, "once the work is done: how long to wait for the peer to end the session")
	flag.IntVar(&o.count, "count", 1, "channels to open")
	flag.Int64Var(&o.seed, "seed", 1, "seed for payload sizes and bytes")
	flag.Int64Var(&o.size, "size", -1, "payload bytes per channel (-1: the mixed set: edge sizes, then random up to 1 MiB)")
	flag.Int64Var(&o.after, "after", 0, "close-mid: payload bytes to write before closing; cut: bytes to read on each channel first")
	flag.Int64Var(&o.maxBytes, "max-bytes", 64<<20, "the largest length header accepted")
	flag.Parse()
	if flag.NArg() > 0 {
		usage("unexpected arguments %q", flag.Args())
	}
	if o.mode != "listen" && o.mode != "dial" {
		usage("-mode must be listen or dial")
	}
	if err := checkLoopback(o.addr); err != nil {
		usage("%v", err)
	}
	run, ok := scenarios[o.scenario]
	if !ok {
		usage("unknown -scenario %q", o.scenario)
	}
	if o.how != "session" && o.how != "reset" {
		usage("-how must be session or reset")
	}
	p := &peer{o: o, ended: make(chan error, 1), start: time.Now()}
	time.AfterFunc(o.timeout, func() {
		p.fail("timeout", "the run took longer than %v", o.timeout)
		p.result()
	})
	p.connect()
	run(p)
	p.result()
}

func (p *peer) connect() {
	if p.o.mode == "listen" {
		ln, err := net.Listen("tcp", p.o.addr)
		if err != nil {
			p.fail("connect", "listen: %v", err)
			p.result()
		}
		p.line(fmt.Sprintf("LISTENING %d", ln.Addr().(*net.TCPAddr).Port))
		conn, err := ln.Accept()
		ln.Close()
		if err != nil {
			p.fail("connect", "accept: %v", err)
			p.result()
		}
		p.conn = conn
		p.mx = multiplex.MultiplexedServer(conn)
	} else {
		conn, err := net.DialTimeout("tcp", p.o.addr, 5*time.Second)
		if err != nil {
			p.fail("connect", "dial: %v", err)
			p.result()
		}
		p.conn = conn
		p.mx = multiplex.MultiplexedClient(conn)
	}
}

var scenarios = map[string]func(*peer){
	"echo":               (*peer).echo,
	"hello":              (*peer).hello,
	"bulk-open":          (*peer).bulkOpen,
	"bulk-serve":         (*peer).bulkServe,
	"close-mid":          (*peer).closeMid,
	"write-until-closed": (*peer).writeUntilClosed,
	"cut":                (*peer).cut,
}

// ---------------------------------------------------------------- helpers

// acceptAll hands every inbound channel to handle, in its own goroutine, until the session ends; the end goes
// to p.ended. Passive scenarios wait for it; active ones use it to see the peer end the session.
func (p *peer) acceptAll(wg *sync.WaitGroup, handle func(c *multiplex.Channel, n int)) {
	go func() {
		for n := 0; ; n++ {
			c, err := p.mx.Accept()
			if err != nil {
				p.ended <- err
				return
			}
			wg.Add(1)
			go func(n int) {
				defer wg.Done()
				handle(c, n)
			}(n)
		}
	}()
}

// refuseInbound is acceptAll for scenarios where the peer should open nothing.
func (p *peer) refuseInbound(unexpected *atomic.Int64) {
	p.acceptAll(&sync.WaitGroup{}, func(c *multiplex.Channel, n int) {
		unexpected.Add(1)
		p.fail("unexpected-channel", "the peer opened a channel")
		c.Close()
	})
}

// cleanEnd tells whether the session ended because the peer closed the connection between frames.
func cleanEnd(err error) bool { return err == nil || errors.Is(err, io.EOF) }

// finish is how an active scenario ends: it waits up to -linger for the peer to end the session, else ends it
// itself. The peer ending first keeps its own last frames from meeting a closed socket.
func (p *peer) finish() string {
	select {
	case err := <-p.ended:
		if !cleanEnd(err) {
			p.fail("session-error", "the session ended with %v", err)
			return "error"
		}
		return "peer"
	case <-time.After(p.o.linger):
		p.closeSession()
		return "self"
	}
}

// waitEnd is how a passive scenario ends: when the peer ends the session.
func (p *peer) waitEnd() string {
	err := <-p.ended
	if !cleanEnd(err) {
		p.fail("session-error", "the session ended with %v", err)
		return "error"
	}
	return "peer"
}

// closeSession ends the session; the original's Close can block behind a stuck session loop, so it is bounded
// and the connection is closed directly if it does not return.
func (p *peer) closeSession() {
	done := make(chan struct{})
	go func() {
		p.mx.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		p.conn.Close()
	}
}

func waitGroup(wg *sync.WaitGroup, limit time.Duration) bool {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(limit):
		return false
	}
}

// writeAll writes b in Writes of at most one fragment. b must not change afterwards (the original keeps it).
func writeAll(c *multiplex.Channel, b []byte) (int64, error) {
	var n int64
	for len(b) > 0 {
		k := len(b)
		if k > fragment {
			k = fragment
		}
		w, err := c.Write(b[:k])
		n += int64(w)
		if err != nil {
			return n, err
		}
		if w != k {
			return n, io.ErrShortWrite
		}
		b = b[k:]
	}
	return n, nil
}

func lengthHeader(n int64) []byte {
	h := make([]byte, 8)
	binary.BigEndian.PutUint64(h, uint64(n))
	return h
}

// message is an 8-byte big-endian length and that many seeded pseudo-random bytes.
func message(seed int64, index int, size int64) []byte {
	b := make([]byte, 8+size)
	binary.BigEndian.PutUint64(b, uint64(size))
	rand.New(rand.NewSource(seed*1_000_003 + int64(index))).Read(b[8:])
	return b
}

var edgeSizes = []int64{0, 1, 1023, 1024, 1025, 65535, 65536, 262144, 262145, 1 << 20}

// sizes: -size bytes for every channel, or (-size -1) the edge sizes first, then random ones up to 1 MiB.
func (p *peer) sizes() []int64 {
	r := rand.New(rand.NewSource(p.o.seed))
	out := make([]int64, p.o.count)
	for i := range out {
		switch {
		case p.o.size >= 0:
			out[i] = p.o.size
		case i < len(edgeSizes):
			out[i] = edgeSizes[i]
		default:
			out[i] = r.Int63n(1<<20 + 1)
		}
	}
	return out
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// readMessage reads one length-prefixed message.
func (p *peer) readMessage(c *multiplex.Channel) ([]byte, error) {
	h := make([]byte, 8)
	if _, err := io.ReadFull(c, h); err != nil {
		return nil, fmt.Errorf("length header: %w", err)
	}
	n := int64(binary.BigEndian.Uint64(h))
	if n < 0 || n > p.o.maxBytes {
		return nil, fmt.Errorf("implausible length %d", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		return nil, fmt.Errorf("payload of %d bytes: %w", n, err)
	}
	return b, nil
}

// readToEnd reads until the channel ends, into fresh buffers. It returns the count and the error that ended
// it (io.EOF for the peer's close).
func readToEnd(c *multiplex.Channel, h io.Writer) (int64, error) {
	var n int64
	for {
		b := make([]byte, 4*fragment)
		k, err := c.Read(b)
		n += int64(k)
		if h != nil {
			h.Write(b[:k])
		}
		if err != nil {
			return n, err
		}
	}
}

// ---------------------------------------------------------------- scenarios

// echo is the original README's server: every inbound channel's bytes are written back as they come, until
// the peer closes the channel; the run ends when the peer ends the session.
func (p *peer) echo() {
	var channels, echoed, bytesEchoed atomic.Int64
	p.fields = func() string {
		return fmt.Sprintf("channels=%d echoed=%d bytes=%d", channels.Load(), echoed.Load(), bytesEchoed.Load())
	}
	var wg sync.WaitGroup
	p.acceptAll(&wg, func(c *multiplex.Channel, n int) {
		channels.Add(1)
		var total int64
		for {
			b := make([]byte, fragment) // fresh: the original keeps the slice until it is sent
			n, err := c.Read(b)
			if n > 0 {
				if _, werr := c.Write(b[:n]); werr != nil {
					p.fail("channel-error", "channel #%d: echo write: %v", n, werr)
					break
				}
				total += int64(n)
			}
			if err != nil {
				if err != io.EOF {
					p.fail("channel-error", "channel #%d: read: %v", n, err)
				}
				break
			}
		}
		c.Close()
		bytesEchoed.Add(total)
		if total > 0 {
			echoed.Add(1)
		}
	})
	end := p.waitEnd()
	if !waitGroup(&wg, 5*time.Second) {
		p.fail("stuck", "echo handlers still running after the session ended")
	}
	old := p.fields
	p.fields = func() string { return old() + " end=" + end }
}

// hello is the original README's client: -count channels at once, each writes "hello", reads 5 bytes,
// checks them and closes.
func (p *peer) hello() {
	var unexpected, ok atomic.Int64
	p.fields = func() string {
		return fmt.Sprintf("channels=%d ok=%d unexpected=%d", p.o.count, ok.Load(), unexpected.Load())
	}
	p.refuseInbound(&unexpected)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for i := 0; i < p.o.count; i++ {
		wg.Add(1)
		go func(n int) {
			defer wg.Done()
			c, err := p.mx.Dial()
			if err != nil {
				firstErr.CompareAndSwap(nil, fmt.Sprintf("dial: %v", err))
				return
			}
			defer c.Close()
			if _, err := c.Write([]byte("hello")); err != nil {
				firstErr.CompareAndSwap(nil, fmt.Sprintf("channel #%d: write: %v", n, err))
				return
			}
			reply := make([]byte, 5)
			if _, err := io.ReadFull(c, reply); err != nil {
				firstErr.CompareAndSwap(nil, fmt.Sprintf("channel #%d: read: %v", n, err))
				return
			}
			if string(reply) != "hello" {
				firstErr.CompareAndSwap(nil, fmt.Sprintf("channel #%d: reply %q", n, reply))
				return
			}
			ok.Add(1)
		}(i)
	}
	if !waitGroup(&wg, p.o.timeout) {
		p.fail("stuck", "channels still waiting")
	}
	if ok.Load() != int64(p.o.count) {
		first, _ := firstErr.Load().(string)
		p.fail("channel-error", "%d of %d channels failed; first: %s", int64(p.o.count)-ok.Load(), p.o.count, first)
	}
	p.line(fmt.Sprintf("DONE ok=%d", ok.Load()))
	end := p.finish()
	old := p.fields
	p.fields = func() string { return old() + " end=" + end }
}

// bulkOpen opens -count channels at once; each sends a length-prefixed message of its size, reads the echo
// in full and compares it by SHA-256, then closes. A CHANNEL line per channel gives what was sent.
func (p *peer) bulkOpen() {
	var unexpected, ok, total atomic.Int64
	p.fields = func() string {
		return fmt.Sprintf("channels=%d ok=%d bytes=%d unexpected=%d", p.o.count, ok.Load(), total.Load(), unexpected.Load())
	}
	p.refuseInbound(&unexpected)
	var wg sync.WaitGroup
	for i, size := range p.sizes() {
		wg.Add(1)
		go func(n int, size int64) {
			defer wg.Done()
			c, err := p.mx.Dial()
			if err != nil {
				p.fail("dial", "%v", err)
				return
			}
			defer c.Close()
			msg := message(p.o.seed, n, size)
			sent := digest(msg[8:])
			p.line(fmt.Sprintf("CHANNEL index=%d bytes=%d sha256=%s", n, size, sent))
			if _, err := writeAll(c, msg); err != nil {
				p.fail("channel-error", "channel #%d: write: %v", n, err)
				return
			}
			echo, err := p.readMessage(c)
			if err != nil {
				p.fail("channel-error", "channel #%d: reading the echo: %v", n, err)
				return
			}
			if int64(len(echo)) != size || digest(echo) != sent {
				p.fail("mismatch", "channel #%d: the echo of %d bytes differs (%d bytes back)", n, size, len(echo))
				return
			}
			ok.Add(1)
			total.Add(size)
		}(i, size)
	}
	if !waitGroup(&wg, p.o.timeout) {
		p.fail("stuck", "channels still waiting")
	}
	p.line(fmt.Sprintf("DONE ok=%d", ok.Load()))
	end := p.finish()
	old := p.fields
	p.fields = func() string { return old() + " end=" + end }
}

// bulkServe echoes length-prefixed messages: it reads one in full, reports its size and SHA-256 in a CHANNEL
// line, writes it back, and waits for the peer to close the channel.
func (p *peer) bulkServe() {
	var channels, ok, total atomic.Int64
	p.fields = func() string {
		return fmt.Sprintf("channels=%d ok=%d bytes=%d", channels.Load(), ok.Load(), total.Load())
	}
	var wg sync.WaitGroup
	p.acceptAll(&wg, func(c *multiplex.Channel, n int) {
		defer c.Close()
		channels.Add(1)
		data, err := p.readMessage(c)
		if err != nil {
			p.fail("channel-error", "channel #%d: %v", n, err)
			return
		}
		p.line(fmt.Sprintf("CHANNEL index=%d bytes=%d sha256=%s", n, len(data), digest(data)))
		msg := append(lengthHeader(int64(len(data))), data...)
		if _, err := writeAll(c, msg); err != nil {
			p.fail("channel-error", "channel #%d: echo write: %v", n, err)
			return
		}
		// The opener closes: closing here first while it may still send would end the original's session.
		if extra, err := readToEnd(c, nil); err != io.EOF || extra != 0 {
			p.fail("channel-error", "channel #%d: after the echo: %d bytes, %v", n, extra, err)
			return
		}
		ok.Add(1)
		total.Add(int64(len(data)))
	})
	end := p.waitEnd()
	if !waitGroup(&wg, 5*time.Second) {
		p.fail("stuck", "handlers still running after the session ended")
	}
	old := p.fields
	p.fields = func() string { return old() + " end=" + end }
}

// closeMid opens -count channels; each announces a message of -size bytes, writes only -after of them and
// closes the channel (the original's Close, a RST on the wire) in the middle of the transfer. It reads
// nothing: the peer must not send on these channels.
func (p *peer) closeMid() {
	var unexpected, closed atomic.Int64
	p.fields = func() string {
		return fmt.Sprintf("channels=%d closed=%d unexpected=%d", p.o.count, closed.Load(), unexpected.Load())
	}
	p.refuseInbound(&unexpected)
	var wg sync.WaitGroup
	for i := 0; i < p.o.count; i++ {
		wg.Add(1)
		go func(n int) {
			defer wg.Done()
			c, err := p.mx.Dial()
			if err != nil {
				p.fail("dial", "%v", err)
				return
			}
			msg := message(p.o.seed, n, p.o.size)
			part := msg[:8+p.o.after]
			if _, err := writeAll(c, part); err != nil {
				p.fail("channel-error", "channel #%d: write: %v", n, err)
			}
			p.line(fmt.Sprintf("CHANNEL index=%d bytes=%d sha256=%s", n, p.o.after, digest(part[8:])))
			if err := c.Close(); err != nil {
				p.fail("channel-error", "channel #%d: close: %v", n, err)
				return
			}
			closed.Add(1)
		}(i)
	}
	if !waitGroup(&wg, p.o.timeout) {
		p.fail("stuck", "channels still writing")
	}
	p.line(fmt.Sprintf("DONE closed=%d", closed.Load()))
	end := p.finish()
	old := p.fields
	p.fields = func() string { return old() + " end=" + end }
}

// writeUntilClosed opens -count channels and writes -size bytes on each (in fragments, pausing -interval after
// each) while reading them; the peer is expected to close each channel in the middle. A CHANNEL line per
// channel says how far the write got and how it ended: outcome=closed when a Write failed with end-of-file
// before the end. The pause is for the original: a peer's close that arrives while its send queue is full
// deadlocks its session loop (it waits for the channel to queue its answering RST), so the writers must not
// fill that queue.
func (p *peer) writeUntilClosed() {
	var unexpected, closedEarly atomic.Int64
	p.fields = func() string {
		return fmt.Sprintf("channels=%d closed_early=%d unexpected=%d", p.o.count, closedEarly.Load(), unexpected.Load())
	}
	p.refuseInbound(&unexpected)
	var wg sync.WaitGroup
	for i := 0; i < p.o.count; i++ {
		wg.Add(1)
		go func(n int) {
			defer wg.Done()
			c, err := p.mx.Dial()
			if err != nil {
				p.fail("dial", "%v", err)
				return
			}
			defer c.Close()
			// Whatever the peer sends must be read, or the original's session loop stops.
			readDone := make(chan int64, 1)
			go func() {
				n, _ := readToEnd(c, nil)
				readDone <- n
			}()
			msg := message(p.o.seed, n, p.o.size)
			var written int64
			for len(msg) > 0 && err == nil {
				k := fragment
				if k > len(msg) {
					k = len(msg)
				}
				var w int
				w, err = c.Write(msg[:k])
				written += int64(w)
				msg = msg[k:]
				time.Sleep(p.o.interval)
			}
			outcome := "completed"
			if err == io.EOF {
				outcome = "closed"
				closedEarly.Add(1)
			} else if err != nil {
				outcome = "error"
				p.fail("channel-error", "channel #%d: write: %v", n, err)
			} else {
				p.fail("not-closed", "channel #%d: all %d bytes were written; the peer did not close", n, written)
			}
			var read int64
			select {
			case read = <-readDone:
			case <-time.After(5 * time.Second):
				p.fail("stuck", "channel #%d: reading did not end after the close", n)
			}
			p.line(fmt.Sprintf("CHANNEL index=%d written=%d read=%d outcome=%s", n, written, read, outcome))
		}(i)
	}
	if !waitGroup(&wg, p.o.timeout) {
		p.fail("stuck", "channels still writing")
	}
	p.line(fmt.Sprintf("DONE closed_early=%d", closedEarly.Load()))
	end := p.finish()
	old := p.fields
	p.fields = func() string { return old() + " end=" + end }
}

// cut opens -count channels, writes "go" on each and reads -after bytes from each, then reads on at a trickle
// (the peer may send more) and, once every channel is there, ends everything with the channels open: -how session calls the original's
// Close (its connection closes), -how reset resets the TCP connection. Channels the peer opens meanwhile are
// accepted and read, so that the peer has its own channels open at the cut too.
func (p *peer) cut() {
	var inbound, ready atomic.Int64
	p.fields = func() string {
		return fmt.Sprintf("channels=%d ready=%d how=%s inbound=%d", p.o.count, ready.Load(), p.o.how, inbound.Load())
	}
	p.acceptAll(&sync.WaitGroup{}, func(c *multiplex.Channel, n int) {
		inbound.Add(1)
		readToEnd(c, nil)
	})
	var wg sync.WaitGroup
	for i := 0; i < p.o.count; i++ {
		wg.Add(1)
		go func(n int) {
			defer wg.Done()
			c, err := p.mx.Dial()
			if err != nil {
				p.fail("dial", "%v", err)
				return
			}
			if _, err := c.Write([]byte("go")); err != nil {
				p.fail("channel-error", "channel #%d: write: %v", n, err)
				return
			}
			b := make([]byte, p.o.after)
			if _, err := io.ReadFull(c, b); err != nil {
				p.fail("channel-error", "channel #%d: read: %v", n, err)
				return
			}
			ready.Add(1)
			// From here on, read a fragment per millisecond: slowly enough that the peer's writes are still
			// under way at the cut, and without stopping, since the original's session loop stops for every
			// channel while one channel's data waits for its reader (the other channels must still get theirs).
			go func() {
				for {
					b := make([]byte, fragment)
					if _, err := c.Read(b); err != nil {
						return
					}
					time.Sleep(time.Millisecond)
				}
			}()
		}(i)
	}
	if !waitGroup(&wg, p.o.timeout) {
		p.fail("stuck", "channels not ready")
	}
	p.line(fmt.Sprintf("DONE ready=%d", ready.Load()))
	if p.o.how == "reset" {
		if tcp, ok := p.conn.(*net.TCPConn); ok {
			tcp.SetLinger(0) // close sends a TCP reset
		}
		p.conn.Close()
	} else {
		p.closeSession()
	}
	select {
	case <-p.ended:
	case <-time.After(2 * time.Second):
		p.fail("stuck", "the session did not end after the cut")
	}
}
