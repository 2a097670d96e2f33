// ws-yamux-peer: a hashicorp/yamux server behind a gorilla/websocket endpoint, both as Debian packages them,
// for muxwire's browser interop test (test/browser/go-websocket.test.ts). It listens on 127.0.0.1, prints
// "PORT <n>", and for every WebSocket at /mux runs a yamux server session over the socket's binary messages:
// every channel the page opens is echoed, and the Go side opens one channel of its own ("both dialling"),
// writes a greeting line on it, and expects the page to echo it back and half-close. It prints one
// "RESULT ok ..." or "RESULT fail ..." line per session and exits after -timeout.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hashicorp/yamux"
)

// wsConn makes a WebSocket a byte stream for yamux: reads concatenate binary messages, each write is one.
type wsConn struct {
	ws     *websocket.Conn
	reader io.Reader
	wmu    sync.Mutex
}

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.reader == nil {
			kind, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if kind != websocket.BinaryMessage {
				return 0, fmt.Errorf("unexpected message type %d", kind)
			}
			c.reader = r
		}
		n, err := c.reader.Read(p)
		if err == io.EOF {
			c.reader = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) Close() error {
	return c.ws.Close()
}

var upgrader = websocket.Upgrader{
	ReadBufferSize:  64 * 1024,
	WriteBufferSize: 64 * 1024,
	CheckOrigin:     func(*http.Request) bool { return true }, // the test page is served from another port
}

const greeting = "hello from Go over a WebSocket"

func serve(w http.ResponseWriter, r *http.Request) {
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		fmt.Printf("RESULT fail upgrade: %v\n", err)
		return
	}
	config := yamux.DefaultConfig()
	config.LogOutput = io.Discard
	session, err := yamux.Server(&wsConn{ws: ws}, config)
	if err != nil {
		fmt.Printf("RESULT fail session: %v\n", err)
		return
	}
	defer session.Close()

	pushed := make(chan error, 1)
	go func() {
		stream, err := session.OpenStream()
		if err != nil {
			pushed <- fmt.Errorf("open: %v", err)
			return
		}
		// Not closed before the echo: this hashicorp/yamux (2019) answers reads after its own Close with EOF.
		if _, err := stream.Write([]byte(greeting + "\n")); err != nil {
			pushed <- fmt.Errorf("write: %v", err)
			return
		}
		echoed, err := io.ReadAll(stream)
		if err != nil {
			pushed <- fmt.Errorf("read: %v", err)
			return
		}
		stream.Close()
		if !bytes.Equal(echoed, []byte(greeting+"\n")) {
			pushed <- fmt.Errorf("the page echoed %q", echoed)
			return
		}
		pushed <- nil
	}()

	echoed := 0
	var wg sync.WaitGroup
	var mu sync.Mutex
	for {
		stream, err := session.AcceptStream()
		if err != nil {
			break // the page closed the session
		}
		wg.Add(1)
		go func(stream *yamux.Stream) {
			defer wg.Done()
			defer stream.Close()
			if _, err := io.Copy(stream, stream); err == nil {
				mu.Lock()
				echoed++
				mu.Unlock()
			}
		}(stream)
	}
	wg.Wait()
	select {
	case err := <-pushed:
		if err != nil {
			fmt.Printf("RESULT fail pushed channel: %v\n", err)
			return
		}
	case <-time.After(5 * time.Second):
		fmt.Println("RESULT fail pushed channel: no echo")
		return
	}
	fmt.Printf("RESULT ok echoed=%d pushed=1\n", echoed)
}

func main() {
	timeout := flag.Duration("timeout", 60*time.Second, "exit after this long")
	flag.Parse()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("PORT %d\n", listener.Addr().(*net.TCPAddr).Port)
	go func() {
		time.Sleep(*timeout)
		fmt.Println("RESULT fail timeout")
		os.Exit(1)
	}()
	mux := http.NewServeMux()
	mux.HandleFunc("/mux", serve)
	_ = http.Serve(listener, mux)
}
