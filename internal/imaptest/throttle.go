package imaptest

import (
	"net"
	"sync"
	"testing"
	"time"
)

// Throttle starts a TCP proxy on 127.0.0.1 that forwards every connection
// to target and lets at most bytesPerSecond through in each direction of
// each connection: a slow link for tests of long transfers (TLS passes
// through untouched). It returns the proxy's address; t.Cleanup closes the
// listener and every connection.
func Throttle(t testing.TB, target string, bytesPerSecond int) string {
	t.Helper()
	if bytesPerSecond <= 0 {
		t.Fatalf("imaptest: Throttle needs a positive rate, not %d", bytesPerSecond)
	}
	ln := listen(t)
	p := &throttle{target: target, rate: bytesPerSecond, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept(ln)
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		p.closed = true
		for c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return ln.Addr().String()
}

type throttle struct {
	target string
	rate   int
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// track registers c to be closed at cleanup; false when cleanup started.
func (p *throttle) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *throttle) accept(ln net.Listener) {
	defer p.wg.Done()
	for {
		in, err := ln.Accept()
		if err != nil {
			return
		}
		if !p.track(in) {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			out, err := net.Dial("tcp", p.target)
			if err != nil {
				in.Close()
				return
			}
			if !p.track(out) {
				in.Close()
				return
			}
			var both sync.WaitGroup
			both.Add(2)
			go func() { defer both.Done(); p.pipe(out, in) }()
			go func() { defer both.Done(); p.pipe(in, out) }()
			both.Wait()
			in.Close()
			out.Close()
		}()
	}
}

// pipe copies src to dst at the proxy's rate, then closes both so that the
// other direction ends too.
func (p *throttle) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	chunk := max(1, p.rate/50) // about 20 ms of traffic at a time
	buf := make([]byte, chunk)
	var next time.Time // when the bytes sent so far have had their time
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
			// An idle link saves up no allowance.
			if now := time.Now(); next.Before(now) {
				next = now
			}
			next = next.Add(time.Duration(float64(n) / float64(p.rate) * float64(time.Second)))
			time.Sleep(time.Until(next))
		}
		if err != nil {
			return
		}
	}
}
