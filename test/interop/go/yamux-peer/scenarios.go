package main

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
)

// reasonOf turns a stream error into a RESULT reason token.
func reasonOf(err error) string {
	switch {
	case errors.Is(err, yamux.ErrConnectionReset):
		return "reset"
	case strings.Contains(err.Error(), "differs") || strings.Contains(err.Error(), "length header says"):
		return "mismatch"
	}
	return "stream-error"
}

func (p *peer) waitWG(wg *sync.WaitGroup, what string) bool {
	ch := make(chan struct{})
	go func() { wg.Wait(); close(ch) }()
	p.setStage(what)
	select {
	case <-ch:
		return true
	case <-p.expired:
		p.fail("timeout", "waiting for "+what)
		return false
	}
}

// openEchoes opens count streams (one after another, so stream order is index order) and runs
// their echo exchanges concurrently. It returns how many verified and their payload bytes.
func (p *peer) openEchoes(sizes []int64, closeFirst bool) (int64, int64) {
	var wg sync.WaitGroup
	var okN, bytesN atomic.Int64
	for i, size := range sizes {
		p.setStage(fmt.Sprintf("opening stream %d of %d", i+1, len(sizes)))
		s, err := p.sess.OpenStream()
		if err != nil {
			p.fail("open", fmt.Sprintf("stream #%d: %v", i, err))
			break
		}
		wg.Add(1)
		go func(i int, size int64, s *yamux.Stream) {
			defer wg.Done()
			if err := p.exchange(s, size, payload(p.o.seed, i), closeFirst); err != nil {
				p.fail(reasonOf(err), fmt.Sprintf("stream %d (#%d, %d bytes): %v", s.StreamID(), i, size, err))
				return
			}
			okN.Add(1)
			bytesN.Add(size)
		}(i, size, s)
	}
	p.waitWG(&wg, "echo exchanges")
	return okN.Load(), bytesN.Load()
}

// finishOpener is the active roles' end: every stream must be closed by both sides, then we close.
func (p *peer) finishOpener(limit time.Duration) {
	p.setStage("streams to drain")
	if n := p.drain(limit); n > 0 {
		p.fail("no-fin", fmt.Sprintf("%d streams still open: the peer did not close (FIN) them", n))
	}
	p.closeSession()
}

// echoHandler counts served streams; the echo side of echo-server, both and half-close.
func (p *peer) echoHandler(waitFIN bool, served, bytes *atomic.Int64) func(*yamux.Stream) {
	return func(s *yamux.Stream) {
		n, err := p.echo(s, waitFIN)
		if err != nil {
			p.fail(reasonOf(err), fmt.Sprintf("stream %d: %v", s.StreamID(), err))
			return
		}
		served.Add(1)
		bytes.Add(n)
	}
}

func (p *peer) echoServer() {
	var served, bytes atomic.Int64
	p.startAccept(p.echoHandler(false, &served, &bytes))
	p.waitEnd("the peer to close the session")
	p.waitHandlers(p.o.linger)
	if served.Load() == 0 && !p.failed() {
		p.fail("no-streams", "the session ended before any stream was echoed")
	}
	p.done(kv("streams", served.Load()), kv("bytes", bytes.Load()))
}

func (p *peer) echoClient() {
	p.startAccept(nil)
	ok, bytes := p.openEchoes(payloadSizes(p.o.size, p.o.count, p.o.seed), false)
	p.finishOpener(p.o.linger)
	p.done(kv("streams", p.o.count), kv("ok", ok), kv("bytes", bytes))
}

