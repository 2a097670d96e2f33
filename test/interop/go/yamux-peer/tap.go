package main

import (
	"encoding/binary"
	"net"
	"sync"
)

// Frame types and flags of the yamux header (see /work/shared/docs/wire-yamux.md).
const (
	typeData   = 0
	typeWindow = 1
	typePing   = 2
	typeGoAway = 3

	flagSYN = 0x1
	flagACK = 0x2
	flagFIN = 0x4
	flagRST = 0x8

	headerLen = 12
)

// frameParser follows frame boundaries in one direction of the byte stream. It only observes:
// yamux itself validates what it receives.
type frameParser struct {
	hdr     [headerLen]byte
	n       int    // header bytes collected so far
	left    uint32 // payload bytes of the current Data frame still to pass
	onFrame func(typ byte, flags uint16, id, length uint32)
}

func (fp *frameParser) feed(b []byte) {
	for len(b) > 0 {
		if fp.left > 0 {
			k := uint32(len(b))
			if k > fp.left {
				k = fp.left
			}
			fp.left -= k
			b = b[k:]
			continue
		}
		k := copy(fp.hdr[fp.n:], b)
		fp.n += k
		b = b[k:]
		if fp.n < headerLen {
			return
		}
		fp.n = 0
		typ, flags := fp.hdr[1], binary.BigEndian.Uint16(fp.hdr[2:4])
		id, length := binary.BigEndian.Uint32(fp.hdr[4:8]), binary.BigEndian.Uint32(fp.hdr[8:12])
		if typ == typeData {
			fp.left = length
		}
		fp.onFrame(typ, flags, id, length)
	}
}

func (fp *frameParser) atBoundary() bool { return fp.n == 0 && fp.left == 0 }

// tapStats counts frames per direction; yamux exposes none of this.
type tapStats struct {
	framesIn, framesOut       int
	synIn, synOut             int
	ackOut                    int // stream frames this side sent with ACK
	rstIn, rstOut             int
	finIn, finOut             int
	pingReqIn, pingAckOut     int
	goAwayIn, goAwayOut       int
	goAwayCodeIn              uint32
	synInAfterGoAwayOut       int
	dataBytesIn, dataBytesOut int64
}

// tapConn sits between yamux and the TCP connection. It counts frames in both directions and can
// inject a raw frame (an RST, which this yamux cannot send on an established stream) at a frame
// boundary of the outgoing byte stream.
type tapConn struct {
	net.Conn
	in, out  frameParser
	wmu      sync.Mutex // serialises yamux's writes with injections
	pending  []byte     // injected bytes waiting for a frame boundary
	smu      sync.Mutex
	st       tapStats
	goAwayCh chan struct{} // closed on the first inbound Go Away
	goOnce   sync.Once
	ackedIn  map[uint32]bool // streams the peer acknowledged (ACK seen, alone or with RST)
}

func newTapConn(c net.Conn) *tapConn {
	t := &tapConn{Conn: c, goAwayCh: make(chan struct{}), ackedIn: map[uint32]bool{}}
	t.in.onFrame = t.inbound
	t.out.onFrame = t.outbound
	return t
}

func (t *tapConn) inbound(typ byte, flags uint16, id, length uint32) {
	t.smu.Lock()
	defer t.smu.Unlock()
	t.st.framesIn++
	switch typ {
	case typeData, typeWindow:
		if typ == typeData {
			t.st.dataBytesIn += int64(length)
		}
		if flags&flagSYN != 0 {
			t.st.synIn++
			if t.st.goAwayOut > 0 {
				t.st.synInAfterGoAwayOut++
			}
		}
		if flags&flagACK != 0 {
			t.ackedIn[id] = true
		}
		if flags&flagRST != 0 {
			t.st.rstIn++
		}
		if flags&flagFIN != 0 {
			t.st.finIn++
		}
	case typePing:
		if flags&flagSYN != 0 {
			t.st.pingReqIn++
		}
	case typeGoAway:
		t.st.goAwayIn++
		t.st.goAwayCodeIn = length
		t.goOnce.Do(func() { close(t.goAwayCh) })
	}
}

func (t *tapConn) outbound(typ byte, flags uint16, id, length uint32) {
	t.smu.Lock()
	defer t.smu.Unlock()
	t.st.framesOut++
	switch typ {
	case typeData, typeWindow:
		if typ == typeData {
			t.st.dataBytesOut += int64(length)
		}
		if flags&flagSYN != 0 {
			t.st.synOut++
		}
		if flags&flagACK != 0 {
			t.st.ackOut++
		}
		if flags&flagRST != 0 {
			t.st.rstOut++
		}
		if flags&flagFIN != 0 {
			t.st.finOut++
		}
	case typePing:
		if flags&flagACK != 0 {
			t.st.pingAckOut++
		}
	case typeGoAway:
		t.st.goAwayOut++
	}
}

// acked tells whether the peer acknowledged stream id (an ACK flag on any frame of it, RST included):
// on the wire, that is what tells a stream the peer's application took from one it refused.
func (t *tapConn) acked(id uint32) bool {
	t.smu.Lock()
	defer t.smu.Unlock()
	return t.ackedIn[id]
}

func (t *tapConn) snapshot() tapStats {
	t.smu.Lock()
	defer t.smu.Unlock()
	return t.st
}

// Read is only ever called by yamux's single receive goroutine.
func (t *tapConn) Read(b []byte) (int, error) {
	n, err := t.Conn.Read(b)
	t.in.feed(b[:n])
	return n, err
}

// Write is called by yamux's single send goroutine (a header, then the body, per frame).
func (t *tapConn) Write(b []byte) (int, error) {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	n, err := t.Conn.Write(b)
	t.out.feed(b[:n])
	if err == nil && len(t.pending) > 0 && t.out.atBoundary() {
		err = t.flushPending()
	}
	return n, err
}

func (t *tapConn) flushPending() error {
	p := t.pending
	t.pending = nil
	n, err := t.Conn.Write(p)
	t.out.feed(p[:n])
	return err
}

// injectRST sends a Window Update frame with RST for stream id, between two of yamux's frames.
func (t *tapConn) injectRST(id uint32) error {
	var f [headerLen]byte
	f[1] = typeWindow
	binary.BigEndian.PutUint16(f[2:4], flagRST)
	binary.BigEndian.PutUint32(f[4:8], id)
	t.wmu.Lock()
	defer t.wmu.Unlock()
	t.pending = append(t.pending, f[:]...)
	if t.out.atBoundary() {
		return t.flushPending()
	}
	return nil // yamux is mid-frame; its next Write completes the frame and flushes ours
}
