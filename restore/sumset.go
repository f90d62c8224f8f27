package restore

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/syndtr/goleveldb/leveldb"
)

// sumSetMem is how many sums a sumSet holds in memory before it moves
// them to disk (about 3 MiB with the map's overhead).
var sumSetMem = 50_000

// sumSet is a set of SHA-256 sums: in memory while small, then in a
// temporary leveldb store next to the target indexes' (removed by Close,
// or, after a kill, by the next index that spills). A failure of the
// store is kept (Err): a sum it could not answer for is never taken for
// "not there" silently.
//
// Adds are not safe for concurrent use; once sealed, has is (the label
// set is read by every worker).
type sumSet struct {
	mem   map[[32]byte]struct{}
	db    *leveldb.DB
	dir   string
	batch leveldb.Batch
	mu    sync.Mutex // err
	err   error
}

func newSumSet() *sumSet { return &sumSet{mem: map[[32]byte]struct{}{}} }

func (s *sumSet) fail(op string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = fmt.Errorf("%s the set of labelled messages: %w", op, err)
	}
}

// Err is the first failure of the store.
func (s *sumSet) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// seal writes what is pending: has may then be called concurrently.
func (s *sumSet) seal() { s.flush() }

func (s *sumSet) add(sum [32]byte) {
	if s.Err() != nil {
		return
	}
	if s.db == nil {
		s.mem[sum] = struct{}{}
		if len(s.mem) > sumSetMem {
			s.spill()
		}
		return
	}
	s.batch.Put(sum[:], nil)
	if s.batch.Len() >= indexBatch {
		s.flush()
	}
}

func (s *sumSet) spill() {
	tmp := os.TempDir()
	removeStaleIndexDirs(tmp)
	dir, err := os.MkdirTemp(tmp, indexDirPrefix+"*")
	if err != nil {
		s.fail("create", err)
		return
	}
	db, err := leveldb.OpenFile(dir, indexDBOptions())
	if err != nil {
		os.RemoveAll(dir)
		s.fail("create", err)
		return
	}
	s.dir, s.db = dir, db
	for sum := range s.mem {
		s.batch.Put(sum[:], nil)
		if s.batch.Len() >= indexBatch {
			s.flush()
		}
	}
	s.mem = nil
}

func (s *sumSet) flush() {
	if s.db == nil || s.batch.Len() == 0 {
		return
	}
	if err := s.db.Write(&s.batch, nil); err != nil {
		s.fail("write", err)
	}
	s.batch.Reset()
}

func (s *sumSet) has(sum [32]byte) bool {
	if s.db == nil {
		_, ok := s.mem[sum]
		return ok
	}
	s.flush()
	ok, err := s.db.Has(sum[:], nil)
	if err != nil && !errors.Is(err, leveldb.ErrNotFound) {
		s.fail("read", err)
	}
	return ok
}

func (s *sumSet) len() int {
	if s.db == nil {
		return len(s.mem)
	}
	return sumSetMem + 1 // spilled: more than sumSetMem
}

// Close removes the store.
func (s *sumSet) Close() {
	if s.db != nil {
		s.db.Close()
		os.RemoveAll(s.dir)
		s.db = nil
	}
	s.mem = nil
}
