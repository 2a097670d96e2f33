package main

// The shutdown and keep-alive races of muxwire's issue 17, with this yamux on the other side:
// graceful (a Go Away in the middle of many opens) and fill (streams written to a peer that does not
// read them, so that the test can freeze this process while the peer has paused reading).

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
)

// gracefulServe echoes every stream it accepts. Once -goaway-after streams are accepted (0: at
// once) it calls GoAway(): yamux then answers every later SYN with RST. Streams that were already
// registered (accepted or waiting in the backlog) are still accepted and echoed. When none is left
// (both FINs passed on each), it closes the session, as a Go server that drains before exiting does;
// with -confirm it first pings, so that the peer has read the Go Away before the connection closes.
func (p *peer) gracefulServe() {
	var accepted, echoed, echoBytes atomic.Int64
	var mu sync.Mutex
	var ids []uint32
	goAwayOnce := sync.Once{}
	goAwayDone := make(chan struct{})
	sendGoAway := func() {
		goAwayOnce.Do(func() {
			if err := p.sess.GoAway(); err != nil {
				p.fail("goaway", err)
			}
			out.line("GOAWAY sent")
			close(goAwayDone)
		})
	}
	echo := p.echoHandler(false, &echoed, &echoBytes)
	p.startAccept(func(s *yamux.Stream) {
		mu.Lock()
		ids = append(ids, s.StreamID())
		mu.Unlock()
		if accepted.Add(1) == int64(p.o.goAwayAfter) {
			sendGoAway()
		}
		echo(s)
	})
	if p.o.goAwayAfter == 0 {
		sendGoAway()
	}
	p.setStage("the Go Away")
	select {
	case <-goAwayDone:
	case <-p.endCh:
		p.fail("session-ended", fmt.Sprintf("the session ended after %d streams, before our Go Away: %v",
			accepted.Load(), p.endErr))
	case <-p.expired:
		p.fail("timeout", fmt.Sprintf("waiting for %d streams (accepted %d)", p.o.goAwayAfter, accepted.Load()))
	}
	if !p.failed() {
		// After GoAway() returned no SYN can join the stream map, so an empty map means done.
		p.waitFor("the accepted streams to finish", func() bool { return p.sess.NumStreams() == 0 })
		p.waitHandlers(time.Until(p.deadline))
	}
	if p.o.confirm && !p.failed() {
		// The peer answers this ping only after reading what came before it, our Go Away included: from then
		// on it opens nothing, so closing cannot meet a SYN it still means to send. Without it, SYNs sent
		// before our Go Away arrived reach a closed connection.
		p.setStage("the peer to answer our ping after the Go Away")
		if _, err := p.sess.Ping(); err != nil {
			p.fail("ping", fmt.Sprintf("ping after Go Away: %v", err))
		}
	}
	p.closeSession()
	mu.Lock()
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		out.line(strings.Join([]string{"STREAM", kv("id", id), kv("outcome", "accepted")}, " "))
	}
	mu.Unlock()
	st := p.tap.snapshot()
	p.done(kv("accepted", accepted.Load()), kv("echoed", echoed.Load()), kv("bytes", echoBytes.Load()),
		kv("syn_after_goaway", st.synInAfterGoAwayOut), kv("rst_sent", st.rstOut))
}

// streamOutcome classifies how one opened stream ended. Go cannot tell a refused stream from a reset
// one: both are yamux.ErrConnectionReset. A session that ends shows up on a stream as io.EOF,
// "stream closed" or ErrSessionShutdown; the stream's own error does not say so, the session does.
func streamOutcome(s *yamux.Stream, err error) string {
	switch {
	case err == nil:
		return "echoed"
	case errors.Is(err, yamux.ErrConnectionReset):
		return "reset"
	case errors.Is(err, yamux.ErrTimeout):
		return "timeout"
	case errors.Is(err, yamux.ErrSessionShutdown), errors.Is(err, io.EOF), errors.Is(err, yamux.ErrStreamClosed),
		s.Session().IsClosed(), strings.Contains(err.Error(), "session closed"):
		return "session"
	}
	return "error"
}

