package main

import (
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestLease(t *testing.T) {
	tests := []struct {
		name            string
		max, want, fair int
		got             int
	}{
		{"no limit", 0, 4, 4, 4},
		{"limit below want", 3, 4, 4, 3},
		{"fair share", 6, 4, 2, 2},
		{"fair share of zero", 2, 4, 0, 1},
		{"one wanted", 10, 1, 5, 1},
	}
	for _, tt := range tests {
		h := newHostSlots("h", tt.max)
		l, err := h.lease(context.Background(), tt.want, tt.fair)
		if err != nil || l.n != tt.got {
			t.Errorf("%s: lease(%d, %d) of %d slots = %d, %v; want %d", tt.name, tt.want, tt.fair, tt.max, l.n, err, tt.got)
		}
	}
}

// TestLeaseWaitsForTheFirstSlot: an account holding nothing waits for a
// slot; one freed by another account's release is taken.
func TestLeaseWaitsForTheFirstSlot(t *testing.T) {
	h := newHostSlots("h", 2)
	first, _ := h.lease(context.Background(), 4, 4)
	if first.n != 2 {
		t.Fatalf("first lease = %d, want 2", first.n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := h.lease(ctx, 1, 1); err == nil {
		t.Fatal("a lease was granted while every slot was taken")
	}
	got := make(chan int)
	go func() {
		l, err := h.lease(context.Background(), 4, 4)
		if err != nil {
			got <- -1
			return
		}
		got <- l.n
	}()
	time.Sleep(50 * time.Millisecond)
	first.release()
	first.release() // twice is once
	if n := <-got; n != 2 {
		t.Errorf("lease after release = %d, want 2", n)
	}
	if len(h.free) != 0 {
		t.Errorf("%d slots free after a double release, want 0", len(h.free))
	}
}

// TestLeaseDialer: a lease opens at most n connections at once; closing
// one gives its token back, once.
func TestLeaseDialer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	h := newHostSlots("h", 2)
	l, _ := h.lease(context.Background(), 2, 2)
	dial := l.dialer(time.Second)
	a, err := dial(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := dial(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dial(context.Background(), "tcp", ln.Addr().String()); err == nil || !strings.Contains(err.Error(), "max_connections") {
		t.Fatalf("third connection of a 2-slot lease: %v, want a refusal naming max_connections", err)
	}
	a.Close()
	a.Close()
	c, err := dial(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("connection after a close: %v", err)
	}
	if _, err := dial(context.Background(), "tcp", ln.Addr().String()); err == nil {
		t.Fatal("a closed connection gave its token back twice")
	}
	if _, err := dial(context.Background(), "tcp", "127.0.0.1:1"); err == nil {
		t.Fatal("dial to a closed port succeeded")
	}
	b.Close()
	c.Close()
	if p := h.peak.Load(); p != 2 {
		t.Errorf("peak = %d, want 2", p)
	}
	if o := h.open.Load(); o != 0 {
		t.Errorf("%d connections counted open after closing all", o)
	}
}

// TestLeasesNeverDeadlock: many accounts, each wanting several
// connections of a small server at once, all finish, and the server never
// has more than its limit open.
func TestLeasesNeverDeadlock(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); c.Read(make([]byte, 1)) }()
		}
	}()
	const limit = 3
	h := newHostSlots("h", limit)
	var wg sync.WaitGroup
	var failed atomic.Int32
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := h.lease(context.Background(), 4, 2)
			if err != nil {
				failed.Add(1)
				return
			}
			defer l.release()
			dial := l.dialer(time.Second)
			var conns []net.Conn
			for range 4 { // more than the lease: the extra ones are refused
				if c, err := dial(context.Background(), "tcp", ln.Addr().String()); err == nil {
					conns = append(conns, c)
				}
			}
			if len(conns) == 0 {
				failed.Add(1)
			}
			time.Sleep(5 * time.Millisecond)
			for _, c := range conns {
				c.Close()
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("accounts waiting for connections never finished")
	}
	if failed.Load() > 0 {
		t.Errorf("%d accounts got no connection", failed.Load())
	}
	if p := h.peak.Load(); p > limit {
		t.Errorf("%d connections open at once, limit %d", p, limit)
	}
}
