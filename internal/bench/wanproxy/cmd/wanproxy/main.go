// Command wanproxy forwards TCP connections through a delay line (see
// package wanproxy): every byte reaches the other side a fixed one-way
// delay after it was read, in both directions.
//
//	go run ./internal/bench/wanproxy/cmd/wanproxy -target 127.0.0.1:10143 -delay 15ms [-mbit 100]
//
// The first line on stderr is "wanproxy: listening on ADDR ...". It stops
// on SIGINT or SIGTERM, or after -max-runtime.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mailvault/mailvault/internal/bench/wanproxy"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "listen address")
	target := flag.String("target", "", "target host:port")
	delay := flag.Duration("delay", 15*time.Millisecond, "one-way delay each direction")
	mbit := flag.Float64("mbit", 0, "bandwidth cap per connection and direction, Mbit/s (0: none)")
	maxRun := flag.Duration("max-runtime", 30*time.Minute, "exit after this long")
	flag.Parse()
	p, err := wanproxy.Start(wanproxy.Options{Target: *target, Delay: *delay, Mbit: *mbit, Listen: *listen})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Fprintf(os.Stderr, "wanproxy: listening on %s, forwarding to %s, one-way delay %s, %g Mbit/s\n", p.Addr, *target, *delay, *mbit)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-sig:
	case <-time.After(*maxRun):
	}
	p.Close()
}