// gracefulOpen opens -count echo streams, -per-ms of them each millisecond, until OpenStream fails
// because the peer sent Go Away (or the session ended). Each stream writes its message, reads the echo
// and closes. Every stream's outcome is printed; the peer is expected to end the session itself.
func (p *peer) gracefulOpen() {
	p.startAccept(nil)
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[string]int{}
	opened, unopened := 0, 0
	openErr := ""
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
open:
	for i := 0; i < p.o.count; i++ {
		if i > 0 && i%p.o.perMs == 0 {
			<-tick.C
		}
		p.setStage(fmt.Sprintf("opening stream %d of %d", i+1, p.o.count))
		s, err := p.sess.OpenStream()
		if err != nil {
			unopened = p.o.count - i
			switch {
			case err == yamux.ErrRemoteGoAway:
				openErr = "goaway"
			case err == yamux.ErrSessionShutdown:
				openErr = "closed"
			default:
				openErr = "error"
				p.fail("open", fmt.Sprintf("stream #%d: %v", i, err))
			}
			break open
		}
		opened++
		wg.Add(1)
		go func(i int, s *yamux.Stream) {
			defer wg.Done()
			err := p.exchange(s, p.o.size, payload(p.o.seed, i), false)
			kind := streamOutcome(s, err)
			mu.Lock()
			counts[kind]++
			mu.Unlock()
			line := []string{"STREAM", kv("index", i), kv("id", s.StreamID()), kv("outcome", kind),
				kv("acked", p.tap.acked(s.StreamID()))}
			if err != nil {
				line = append(line, kv("error", err.Error()))
			}
			out.line(strings.Join(line, " "))
			if kind == "session" || kind == "error" || kind == "timeout" {
				p.fail(map[string]string{"session": "session-ended", "error": "stream-error", "timeout": "timeout"}[kind],
					fmt.Sprintf("stream %d (#%d): %v", s.StreamID(), i, err))
			}
		}(i, s)
	}
	p.waitWG(&wg, "the streams' outcomes")
	if openErr == "closed" {
		// Closing is fine only after a Go Away: the peer said it would.
		select {
		case <-p.tap.goAwayCh:
		default:
			p.fail("session-ended", "the session ended with no Go Away from the peer")
		}
	}
	p.waitEnd("the peer to close the session")
	st := p.tap.snapshot()
	mu.Lock()
	defer mu.Unlock()
	p.done(kv("opened", opened), kv("echoed", counts["echoed"]), kv("reset", counts["reset"]),
		kv("session", counts["session"]), kv("other", counts["error"]+counts["timeout"]),
		kv("unopened", unopened), kv("open_error", openErr), kv("goaway_code", st.goAwayCodeIn))
}

// fill writes -size bytes to each of -count streams (accepted or opened, by role) and never reads:
// the writes block on the peer's window, and the test freezes this process (SIGSTOP) while the peer
// has paused reading. Unfrozen, the run ends when the peer ends the session.
func (p *peer) fill() {
	var written atomic.Int64
	var streams atomic.Int64
	write := func(i int, s *yamux.Stream) {
		s.SetDeadline(p.deadline)
		n := int64(0)
		buf := make([]byte, 64<<10)
		gen := payload(p.o.seed, i)
		for n < p.o.size {
			gen.Read(buf)
			k, err := s.Write(buf[:min64(int64(len(buf)), p.o.size-n)])
			n += int64(k)
			written.Add(int64(k))
			if err != nil {
				return // the peer ended the session: the test is over
			}
		}
	}
	if p.o.role == "accept" {
		p.startAccept(func(s *yamux.Stream) {
			i := int(streams.Add(1)) - 1
			if i >= p.o.count {
				p.fail("unexpected-stream", fmt.Sprintf("stream %d beyond -count %d", s.StreamID(), p.o.count))
				return
			}
			write(i, s)
		})
	} else {
		p.startAccept(nil)
		for i := 0; i < p.o.count; i++ {
			s, err := p.sess.OpenStream()
			if err != nil {
				p.fail("open", fmt.Sprintf("stream #%d: %v", i, err))
				break
			}
			streams.Add(1)
			p.handlers.Add(1)
			go func(i int, s *yamux.Stream) { defer p.handlers.Done(); write(i, s) }(i, s)
		}
	}
	p.setStage("the peer to end the session")
	select {
	case <-p.endCh:
	case <-p.expired:
		p.fail("timeout", "waiting for the peer to end the session")
	}
	p.done(kv("streams", streams.Load()), kv("written", written.Load()))
}

