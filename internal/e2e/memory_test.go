package e2e

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/mailvault/mailvault/internal/corpus"
	"github.com/mailvault/mailvault/internal/dovecottest"
)

// memLimit is the peak RSS a backup may reach, whatever the mailbox.
const memLimit = 64 << 20

// largeOnly returns n messages of size bytes each.
func largeOnly(n, size int) []corpus.Message {
	var out []corpus.Message
	for _, m := range corpus.Generate(corpus.Options{Seed: 3, Messages: 1, Large: n, LargeSize: size}) {
		if len(m.Body) == size {
			out = append(out, m)
		}
	}
	return out
}

// smallOnly returns n ordinary messages (2–20 KB).
func smallOnly(n int) []corpus.Message {
	var out []corpus.Message
	for _, m := range corpus.Generate(corpus.Options{Seed: 5, Messages: n}) {
		if len(m.Body) >= corpus.MinSize && len(m.Body) <= corpus.MaxSize {
			out = append(out, m)
		}
	}
	return out
}

// TestPeakMemory checks that a backup's memory does not grow with the size
// of a message: one 50 MB message stays under memLimit.
func TestPeakMemory(t *testing.T) {
	t.Parallel()
	srv, _ := dovecot(t, largeOnly(1, 50<<20))
	vault := filepath.Join(t.TempDir(), "vault")
	r := peakRSS(t, append([]string{"backup"}, append(source(srv), vault)...)...)
	t.Logf("one 50 MB message: peak RSS %.1f MiB, %v", float64(r.maxRSS)/(1<<20), r.wall)
	if r.maxRSS > memLimit {
		t.Errorf("peak RSS %d MiB, want under %d MiB", r.maxRSS>>20, memLimit>>20)
	}
	mustRun(t, "verify", vault)
}

// BenchmarkBackup measures full-backup throughput and peak RSS of the
// mailvault process against a private Dovecot:
//
//	go test ./internal/e2e -run '^$' -bench Backup -benchtime 3x
func BenchmarkBackup(b *testing.B) {
	for _, bc := range []struct {
		name string
		msgs []corpus.Message
	}{
		{"one-50MB-message", largeOnly(1, 50<<20)},
		{"10000-small-messages", smallOnly(10000)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			srv, _ := dovecot(b, bc.msgs)
			var bytes int64
			for _, m := range bc.msgs {
				bytes += int64(len(m.Body))
			}
			var peak int64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				vault := filepath.Join(b.TempDir(), fmt.Sprint("vault", i))
				r := peakRSS(b, append([]string{"backup"}, append(source(srv), vault)...)...)
				peak = max(peak, r.maxRSS)
			}
			b.StopTimer()
			secs := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(float64(len(bc.msgs))/secs, "msgs/s")
			b.ReportMetric(float64(bytes)/(1<<20)/secs, "MiB/s")
			b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
			if peak > memLimit {
				b.Errorf("peak RSS %d MiB, want under %d MiB", peak>>20, memLimit>>20)
			}
		})
	}
}

// BenchmarkRestore measures restore throughput and peak RSS: a backup of
// the mailbox is restored to an empty account of another Dovecot.
//
//	go test ./internal/e2e -run '^$' -bench Restore -benchtime 3x
func BenchmarkRestore(b *testing.B) {
	for _, bc := range []struct {
		name string
		msgs []corpus.Message
	}{
		{"one-50MB-message", largeOnly(1, 50<<20)},
		{"10000-small-messages", smallOnly(10000)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			srv, _ := dovecot(b, bc.msgs)
			vault := filepath.Join(b.TempDir(), "vault")
			mustRun(b, append([]string{"backup"}, append(source(srv), vault)...)...)
			users := map[string]string{}
			for i := 0; i < 10; i++ {
				users[fmt.Sprint("r", i)] = "pw"
			}
			target := dovecottest.Start(b, dovecottest.Options{Users: users})
			var bytes int64
			for _, m := range bc.msgs {
				bytes += int64(len(m.Body))
			}
			var peak int64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r := peakRSS(b, "restore", vault, fmt.Sprintf("imaps://r%d@%s", i%10, target.IMAPSAddr), "--ca-file", target.CAFile)
				peak = max(peak, r.maxRSS)
			}
			b.StopTimer()
			secs := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(float64(len(bc.msgs))/secs, "msgs/s")
			b.ReportMetric(float64(bytes)/(1<<20)/secs, "MiB/s")
			b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
			if peak > memLimit {
				b.Errorf("peak RSS %d MiB, want under %d MiB", peak>>20, memLimit>>20)
			}
		})
	}
}