// both serves the peer's streams while opening its own. Done means: ours verified, the peer's
// -expect streams echoed, and no stream left open. The dialling side then closes the session; the
// listening side waits for that, so neither closes TCP under the other's unread data.
func (p *peer) both() {
	var served, servedBytes atomic.Int64
	p.startAccept(p.echoHandler(false, &served, &servedBytes))
	ok, bytes := p.openEchoes(payloadSizes(p.o.size, p.o.count, p.o.seed), false)
	p.waitFor("the peer's streams to finish", func() bool {
		return served.Load() >= int64(p.o.expect) && p.sess.NumStreams() == 0
	})
	if p.o.mode == "dial" {
		p.closeSession()
	} else {
		select {
		case <-p.endCh:
			if clean, reason := endIsClean(p.endErr); !clean {
				p.fail(reason, fmt.Sprintf("session ended: %v", p.endErr))
			}
		case <-time.After(p.o.linger):
			p.closeSession()
		}
	}
	p.done(kv("opened", p.o.count), kv("ok", ok), kv("bytes", bytes),
		kv("served", served.Load()), kv("served_bytes", servedBytes.Load()))
}

func (p *peer) halfCloseOpen() {
	p.startAccept(nil)
	ok, bytes := p.openEchoes(payloadSizes(p.o.size, p.o.count, p.o.seed), true)
	p.finishOpener(p.o.linger)
	p.done(kv("streams", p.o.count), kv("ok", ok), kv("bytes", bytes))
}

// halfCloseAccept reads the whole request and the peer's FIN before replying on the half-open stream.
func (p *peer) halfCloseAccept() {
	var served, bytes atomic.Int64
	p.startAccept(p.echoHandler(true, &served, &bytes))
	p.waitEnd("the peer to close the session")
	p.waitHandlers(p.o.linger)
	if served.Load() < int64(p.o.count) && !p.failed() {
		p.fail("no-streams", fmt.Sprintf("served %d streams, expected %d", served.Load(), p.o.count))
	}
	p.done(kv("streams", served.Load()), kv("bytes", bytes.Load()))
}

// resetOpen opens streams, writes to them and waits for the peer to reset them.
func (p *peer) resetOpen() {
	type outcome struct {
		kind string
		err  error
	}
	p.startAccept(nil)
	start := time.Now()
	results := make(chan outcome, p.o.count)
	for i := 0; i < p.o.count; i++ {
		p.setStage(fmt.Sprintf("opening stream %d of %d", i+1, p.o.count))
		s, err := p.sess.OpenStream()
		if err != nil {
			p.fail("open", fmt.Sprintf("stream #%d: %v", i, err))
			break
		}
		go func(i int, s *yamux.Stream) {
			s.SetDeadline(p.deadline)
			err := writePayload(s, p.o.size, payload(p.o.seed, i), sha256.New())
			if err == nil { // written in full: now the reset can only show up on a read
				buf := make([]byte, 64<<10)
				for err == nil {
					_, err = s.Read(buf)
				}
			}
			kind := "error"
			switch {
			case errors.Is(err, yamux.ErrConnectionReset):
				kind = "reset"
			case err == io.EOF:
				kind = "eof"
			case errors.Is(err, yamux.ErrTimeout):
				kind = "timeout"
			}
			out.line(strings.Join([]string{"STREAM", kv("index", i), kv("id", s.StreamID()),
				kv("outcome", kind), kv("acked", p.tap.acked(s.StreamID())), kv("ms", time.Since(start).Milliseconds())}, " "))
			results <- outcome{kind, err}
		}(i, s)
	}
	resets, finished := 0, 0
	var firstReset time.Duration
	p.setStage("resets")
wait:
	for resets < p.o.minResets && finished < p.o.count {
		select {
		case r := <-results:
			finished++
			if r.kind == "reset" {
				if resets == 0 {
					firstReset = time.Since(start)
				}
				resets++
			} else {
				fmt.Fprintf(os.Stderr, "yamux-peer: stream ended without reset: %v\n", r.err)
			}
		case <-p.expired:
			break wait
		}
	}
	if resets < p.o.minResets {
		p.fail("no-reset", fmt.Sprintf("%d of %d streams were reset (needed %d)", resets, p.o.count, p.o.minResets))
	}
	p.closeSession() // reset streams leave no state behind; others are abandoned on purpose
	p.done(kv("streams", p.o.count), kv("resets", resets), kv("first_reset_ms", firstReset.Milliseconds()))
}

