// Package wanproxy is a delay line for TCP connections on loopback: every
// byte reaches the other side a fixed one-way delay after it was read, in
// both directions, so that a client on this machine sees a server that is
// far away (round trip 2×delay) without its throughput being capped (a
// proxy that slept before each read would cap it at one buffer per delay).
// An optional bandwidth cap per connection and direction serialises the
// bytes as a real link would.
//
// It exists to measure how a mail client's use of the protocol (round
// trips per message, synchronizing literals, pipelining) behaves against a
// server that is not on the same machine; `tc netem` is not available on
// every test machine. The benchmarks start it in-process (Start); the
// wanproxy command (./cmd/wanproxy) runs it on its own.
package wanproxy

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Options configure a Proxy.
type Options struct {
	// Target is the address connections are forwarded to.
	Target string
	// Delay is the one-way delay added in each direction.
	Delay time.Duration
	// Mbit caps each connection's throughput per direction, in Mbit/s;
	// 0 means no cap.
	Mbit float64
	// Listen is the address to listen on; "" means 127.0.0.1:0.
	Listen string
}

// Proxy is a running delay line.
type Proxy struct {
	// Addr is the address the proxy listens on.
	Addr string

	opts   Options
	ln     net.Listener
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// Start listens and forwards every accepted connection to opts.Target
// through the delay line, until Close.
func Start(opts Options) (*Proxy, error) {
	if opts.Target == "" {
		return nil, errors.New("wanproxy: no target address")
	}
	if opts.Delay < 0 || opts.Mbit < 0 {
		return nil, fmt.Errorf("wanproxy: negative delay %v or bandwidth %v", opts.Delay, opts.Mbit)
	}
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("wanproxy: listen: %w", err)
	}
	p := &Proxy{Addr: ln.Addr().String(), opts: opts, ln: ln, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Close stops listening, closes every connection and waits for the
// goroutines to end.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

// track registers c to be closed by Close; false once Close started.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(in) {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.untrack(in)
			out, err := net.Dial("tcp", p.opts.Target)
			if err != nil {
				return
			}
			if !p.track(out) {
				return
			}
			defer p.untrack(out)
			var both sync.WaitGroup
			both.Add(2)
			go func() { defer both.Done(); p.line(in, out) }()
			go func() { defer both.Done(); p.line(out, in) }()
			both.Wait()
		}()
	}
}

// chunk is what was read at one time, due on the other side at at.
type chunk struct {
	at   time.Time
	data []byte
}

// line copies src to dst, each chunk written Delay after it was read (and
// no earlier than the link, with a bandwidth cap, is free). When src ends
// the write side of dst is shut down after the last chunk, so that a
// half-close travels through the line like data.
func (p *Proxy) line(src, dst net.Conn) {
	q := make(chan chunk, 4096)
	go func() {
		defer close(q)
		for {
			buf := make([]byte, 64<<10)
			n, err := src.Read(buf)
			if n > 0 {
				q <- chunk{time.Now().Add(p.opts.Delay), buf[:n]}
			}
			if err != nil {
				return
			}
		}
	}()
	var busyUntil time.Time
	failed := false
	for ch := range q {
		if failed {
			continue // drain, so that the reader can end
		}
		at := ch.at
		if p.opts.Mbit > 0 {
			if busyUntil.After(at) {
				at = busyUntil
			}
			busyUntil = at.Add(time.Duration(float64(len(ch.data)*8) / (p.opts.Mbit * 1e6) * float64(time.Second)))
		}
		if d := time.Until(at); d > 0 {
			time.Sleep(d)
		}
		if _, err := dst.Write(ch.data); err != nil {
			failed = true
			src.Close() // stops the reader
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok && !failed {
		tc.CloseWrite()
	} else {
		dst.Close()
	}
}
