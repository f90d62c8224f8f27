package restore

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/syndtr/goleveldb/leveldb"
)

// heldSize reports whether x holds a copy of id of exactly size not yet
// taken: a message without a date matches by rule 2 only.
func heldSize(x *Index, id string, size int64) bool {
	return x.Has(&Message{MessageID: id, Size: size, SHA256: "probe"})
}

// TestIndexCopiesOrder: many copies of one Message-ID, in both modes:
// an exact size takes the first copy added not yet taken, whatever its
// date; a tolerant match takes the closest size, the first added among
// equally close ones.
func TestIndexCopiesOrder(t *testing.T) {
	const n = 3000 // several blocks and tables of the disk store
	id := "<many@x>"
	date := func(i int) time.Time { return testDate.Add(time.Duration(i) * time.Second) }
	forEachIndexMode(t, func(t *testing.T) {
		var held []IndexEntry
		for i := range n {
			held = append(held, IndexEntry{MessageID: id, Size: 1000, InternalDate: date(i)})
		}
		x := newTestIndex(t, held)
		checkIndexMode(t, x)
		// The exact size takes the copies in the order they were added.
		const k = 1700
		for i := range k {
			if !x.Take(testMsg(id, 1000, "s", date(n-1))) {
				t.Fatalf("Take #%d of an exact size = false", i+1)
			}
		}
		// So the copies left are those of dates k..n-1: a tolerant match
		// (size 1010) finds the copy of date i only when i >= k.
		for _, i := range []int{0, 1, k - 1, k, k + 1, n - 1} {
			if got, want := x.Has(testMsg(id, 1010, "s", date(i))), i >= k; got != want {
				t.Errorf("Has(size 1010, date #%d) = %v, want %v", i, got, want)
			}
		}
		for i := k; i < n; i++ {
			if !x.Take(testMsg(id, 1010, "s", date(i))) {
				t.Fatalf("Take(size 1010, date #%d) = false", i)
			}
		}
		if x.Take(testMsg(id, 1000, "s", date(k))) {
			t.Error("Take after every copy was taken = true")
		}

		// The closest size first; among equally close sizes the copy
		// added first. The sizes added: 2000+s for s in 1..200, each twice
		// (an early and a late copy), and 2000-s for odd s.
		y := NewIndex()
		defer y.Close()
		var sizes []int64
		for s := int64(1); s <= 200; s++ {
			sizes = append(sizes, 2000+s)
			if s%2 == 1 {
				sizes = append(sizes, 2000-s)
			}
		}
		rand.New(rand.NewPCG(1, 2)).Shuffle(len(sizes), func(i, j int) { sizes[i], sizes[j] = sizes[j], sizes[i] })
		for _, s := range append(sizes, sizes...) {
			y.AddEntry(IndexEntry{MessageID: id, Size: s, InternalDate: testDate})
		}
		checkIndexMode(t, y)
		pos := map[int64]int{} // where each size was first added
		for i, s := range sizes {
			pos[s] = i
		}
		count := map[int64]int{}
		for _, s := range sizes {
			count[s] = 2
		}
		for step := 0; ; step++ {
			// The expected match of a message of size 2000: the smallest
			// distance, then the earliest first copy.
			// The copies of a size are taken first copy first; all first
			// copies were added before the second ones.
			next := func(s int64) int {
				if count[s] == 2 {
					return pos[s]
				}
				return len(sizes) + pos[s]
			}
			best := int64(-1)
			for s, c := range count {
				if c == 0 {
					continue
				}
				if best < 0 || abs(s-2000) < abs(best-2000) || abs(s-2000) == abs(best-2000) && next(s) < next(best) {
					best = s
				}
			}
			if best < 0 {
				if y.Take(testMsg(id, 2000, "s", testDate)) {
					t.Fatal("Take with no copy left = true")
				}
				break
			}
			if !y.Take(testMsg(id, 2000, "s", testDate)) {
				t.Fatalf("step %d: Take = false, want the copy of size %d", step, best)
			}
			count[best]--
			for _, s := range []int64{best, 2000 - (best - 2000)} {
				if got, want := heldSize(y, id, s), count[s] > 0; got != want {
					t.Fatalf("step %d: after taking a copy of size %d: held size %d = %v, want %v", step, best, s, got, want)
				}
			}
		}
	})
}