func min64(a, b int64) int64 {
	if a < b {
		return a
	}
	return b
}

// lateAccept waits until -count FINs have come in, then -accept-delay more (for yamux to handle what the tap
// saw), before it accepts -count streams, so that each stream's request and the dialler's FIN have arrived
// before its application takes it, however late the dialler starts. This yamux then sends no ACK for it: the
// stream is already RemoteClose, and the ACK flag goes only on a frame sent while it is SYNReceived (its
// first reply acknowledges it). Each request is read to its EOF. With -reply-after 0 it then shuts down
// without replying, as a server stopping with requests in hand: GoAway(), a moment, Close(). Otherwise each
// stream gets, after -reply-after, the reply "took N" (N: the request's bytes) and a FIN, and the peer is
// expected to close the session.
func (p *peer) lateAccept() {
	p.setStage("the requests' FINs")
	for p.tap.snapshot().finIn < p.o.count && time.Now().Before(p.deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	p.setStage("the accept delay")
	time.Sleep(p.o.acceptDelay)
	var took, replied atomic.Int64
	for i := 0; i < p.o.count; i++ {
		p.setStage(fmt.Sprintf("accepting stream %d of %d", i+1, p.o.count))
		s, err := p.sess.AcceptStream()
		if err != nil {
			p.fail("accept", fmt.Sprintf("stream %d of %d: %v", i+1, p.o.count, err))
			break
		}
		s.SetDeadline(p.deadline)
		body, err := io.ReadAll(s)
		if err != nil {
			p.fail("read", fmt.Sprintf("stream %d: %v", s.StreamID(), err))
			continue
		}
		took.Add(1)
		out.line(strings.Join([]string{"STREAM", kv("id", s.StreamID()), kv("outcome", "took"),
			kv("bytes", len(body))}, " "))
		if p.o.replyAfter > 0 {
			p.handlers.Add(1)
			go func(s *yamux.Stream, n int) {
				defer p.handlers.Done()
				time.Sleep(p.o.replyAfter)
				if _, err := s.Write([]byte(fmt.Sprintf("took %d", n))); err != nil {
					p.fail("reply", fmt.Sprintf("stream %d: %v", s.StreamID(), err))
				} else {
					replied.Add(1)
				}
				s.Close()
			}(s, len(body))
		}
	}
	p.startAccept(nil) // no more streams expected; it watches for the session's end
	// The ACKs sent so far: none, if every stream was taken after its FIN (what the test needs to be about).
	acksBeforeReplies := p.tap.snapshot().ackOut
	if p.o.replyAfter > 0 {
		p.waitHandlers(time.Until(p.deadline))
		p.waitEnd("the peer to close the session")
	} else {
		if err := p.sess.GoAway(); err != nil {
			p.fail("goaway", err)
		}
		out.line("GOAWAY sent")
		time.Sleep(20 * time.Millisecond)
		p.closeSession()
	}
	p.done(kv("took", took.Load()), kv("replied", replied.Load()), kv("acks_before_replies", acksBeforeReplies))
}
