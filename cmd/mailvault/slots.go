package main

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// hostSlots bounds the connections of every account of a fleet run to one
// server (max_connections). Accounts take a lease of slots when they
// start and connect within it, so that a limit is never exceeded and no
// account waits for a slot while holding others (which could deadlock
// accounts waiting for each other).
type hostSlots struct {
	host string
	max  int           // 0: no limit
	free chan struct{} // one token per free slot (nil without a limit)
	// mu makes a release and the slots a waiting lease takes after its
	// first one atomic: a lease released whole is taken whole.
	mu sync.Mutex
	// open and peak count the connections open at once (what the limit
	// bounds), for the tests and the log.
	open, peak atomic.Int64
}

func newHostSlots(host string, max int) *hostSlots {
	h := &hostSlots{host: host, max: max}
	if max > 0 {
		h.free = make(chan struct{}, max)
		for range max {
			h.free <- struct{}{}
		}
	}
	return h
}

// lease takes up to want slots for one account: it waits for the first
// (an account holding none cannot block others), then takes what is free
// at once, at most fair (max_connections shared among the accounts that
// may run at once). It returns the slots taken.
func (h *hostSlots) lease(ctx context.Context, want, fair int) (*lease, error) {
	l := &lease{h: h}
	if h.free == nil {
		l.n = want
	} else {
		select {
		case <-h.free:
			l.n = 1
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		h.mu.Lock()
	take:
		for l.n < min(want, max(fair, 1)) {
			select {
			case <-h.free:
				l.n++
			default:
				break take
			}
		}
		h.mu.Unlock()
	}
	l.tokens = make(chan struct{}, l.n)
	for range l.n {
		l.tokens <- struct{}{}
	}
	return l, nil
}

// lease is an account's share of a server's connections: n slots, each
// used by at most one open connection at a time.
type lease struct {
	h      *hostSlots
	n      int
	tokens chan struct{}
	once   sync.Once
}

// release gives the slots back to the server. The account's connections
// must be closed.
func (l *lease) release() {
	l.once.Do(func() {
		if l.h.free == nil {
			return
		}
		// free holds every slot: these sends never block.
		l.h.mu.Lock()
		for range l.n {
			l.h.free <- struct{}{}
		}
		l.h.mu.Unlock()
	})
}

// dialer returns a mailconn.Config.DialContext that opens a connection
// only with a token of the lease, which the connection's Close gives back.
// Without a free token it fails at once: the engine then works with the
// connections it has.
func (l *lease) dialer(timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		select {
		case <-l.tokens:
		default:
			return nil, fmt.Errorf("all %d connections of this account's share of %s (max_connections) are in use", l.n, l.h.host)
		}
		d := net.Dialer{Timeout: timeout}
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			l.tokens <- struct{}{}
			return nil, err
		}
		n := l.h.open.Add(1)
		for p := l.h.peak.Load(); n > p && !l.h.peak.CompareAndSwap(p, n); p = l.h.peak.Load() {
		}
		return &slotConn{Conn: c, release: func() { l.h.open.Add(-1); l.tokens <- struct{}{} }}, nil
	}
}

// slotConn gives its token back once, when closed.
type slotConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *slotConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// limits are the slots of each server of a fleet run, by host name.
type limits struct {
	mu    sync.Mutex
	hosts map[string]*hostSlots
}

// of returns the slots of host, with max as its limit (0: none) the first
// time.
func (ls *limits) of(host string, max int) *hostSlots {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.hosts == nil {
		ls.hosts = map[string]*hostSlots{}
	}
	h := ls.hosts[host]
	if h == nil {
		h = newHostSlots(host, max)
		ls.hosts[host] = h
	}
	return h
}