// TestIndexSameAsMemory: random entries and messages drawn from a few
// Message-IDs, hashes, sizes and dates, so that every rule and many
// copies meet; the disk modes answer every Has, Take and NeedsBodyHash as
// the memory mode does.
func TestIndexSameAsMemory(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	pick := func(vals ...string) string { return vals[r.IntN(len(vals))] }
	dates := []time.Time{{}, testDate, testWall, testDate.Add(time.Second), testDate.Add(500 * time.Millisecond), testDate.UTC()}
	entry := func() IndexEntry {
		e := IndexEntry{MessageID: pick("", "", "<a@x>", "<b@x>", "<c@x>"), Size: int64(1000 + r.IntN(12)*500), SHA256: pick("", "", "s1", "s2", "s3"), InternalDate: dates[r.IntN(len(dates))]}
		if r.IntN(2) == 0 {
			e.BodySHA256 = pick("b1", "b2")
		}
		return e
	}
	const n = 4000
	var held []IndexEntry
	for range n {
		held = append(held, entry())
	}
	type op struct {
		kind int // 0 Has, 1 Take, 2 NeedsBodyHash, 3 AddEntry
		m    Message
		e    IndexEntry
	}
	var ops []op
	for range 3 * n {
		e := entry()
		ops = append(ops, op{kind: r.IntN(20) % 4, m: Message{MessageID: e.MessageID, Size: e.Size + int64(r.IntN(3)-1)*int64(r.IntN(SizeTolerance+100)), SHA256: e.SHA256, InternalDate: e.InternalDate, BodySHA256: e.BodySHA256}, e: e})
	}
	run := func(t *testing.T) []bool {
		x := newTestIndex(t, held)
		var got []bool
		for _, o := range ops {
			m := o.m
			switch o.kind {
			case 0:
				got = append(got, x.Has(&m))
			case 1:
				got = append(got, x.Take(&m))
			case 2:
				got = append(got, x.NeedsBodyHash(&m))
			default:
				if r.IntN(50) == 0 {
					x.AddEntry(o.e)
				}
			}
		}
		if err := x.Err(); err != nil {
			t.Fatalf("Err() = %v", err)
		}
		return got
	}
	var want []bool
	forEachIndexMode(t, func(t *testing.T) {
		r = rand.New(rand.NewPCG(5, 6)) // the same entries added in each mode
		got := run(t)
		if want == nil {
			want = got
			trues := 0
			for _, g := range got {
				if g {
					trues++
				}
			}
			if trues < len(got)/10 || trues > len(got)*9/10 {
				t.Fatalf("%d of %d answers true: the random operations do not exercise the rules", trues, len(got))
			}
			return
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("operation #%d %+v = %v, in memory %v", i, ops[i], got[i], want[i])
			}
		}
	})
}

