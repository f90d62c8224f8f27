package backup

import (
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Sets and lists of source keys that stay small however many keys they
// hold: IMAP keys ("UIDVALIDITY:UID") are kept as bits of 4096-UID
// chunks (a set) or as runs of consecutive UIDs (a list), about a bit or
// a few bytes per key; other keys (POP3 UIDLs, local names) as strings.

// imapKey parses a key of the form "UIDVALIDITY:UID" in canonical decimal.
func imapKey(key string) (v, u uint32, ok bool) {
	vs, us, found := strings.Cut(key, ":")
	if !found {
		return 0, 0, false
	}
	vv, ok1 := canonicalUint(vs)
	uu, ok2 := canonicalUint(us)
	return vv, uu, ok1 && ok2
}

func canonicalUint(s string) (uint32, bool) {
	if s == "" || len(s) > 10 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err == nil
}

func formatIMAPKey(v, u uint32) string {
	return strconv.FormatUint(uint64(v), 10) + ":" + strconv.FormatUint(uint64(u), 10)
}

const chunkBits = 4096

// keySet is a set of keys, safe for concurrent use.
type keySet struct {
	mu    sync.RWMutex
	uids  map[uint64]*[chunkBits / 64]uint64 // validity<<32 | uid/chunkBits
	other map[string]struct{}
	n     int
}

func newKeySet() *keySet { return &keySet{} }

func (s *keySet) add(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, u, ok := imapKey(key); ok {
		if s.uids == nil {
			s.uids = map[uint64]*[chunkBits / 64]uint64{}
		}
		c := s.uids[uint64(v)<<32|uint64(u/chunkBits)]
		if c == nil {
			c = new([chunkBits / 64]uint64)
			s.uids[uint64(v)<<32|uint64(u/chunkBits)] = c
		}
		bit := u % chunkBits
		if c[bit/64]&(1<<(bit%64)) == 0 {
			c[bit/64] |= 1 << (bit % 64)
			s.n++
		}
		return
	}
	if s.other == nil {
		s.other = map[string]struct{}{}
	}
	if _, ok := s.other[key]; !ok {
		s.other[key] = struct{}{}
		s.n++
	}
}

func (s *keySet) has(key string) bool {
	if s == nil {
		return false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.n == 0 {
		return false
	}
	if v, u, ok := imapKey(key); ok {
		c := s.uids[uint64(v)<<32|uint64(u/chunkBits)]
		bit := u % chunkBits
		return c != nil && c[bit/64]&(1<<(bit%64)) != 0
	}
	_, ok := s.other[key]
	return ok
}

func (s *keySet) len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.n
}

// each calls fn with every key: IMAP keys in key order, then the others
// in byte order.
func (s *keySet) each(fn func(key string) error) error {
	s.mu.RLock()
	chunks := make([]uint64, 0, len(s.uids))
	for c := range s.uids {
		chunks = append(chunks, c)
	}
	others := make([]string, 0, len(s.other))
	for k := range s.other {
		others = append(others, k)
	}
	s.mu.RUnlock()
	sort.Slice(chunks, func(i, j int) bool { return chunks[i] < chunks[j] })
	sort.Strings(others)
	for _, ck := range chunks {
		s.mu.RLock()
		c := *s.uids[ck]
		s.mu.RUnlock()
		v, base := uint32(ck>>32), uint32(ck)*chunkBits
		for w, bits := range c {
			for b := 0; bits != 0 && b < 64; b++ {
				if bits&(1<<b) != 0 {
					bits &^= 1 << b
					if err := fn(formatIMAPKey(v, base+uint32(w*64+b))); err != nil {
						return err
					}
				}
			}
		}
	}
	for _, k := range others {
		if err := fn(k); err != nil {
			return err
		}
	}
	return nil
}

// keyList is a list of keys in the order added: runs of consecutive IMAP
// UIDs, or strings once a key is not an IMAP key.
type keyList struct {
	runs []uidRun
	strs []string
	n    int
}

// uidRun is the keys at positions at … at+hi-lo: v:lo … v:hi.
type uidRun struct {
	v, lo, hi uint32
	at        int
}

func (l *keyList) len() int {
	if l == nil {
		return 0
	}
	return l.n
}

func (l *keyList) add(key string) {
	if l.strs == nil {
		if v, u, ok := imapKey(key); ok {
			if k := len(l.runs); k > 0 && l.runs[k-1].v == v && l.runs[k-1].hi != ^uint32(0) && l.runs[k-1].hi+1 == u {
				l.runs[k-1].hi++
			} else {
				l.runs = append(l.runs, uidRun{v: v, lo: u, hi: u, at: l.n})
			}
			l.n++
			return
		}
		// Not an IMAP key: the list becomes strings.
		l.strs = make([]string, 0, l.n+1)
		for _, r := range l.runs {
			for u := uint64(r.lo); u <= uint64(r.hi); u++ {
				l.strs = append(l.strs, formatIMAPKey(r.v, uint32(u)))
			}
		}
		l.runs = nil
	}
	l.strs = append(l.strs, key)
	l.n++
}

// slice returns the keys at positions i to j-1.
func (l *keyList) slice(i, j int) []string {
	if l.strs != nil {
		return l.strs[i:j]
	}
	out := make([]string, 0, j-i)
	k := sort.Search(len(l.runs), func(k int) bool { return l.runs[k].at+int(l.runs[k].hi-l.runs[k].lo) >= i })
	for pos := i; pos < j && k < len(l.runs); k++ {
		r := l.runs[k]
		for off := pos - r.at; pos < j && uint64(r.lo)+uint64(off) <= uint64(r.hi); off++ {
			out = append(out, formatIMAPKey(r.v, r.lo+uint32(off)))
			pos++
		}
	}
	return out
}

// sub returns the list of the keys at positions i to j-1.
func (l *keyList) sub(i, j int) *keyList {
	out := &keyList{}
	if l.strs != nil {
		out.strs, out.n = l.strs[i:j:j], j-i
		return out
	}
	for start := i; start < j; start += 4096 {
		for _, k := range l.slice(start, min(start+4096, j)) {
			out.add(k)
		}
	}
	return out
}

// each calls fn with every key in order.
func (l *keyList) each(fn func(key string) error) error {
	for start := 0; start < l.len(); start += 4096 {
		for _, k := range l.slice(start, min(start+4096, l.len())) {
			if err := fn(k); err != nil {
				return err
			}
		}
	}
	return nil
}
