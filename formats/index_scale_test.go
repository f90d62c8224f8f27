package formats

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Scale measurements of the manifest codec and the state index. Not a
// timed test: run by hand, in a process of its own so that its peak RSS
// is its own:
//
//	go test -c -o /tmp/formats.test ./formats
//	MAILVAULT_INDEX_SCALE=1000000 /tmp/formats.test -test.run TestIndexScale -test.v
//
// It reports, per phase, wall time, CPU time, messages per second, the
// largest Go heap seen and the process's peak RSS so far.

type phaseClock struct {
	t     testing.TB
	n     int
	start time.Time
	cpu   time.Duration
	peak  uint64
	stop  chan struct{}
	done  chan struct{}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func maxRSS() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Maxrss // KiB on Linux
}

// startPhase samples the heap every 20 ms until the phase ends.
func startPhase(t testing.TB, n int) *phaseClock {
	runtime.GC()
	p := &phaseClock{t: t, n: n, start: time.Now(), cpu: cpuTime(), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			p.peak = max(p.peak, ms.HeapInuse)
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return p
}

func (p *phaseClock) end(what string) {
	close(p.stop)
	<-p.done
	wall, cpu := time.Since(p.start), cpuTime()-p.cpu
	p.t.Logf("%-46s %9d msgs %8.2f s wall %8.2f s cpu %9.0f msgs/s(cpu) heap peak %5.1f MiB, process peak RSS %5.1f MiB",
		what, p.n, wall.Seconds(), cpu.Seconds(), float64(p.n)/cpu.Seconds(), float64(p.peak)/(1<<20), float64(maxRSS())/1024)
}

func TestIndexScale(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("MAILVAULT_INDEX_SCALE"))
	if n <= 0 {
		t.Skip("set MAILVAULT_INDEX_SCALE=N to measure the index with N messages in one folder")
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(32 << 20)
	}
	a, err := Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	seg := "folders/INBOX/00000001-1a2b3c4d.mbox.zst"
	g := Segment{Path: seg, Size: 100, SHA256: fmt.Sprintf("%064d", 0), USize: 1 << 50, Records: n, Frames: [][2]int64{{0, 0}}}

	// 1. A first run's delta file, written streaming.
	p := startPhase(t, n)
	w, err := a.NewDelta("INBOX")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		m := scaleMessage(i, seg)
		if err := w.Add(&m, true); err != nil {
			t.Fatal(err)
		}
	}
	d, err := w.Commit(1, "1a2b3c4d")
	if err != nil {
		t.Fatal(err)
	}
	d.Event = EventCreated
	h1 := &Header{Snapshot: Snapshot{ID: "1a2b3c4d", Seq: 1, Status: StatusComplete, Segments: []Segment{g},
		Folders: []Folder{{Name: "INBOX", Dir: "INBOX", UIDValidity: 1700000000, UIDNext: uint32(n + 1), Messages: uint32(n), Status: FolderOK}}}, Deltas: []Delta{d}}
	if err := a.CommitHeader(h1); err != nil {
		t.Fatal(err)
	}
	p.end("write delta file (first run)")
	t.Logf("delta file: %.1f MiB for %d records", float64(d.Size)/(1<<20), n)

	// 2. The writer's index: built from the manifest, with the hash index.
	p = startPhase(t, n)
	ix, err := a.OpenIndex(IndexOptions{Dedup: true})
	if err != nil {
		t.Fatal(err)
	}
	p.end("build index from manifests (first run)")
	logDirSize(t, ix.dir)

	// 3. Merge-join scan of the folder in key order.
	f := ix.Folder("INBOX")
	p = startPhase(t, n)
	mi := ix.Messages(f.ID, false)
	count := 0
	for m := mi.Next(); m != nil; m = mi.Next() {
		count++
	}
	mi.Release()
	if count != n {
		t.Fatalf("scanned %d", count)
	}
	p.end("scan folder in key order")

	// 4. Dedup lookups: every content, in random order, and as many misses.
	r := rand.New(rand.NewSource(1))
	lookups := min(n, 200000)
	p = startPhase(t, 2*lookups)
	for i := 0; i < lookups; i++ {
		m := scaleMessage(r.Intn(n), seg)
		got, err := ix.ByHash(f.ID, m.SHA256)
		if err != nil || got == nil {
			t.Fatalf("ByHash = %v, %v", got, err)
		}
		miss := scaleMessage(n+i, seg)
		if got, _ := ix.ByHash(f.ID, miss.SHA256); got != nil {
			t.Fatal("hit for a new content")
		}
	}
	p.end("ByHash (half hits, half misses)")

	// 5. An incremental run: 10 % new, 1 % flag changes, 1 % gone.
	inc := n / 10
	p = startPhase(t, inc+n/50)
	w, err = a.NewDelta("INBOX")
	if err != nil {
		t.Fatal(err)
	}
	seg2 := "folders/INBOX/00000002-5e6f7a8b.mbox.zst"
	for i := 0; i < n/100; i++ {
		k := scaleMessage(r.Intn(n), seg).Key
		w.Flags(k, []string{`\Answered`, `\Seen`})
	}
	for i := 0; i < n/100; i++ {
		w.Gone(scaleMessage(i*97%n, seg).Key)
	}
	for i := n; i < n+inc; i++ {
		m := scaleMessage(i, seg2)
		m.Off = int64(i-n) * 3000
		w.Add(&m, true)
	}
	d2, err := w.Commit(2, "5e6f7a8b")
	if err != nil {
		t.Fatal(err)
	}
	g2 := g
	g2.Path = seg2
	h2 := &Header{Snapshot: Snapshot{ID: "5e6f7a8b", Seq: 2, Parent: "1a2b3c4d", Status: StatusComplete, Segments: []Segment{g2},
		Folders: h1.Folders}, Deltas: []Delta{d2}}
	if err := a.CommitHeader(h2); err != nil {
		t.Fatal(err)
	}
	files, _ := a.ListSnapshots()
	mr, err := a.OpenManifest(files[1])
	if err != nil {
		t.Fatal(err)
	}
	if err := ix.Apply(mr); err != nil {
		t.Fatal(err)
	}
	mr.Close()
	p.end("write + apply an incremental run (10 % new)")
	ix.Close()

	// 6. A no-change start: open the index, check it, read a folder's meta.
	p = startPhase(t, 0)
	ix, err = a.OpenIndex(IndexOptions{Dedup: true})
	if err != nil {
		t.Fatal(err)
	}
	if ix.Folder("INBOX").Present != int64(n+inc-n/100) {
		t.Fatalf("present %d", ix.Folder("INBOX").Present)
	}
	ix.Close()
	p.end("open the index (no-change run start)")

	// 7. A reader's temporary index of the first snapshot.
	p = startPhase(t, n)
	rx, err := a.ReadIndex(1)
	if err != nil {
		t.Fatal(err)
	}
	if !rx.Temporary() {
		t.Fatal("not temporary")
	}
	rx.Close()
	p.end("temporary index of snapshot 1 (reader)")

	// 8. The same from a version 1 manifest (an archive of today).
	b, err := Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p = startPhase(t, n)
	f1, err := os.Create(b.Root + "/snapshots/00000001-1a2b3c4d.json")
	if err != nil {
		t.Fatal(err)
	}
	s1 := &h1.Snapshot
	s1.Version = 1
	if err := writeV1Streaming(f1, s1, n, seg); err != nil {
		t.Fatal(err)
	}
	f1.Close()
	p.end("write a version 1 manifest (test helper)")
	p = startPhase(t, n)
	rx, err = b.ReadIndex(0)
	if err != nil {
		t.Fatal(err)
	}
	rx.Close()
	p.end("temporary index from a version 1 manifest")
}