// TestIndexClose: Close removes the temporary directory; it may be
// called twice, on an index in memory and on nil.
func TestIndexClose(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	setIndexThreshold(t, 2)
	x := NewIndex()
	for i := range 3 {
		x.Add(fmt.Sprintf("<%d@x>", i), 10, "")
	}
	if x.dir == "" || !strings.HasPrefix(filepath.Base(x.dir), "mailvault-tindex-") || filepath.Dir(x.dir) != tmp {
		t.Fatalf("index of 3 entries over a threshold of 2 in %q, want a mailvault-tindex-* directory in %s", x.dir, tmp)
	}
	if _, err := os.Stat(x.dir); err != nil {
		t.Fatal(err)
	}
	if err := x.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if err := x.Close(); err != nil {
		t.Fatalf("second Close() = %v", err)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Errorf("%s after Close holds %v", tmp, ents)
	}
	if x.Take(testMsg("<1@x>", 10, "s", testDate)) || x.Err() == nil {
		t.Errorf("Take after Close = true or no error: %v", x.Err())
	}
	m := NewIndex()
	m.Add("<a@x>", 10, "")
	if err := m.Close(); err != nil || m.Close() != nil {
		t.Errorf("Close() of an index in memory = %v", err)
	}
	var nilIndex *Index
	if err := nilIndex.Close(); err != nil {
		t.Errorf("(*Index)(nil).Close() = %v", err)
	}
}

// TestIndexDiskError: when the disk store cannot be made, the index says
// so (Err) and matches nothing, rather than report a message missing
// that the folder may hold.
func TestIndexDiskError(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", file) // no directory can be made in it
	setIndexThreshold(t, 1)
	x := NewIndex()
	defer x.Close()
	x.Add("<a@x>", 10, "")
	if x.Err() != nil || !x.Has(testMsg("<a@x>", 10, "s", testDate)) {
		t.Fatalf("index in memory: Err() = %v, or the message not held", x.Err())
	}
	x.Add("<b@x>", 10, "")
	if x.Err() == nil || !strings.Contains(x.Err().Error(), "index") {
		t.Fatalf("Err() after the store failed = %v, want an error naming the index", x.Err())
	}
	for _, m := range []*Message{testMsg("<a@x>", 10, "s", testDate), testMsg("<b@x>", 10, "s", testDate)} {
		if x.Has(m) || x.Take(m) {
			t.Errorf("Has or Take(%s) after an error = true", m.MessageID)
		}
	}
	if x.NeedsBodyHash(&Message{SHA256: "s", InternalDate: testDate}) {
		t.Error("NeedsBodyHash after an error = true")
	}
	if x.Len() != 2 {
		t.Errorf("Len() = %d, want 2", x.Len())
	}
}