// resetAccept makes the peer's stream see a reset. This yamux has no Stream.Reset: "raw" writes an
// RST frame onto the wire itself, "backlog" lets yamux refuse SYNs beyond AcceptBacklog (its only
// own stream RST besides refusing SYNs after GoAway), "session" closes the whole session.
func (p *peer) resetAccept() {
	switch p.o.how {
	case "raw":
		var resets atomic.Int64
		p.startAccept(func(s *yamux.Stream) {
			s.SetDeadline(p.deadline)
			var hb [8]byte
			if err := readFull(s, hb[:], p.deadline); err != nil {
				p.fail("stream-error", fmt.Sprintf("stream %d: length header: %v", s.StreamID(), err))
				return
			}
			k := int64(binary.BigEndian.Uint64(hb[:]))
			if k > p.o.resetAfter || k < 0 {
				k = p.o.resetAfter
			}
			if err := readFull(s, make([]byte, k), p.deadline); err != nil {
				p.fail("stream-error", fmt.Sprintf("stream %d: payload: %v", s.StreamID(), err))
				return
			}
			if err := p.tap.injectRST(s.StreamID()); err != nil {
				p.fail("stream-error", fmt.Sprintf("stream %d: inject RST: %v", s.StreamID(), err))
				return
			}
			out.line(strings.Join([]string{"STREAM", kv("id", s.StreamID()), kv("outcome", "reset-sent"),
				kv("after_bytes", k)}, " "))
			resets.Add(1)
		})
		p.waitEnd("the peer to close the session")
		p.waitHandlers(p.o.linger)
		if resets.Load() < int64(p.o.count) && !p.failed() {
			p.fail("no-streams", fmt.Sprintf("reset %d streams, expected %d", resets.Load(), p.o.count))
		}
		p.done(kv("how", "raw"), kv("streams", resets.Load()))
	case "session":
		got := make(chan uint32, 1)
		p.startAccept(func(s *yamux.Stream) {
			var hb [8]byte
			readFull(s, hb[:], p.deadline)
			select {
			case got <- s.StreamID():
			default:
			}
		})
		p.setStage("a stream to accept")
		var id uint32
		select {
		case id = <-got:
		case <-p.endCh:
			p.fail("no-streams", fmt.Sprintf("session ended before any stream: %v", p.endErr))
		case <-p.expired:
			p.fail("timeout", "waiting for a stream")
		}
		p.closeSession()
		p.done(kv("how", "session"), kv("stream", id))
	case "backlog":
		// No Accept at all: the first AcceptBacklog SYNs wait in yamux's queue, later ones get RST.
		p.setStage("the peer to close the session")
		select {
		case <-p.sess.CloseChan():
		case <-p.expired:
			p.fail("timeout", "waiting for the peer to close the session")
		}
		st := p.tap.snapshot()
		if st.rstOut == 0 && !p.failed() {
			p.fail("no-reset", fmt.Sprintf("yamux refused no stream (%d SYNs, backlog %d)", st.synIn, p.o.backlog))
		}
		p.done(kv("how", "backlog"), kv("backlog", p.o.backlog), kv("syn_in", st.synIn), kv("rst_sent", st.rstOut))
	}
}

func (p *peer) pingActive() {
	p.startAccept(nil)
	var sum, lo, hi time.Duration
	n := 0
	for i := 0; i < p.o.count; i++ {
		p.setStage(fmt.Sprintf("ping %d", i))
		rtt, err := p.sess.Ping()
		if err != nil {
			p.fail("ping", fmt.Sprintf("ping %d: %v", i, err))
			break
		}
		out.line(fmt.Sprintf("PING %s %s", kv("seq", i), kv("rtt_us", rtt.Microseconds())))
		if n == 0 || rtt < lo {
			lo = rtt
		}
		if rtt > hi {
			hi = rtt
		}
		sum += rtt
		n++
	}
	avg := time.Duration(0)
	if n > 0 {
		avg = sum / time.Duration(n)
	}
	p.closeSession()
	p.done(kv("count", n), kv("min_us", lo.Microseconds()), kv("avg_us", avg.Microseconds()), kv("max_us", hi.Microseconds()))
}

