package restore

import (
	"crypto/sha256"
	"encoding/binary"
	"os"
	"testing"
)

// TestSumSetSpills: past sumSetMem sums the set is on disk (the memory a
// label restore holds no longer grows with the account) and answers the
// same; Close removes its store.
func TestSumSetSpills(t *testing.T) {
	old := sumSetMem
	sumSetMem = 100
	defer func() { sumSetMem = old }()
	t.Setenv("TMPDIR", t.TempDir())
	sum := func(i int) [32]byte {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(i))
		return sha256.Sum256(b[:])
	}
	s := newSumSet()
	for i := 0; i < 2500; i += 2 {
		s.add(sum(i))
	}
	s.seal()
	if s.db == nil || s.mem != nil {
		t.Fatalf("1,250 sums with a memory limit of 100: still in memory (%d)", len(s.mem))
	}
	for i := 0; i < 2500; i++ {
		if got, want := s.has(sum(i)), i%2 == 0; got != want {
			t.Fatalf("has(sum %d) = %v, want %v", i, got, want)
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	dir := s.dir
	s.Close()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("Close left %s: %v", dir, err)
	}
}