// TestIndexStaleDirs: the directory of an index whose process was killed
// is removed by the next index that goes to disk, once it is an hour old
// and no process holds its store; a recent one, one in use and other
// files are left alone.
func TestIndexStaleDirs(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	setIndexThreshold(t, 0)
	old := time.Now().Add(-2 * time.Hour)
	mk := func(name string, open bool, mtime time.Time) *leveldb.DB {
		t.Helper()
		p := filepath.Join(tmp, name)
		db, err := leveldb.OpenFile(p, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Put([]byte("k"), []byte("v"), nil); err != nil {
			t.Fatal(err)
		}
		if !open {
			db.Close()
			db = nil
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		return db
	}
	mk("mailvault-tindex-killed", false, old)
	mk("mailvault-tindex-recent", false, time.Now().Add(-time.Minute))
	inUse := mk("mailvault-tindex-inuse", true, old)
	defer inUse.Close()
	mk("other-old", false, old)
	if err := os.WriteFile(filepath.Join(tmp, "mailvault-tindex-file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(tmp, "mailvault-tindex-file"), old, old); err != nil {
		t.Fatal(err)
	}
	x := NewIndex()
	x.Add("<a@x>", 1, "")
	if err := x.Err(); err != nil {
		t.Fatal(err)
	}
	own := filepath.Base(x.dir)
	var names []string
	ents, _ := os.ReadDir(tmp)
	for _, e := range ents {
		if e.Name() != own {
			names = append(names, e.Name())
		}
	}
	want := []string{"mailvault-tindex-file", "mailvault-tindex-inuse", "mailvault-tindex-recent", "other-old"}
	if fmt.Sprint(names) != fmt.Sprint(want) {
		t.Errorf("left in the temporary directory: %v, want %v", names, want)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
}

// indexHeapBound is the most Go heap an index of 300,000 entries may
// hold (measured after a GC, with the default threshold). Measured here
// (go 1.26, amd64, 2026-12): the whole index in memory (the code before
// the disk store) held 68.7 MB; with the disk store and goleveldb v1.0.0
// the peak was 4.4 MB, at the 20,000 entries kept in memory just before
// they move to disk, and 3.7 MB while on disk; with goleveldb
// v1.0.1-0.20220721030215 (which keeps a 2 MiB buffer for each table a
// compaction writes, and compacts in the background) 11.5–13.4 MB. The
// bound is about twice that, and a third of the index in memory.
const indexHeapBound = 24 << 20

// TestIndexMemoryBounded: an index of 300,000 entries keeps the Go heap
// under indexHeapBound, and every entry is found and taken once.
func TestIndexMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("builds an index of 300,000 entries (-short)")
	}
	t.Setenv("TMPDIR", t.TempDir())
	const n = 300_000
	entry := func(i int) IndexEntry {
		return IndexEntry{MessageID: fmt.Sprintf("<%016x.%d@mail.example.com>", uint64(i)*0x9e3779b97f4a7c15, i), Size: int64(1000 + i%5000), InternalDate: testDate.Add(time.Duration(i) * time.Second)}
	}
	var peak uint64
	sample := func() {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapAlloc)
	}
	sample()
	base := peak
	x := NewIndex()
	defer x.Close()
	for i := range n {
		x.AddEntry(entry(i))
		if i%5_000 == 0 || i == IndexMemoryEntries-1 {
			sample()
		}
	}
	sample()
	if err := x.Err(); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		e := entry(i)
		if !x.Take(&Message{MessageID: e.MessageID, Size: e.Size, SHA256: "s", InternalDate: e.InternalDate}) {
			t.Fatalf("Take of entry %d = false (Err %v)", i, x.Err())
		}
		if i%25_000 == 0 {
			sample()
		}
	}
	sample()
	e := entry(7)
	if x.Take(&Message{MessageID: e.MessageID, Size: e.Size, SHA256: "s", InternalDate: e.InternalDate}) {
		t.Error("Take of an entry taken already = true")
	}
	t.Logf("heap peak above the start: %.1f MB", float64(peak-base)/(1<<20))
	if peak-base > indexHeapBound {
		t.Errorf("heap peak above the start = %.1f MB, want at most %.1f MB", float64(peak-base)/(1<<20), float64(indexHeapBound)/(1<<20))
	}
}

// BenchmarkIndexDisk: Add and Take of 1,000,000 entries (the default
// threshold: the first 20,000 in memory, then all on disk), as
// entries/s. Run with -benchtime=1x.
func BenchmarkIndexDisk(b *testing.B) {
	b.Setenv("TMPDIR", b.TempDir())
	const n = 1_000_000
	entry := func(i int) IndexEntry {
		return IndexEntry{MessageID: fmt.Sprintf("<%016x.%d@mail.example.com>", uint64(i)*0x9e3779b97f4a7c15, i), Size: int64(1000 + i%5000), InternalDate: testDate.Add(time.Duration(i) * time.Second)}
	}
	var addTime, takeTime time.Duration
	for b.Loop() {
		x := NewIndex()
		start := time.Now()
		for i := range n {
			x.AddEntry(entry(i))
		}
		addTime += time.Since(start)
		start = time.Now()
		// The archive's order is not the target's: take in another order.
		for j := range n {
			i := (j * 7919) % n
			e := entry(i)
			if !x.Take(&Message{MessageID: e.MessageID, Size: e.Size, SHA256: fmt.Sprintf("%064x", i), InternalDate: e.InternalDate}) {
				b.Fatalf("Take of entry %d = false (Err %v)", i, x.Err())
			}
		}
		takeTime += time.Since(start)
		if err := x.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/addTime.Seconds(), "adds/s")
	b.ReportMetric(float64(n*b.N)/takeTime.Seconds(), "takes/s")
}