// pingAnswer relies on yamux answering pings by itself; the tap counts what it answered.
func (p *peer) pingAnswer() {
	p.startAccept(nil)
	p.waitEnd("the peer to close the session")
	st := p.tap.snapshot()
	if st.pingReqIn == 0 && !p.failed() {
		p.fail("no-ping", "the peer sent no ping")
	}
	p.done(kv("pings_received", st.pingReqIn), kv("pings_answered", st.pingAckOut))
}

// goAwaySend accepts -count streams, sends Go Away, then lets those streams finish: the peer must
// open nothing after it (yamux would RST such SYNs; the tap counts them).
func (p *peer) goAwaySend() {
	var streams []*yamux.Stream
	for len(streams) < p.o.count {
		p.setStage(fmt.Sprintf("accepting stream %d of %d", len(streams)+1, p.o.count))
		s, err := p.sess.AcceptStream()
		if err != nil {
			p.fail("no-streams", fmt.Sprintf("accepted %d of %d streams: %v", len(streams), p.o.count, err))
			p.done()
		}
		streams = append(streams, s)
	}
	p.startAccept(nil)
	if err := p.sess.GoAway(); err != nil {
		p.fail("goaway", err)
	}
	out.line("GOAWAY sent")
	var served, bytes atomic.Int64
	h := p.echoHandler(false, &served, &bytes)
	for _, s := range streams {
		p.handlers.Add(1)
		go func(s *yamux.Stream) { defer p.handlers.Done(); h(s) }(s)
	}
	p.waitHandlers(time.Until(p.deadline))
	p.waitEnd("the peer to close the session")
	st := p.tap.snapshot()
	if st.synInAfterGoAwayOut > 0 {
		p.fail("open-after-goaway", fmt.Sprintf("the peer sent %d SYN after our Go Away", st.synInAfterGoAwayOut))
	}
	p.done(kv("streams", served.Load()), kv("bytes", bytes.Load()),
		kv("syn_after_goaway", st.synInAfterGoAwayOut), kv("rst_sent", st.rstOut))
}

// goAwayRecv opens streams, expects their echoes despite the peer's Go Away, and then checks that
// yamux refuses to open another stream.
func (p *peer) goAwayRecv() {
	p.startAccept(nil)
	ok, bytes := p.openEchoes(payloadSizes(p.o.size, p.o.count, p.o.seed), false)
	p.setStage("the peer's Go Away")
	select {
	case <-p.tap.goAwayCh:
	case <-p.expired:
		p.fail("no-goaway", "the peer sent no Go Away")
	}
	openAfter := "refused"
	if s, err := p.sess.OpenStream(); err == nil {
		openAfter = "opened"
		p.fail("open-after-goaway", "OpenStream succeeded after the peer's Go Away")
		s.Close()
	} else if err != yamux.ErrRemoteGoAway {
		openAfter = "error"
		p.fail("stream-error", fmt.Sprintf("OpenStream after Go Away: %v", err))
	}
	p.finishOpener(p.o.linger)
	st := p.tap.snapshot()
	p.done(kv("streams", p.o.count), kv("ok", ok), kv("bytes", bytes),
		kv("goaway_code", st.goAwayCodeIn), kv("open_after", openAfter))
}