// writeV1Streaming writes a version 1 manifest with n generated messages
// in one change, as WriteSnapshot writes it, without holding them.
func writeV1Streaming(w io.Writer, s *Snapshot, n int, seg string) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	h := sha256.New()
	body := io.MultiWriter(bw, h)
	fmt.Fprintf(bw, `{"mailvault_manifest":1,"snapshot":`)
	head := *s
	head.Changes = nil
	b, err := json.Marshal(&head)
	if err != nil {
		return err
	}
	body.Write(b[:len(b)-1])
	io.WriteString(body, `,"changes":[{"folder":"INBOX","event":"created","added":[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			io.WriteString(body, ",")
		}
		m := scaleMessage(i, seg)
		mb, err := json.Marshal(&m)
		if err != nil {
			return err
		}
		body.Write(mb)
	}
	io.WriteString(body, "]}]}")
	fmt.Fprintf(bw, `,"sha256":"%s"}`, hex.EncodeToString(h.Sum(nil)))
	return bw.Flush()
}

func logDirSize(t testing.TB, dir string) {
	var total int64
	var files int
	filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			if fi, err := e.Info(); err == nil {
				total += fi.Size()
				files++
			}
		}
		return nil
	})
	t.Logf("index directory: %.1f MiB in %d files", float64(total)/(1<<20), files)
}
