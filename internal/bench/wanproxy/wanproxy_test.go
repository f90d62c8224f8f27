package wanproxy

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"testing"
	"time"
)

// echoServer echoes every connection until the client half-closes it.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func start(t *testing.T, opts Options) *Proxy {
	t.Helper()
	p, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// TestRoundTrip: a small exchange takes about two delays, and the bytes
// arrive unchanged.
func TestRoundTrip(t *testing.T) {
	const delay = 20 * time.Millisecond
	p := start(t, Options{Target: echoServer(t), Delay: delay})
	c, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 5)
	fastest := time.Hour // the least disturbed by a loaded machine
	for i := 0; i < 3; i++ {
		start := time.Now()
		if _, err := c.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
		rtt := time.Since(start)
		if string(buf) != "hello" {
			t.Fatalf("echo = %q", buf)
		}
		if rtt < 2*delay {
			t.Errorf("round trip %v, want at least %v", rtt, 2*delay)
		}
		fastest = min(fastest, rtt)
	}
	if fastest > 2*delay+100*time.Millisecond {
		t.Errorf("fastest round trip %v, want about %v", fastest, 2*delay)
	}
}

// TestThroughputNotCapped: without -mbit, a stream of many buffers takes
// about one delay more than on loopback, not one delay per buffer; a
// half-close travels through, and every byte arrives in order.
func TestThroughputNotCapped(t *testing.T) {
	const delay = 50 * time.Millisecond
	p := start(t, Options{Target: echoServer(t), Delay: delay})
	c, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	data := make([]byte, 16<<20) // 256 buffers of 64 KiB
	rand.Read(data)
	start := time.Now()
	go func() {
		c.Write(data)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("echoed %d bytes, not the %d sent", len(got), len(data))
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("16 MiB through a %v delay line took %v: throughput is capped", delay, d)
	}
}

// TestBandwidthCap: with Mbit set, 1 MB takes about its serialisation time.
func TestBandwidthCap(t *testing.T) {
	p := start(t, Options{Target: echoServer(t), Delay: time.Millisecond, Mbit: 40})
	c, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	data := make([]byte, 1_000_000) // 8 Mbit: 0.2 s each way at 40 Mbit/s, overlapping
	start := time.Now()
	go func() {
		c.Write(data)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil || len(got) != len(data) {
		t.Fatalf("echoed %d bytes, %v", len(got), err)
	}
	if d := time.Since(start); d < 180*time.Millisecond {
		t.Errorf("1 MB at 40 Mbit/s took %v, want at least 0.2 s", d)
	}
}

func TestStartErrors(t *testing.T) {
	for _, opts := range []Options{{}, {Target: "127.0.0.1:1", Delay: -time.Second}, {Target: "127.0.0.1:1", Mbit: -1}} {
		if p, err := Start(opts); err == nil {
			p.Close()
			t.Errorf("Start(%+v) succeeded", opts)
		}
	}
}