// slowRead accepts -count streams one after another and reads each at -chunk bytes per -interval,
// so the peer's writer runs into flow control; yamux logs any window violation (which fails us).
func (p *peer) slowRead() {
	total := sha256.New()
	var totalBytes int64
	start := time.Now()
	for i := 0; i < p.o.count; i++ {
		p.setStage(fmt.Sprintf("accepting stream %d of %d", i+1, p.o.count))
		s, err := p.sess.AcceptStream()
		if err != nil {
			p.fail("no-streams", fmt.Sprintf("accepted %d of %d streams: %v", i, p.o.count, err))
			p.done()
		}
		s.SetDeadline(p.deadline)
		p.setStage(fmt.Sprintf("reading stream %d slowly", s.StreamID()))
		n, sum, err := p.readSlowly(s, total)
		if err != nil {
			p.fail(reasonOf(err), fmt.Sprintf("stream %d: %v", s.StreamID(), err))
			p.done()
		}
		totalBytes += n
		out.line(strings.Join([]string{"STREAM", kv("index", i), kv("id", s.StreamID()), kv("bytes", n),
			kv("sha256", fmt.Sprintf("%x", sum))}, " "))
	}
	elapsed := time.Since(start)
	p.startAccept(nil)
	p.waitEnd("the peer to close the session")
	p.done(kv("streams", p.o.count), kv("bytes", totalBytes), kv("sha256", fmt.Sprintf("%x", total.Sum(nil))),
		kv("read_ms", elapsed.Milliseconds()))
}

func (p *peer) readSlowly(s *yamux.Stream, total io.Writer) (int64, []byte, error) {
	var hb [8]byte
	if err := readFull(s, hb[:], p.deadline); err != nil {
		return 0, nil, fmt.Errorf("length header: %w", err)
	}
	n := int64(binary.BigEndian.Uint64(hb[:]))
	if n < 0 || n > p.o.maxSize {
		return 0, nil, fmt.Errorf("length header %d exceeds -max-size", uint64(n))
	}
	h := sha256.New()
	buf := make([]byte, p.o.chunk)
	tick := time.NewTicker(p.o.interval)
	defer tick.Stop()
	for got := int64(0); got < n; {
		k := int64(len(buf))
		if k > n-got {
			k = n - got
		}
		if err := readFull(s, buf[:k], p.deadline); err != nil {
			return got, nil, fmt.Errorf("payload: %w", err)
		}
		h.Write(buf[:k])
		total.Write(buf[:k])
		if got += k; got < n {
			<-tick.C
		}
	}
	if err := expectEOF(s); err != nil {
		return n, nil, err
	}
	s.Close()
	return n, h.Sum(nil), nil
}

// slowWrite opens -count streams in order, writes each payload and FIN, and waits for the slow
// reader to take everything and close.
func (p *peer) slowWrite() {
	p.startAccept(nil)
	sums := make([][]byte, p.o.count)
	var wg sync.WaitGroup
	for i := 0; i < p.o.count; i++ {
		p.setStage(fmt.Sprintf("opening stream %d of %d", i+1, p.o.count))
		s, err := p.sess.OpenStream()
		if err != nil {
			p.fail("open", fmt.Sprintf("stream #%d: %v", i, err))
			break
		}
		wg.Add(1)
		go func(i int, s *yamux.Stream) {
			defer wg.Done()
			s.SetDeadline(p.deadline)
			h := sha256.New()
			if err := writePayload(s, p.o.size, payload(p.o.seed, i), h); err != nil {
				p.fail(reasonOf(err), fmt.Sprintf("stream %d: %v", s.StreamID(), err))
				return
			}
			s.Close()
			sums[i] = h.Sum(nil)
			out.line(strings.Join([]string{"STREAM", kv("index", i), kv("id", s.StreamID()), kv("bytes", p.o.size),
				kv("sha256", fmt.Sprintf("%x", sums[i]))}, " "))
		}(i, s)
	}
	p.waitWG(&wg, "slow writes")
	p.finishOpener(time.Until(p.deadline)) // the reader is slow by design: wait up to the deadline
	// The combined digest covers all payloads in stream order, like the reader's.
	total := sha256.New()
	buf := make([]byte, 64<<10)
	for i := 0; i < p.o.count; i++ {
		gen := payload(p.o.seed, i)
		for left := p.o.size; left > 0; {
			k := int64(len(buf))
			if k > left {
				k = left
			}
			gen.Read(buf[:k])
			total.Write(buf[:k])
			left -= k
		}
	}
	p.done(kv("streams", p.o.count), kv("bytes", p.o.size*int64(p.o.count)), kv("sha256", fmt.Sprintf("%x", total.Sum(nil))))
}
