package backup

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"sync/atomic"
	"time"

	"github.com/mailvault/mailvault/formats"
	"github.com/mailvault/mailvault/internal/connerr"
	"github.com/mailvault/mailvault/internal/msghdr"
)

// Storing: one fetched message into a writer (or, when the folder holds
// its bytes already, as a reference to them), and the one way a writer's
// messages reach the folder's delta: writer.commit.

// fetcher stores the messages one connection fetches for one folder: the
// folder's worker has one, and so has each part of a big folder. Only the
// goroutine fetching uses it.
type fetcher struct {
	ix     *formats.Index
	name   string        // the folder's name, for progress events
	dir    string        // the folder's directory in the archive
	partNo *atomic.Int64 // writer part numbers handed out, shared by the folder's fetchers
	out    *writer       // the open writer
	// known tells the keys on the source the folder holds: archived, or
	// added by this fetcher.
	known *knownMessages
	// archive is the archive's folders (their ids in the state index)
	// under this name and, when renamed, the old one: their bytes are not
	// stored again.
	archive []uint32
	// poison counts, per key, the connections lost while that message was
	// read: a message that breaks the connection every time is left out
	// (and reported) so that the rest of the folder is still backed up.
	poison map[string]int
	// job is the folder's; deferred takes the messages whose bytes
	// another writer of the run is storing (account.go): the folder's, or
	// for a part's fetcher the part's, handed to the folder with its
	// writers.
	job      *folderJob
	deferred *[]deferredMsg
}

func (f *fetcher) poisoned() bool {
	for _, n := range f.poison {
		if n >= 2 {
			return true
		}
	}
	return false
}

// location is where a message's bytes are stored, and the key it was
// stored for; flags, when known, are that message's current flags (a
// Maildir file's name shows them: where to find it, EndRecordLinked).
type location struct {
	seg   string
	off   int64
	key   string
	flags []string
}

// duplicate returns where the bytes with SHA-256 sum are stored already:
// by this fetcher's open writer, by the folder's committed writers in this
// run (on disk: Index.RunHash), else in the archive's folder. present
// tells whether the message stored with them is on the source now.
func (f *fetcher) duplicate(sum string) (dup *location, present bool, err error) {
	if l, ok := f.out.hashes[sum]; ok {
		return &l, f.known.has(l.key), nil
	}
	rl, err := f.ix.RunHash(f.dir, sum)
	if err != nil {
		return nil, false, err
	}
	if rl != nil {
		return &location{seg: rl.Seg, off: rl.Off, key: rl.Key}, f.known.has(rl.Key), nil
	}
	for _, fid := range f.archive {
		d, err := f.ix.ByHash(fid, sum)
		if err != nil {
			return nil, false, err
		}
		if d != nil {
			return &location{seg: d.Seg, off: d.Off, key: d.Key, flags: d.Flags}, !d.Gone() && f.known.lookup(d.Key) != nil, nil
		}
	}
	return nil, false, nil
}

// addedMessage is a message recorded through a writer; stored tells that
// the writer stored its bytes (else it is a duplicate).
type addedMessage struct {
	formats.Message
	stored bool
}

// writerMessages bounds the messages one writer holds before it is
// committed (a new writer, a new segment, follows): what it holds in
// memory until then does not grow with the folder.
var writerMessages = 2000

// writer is an open record writer of a folder (the folder's own, or a
// part's) with the messages recorded through it: the folder's delta gets
// them when it commits.
type writer struct {
	rw     formats.RecordWriter // nil until a message comes
	part   int                  // the part number its files are named with
	added  []addedMessage       // recorded, in order, not yet committed
	hashes map[string]location  // what it stored, by SHA-256
	// since is when its oldest message not yet committed was recorded
	// (zero: none); stored and bytes count the records it holds.
	since  time.Time
	stored int
	bytes  int64
	// dedup holds claims of the writer on the bytes it stores (account.go);
	// wanted asks the fetcher using it to commit it at the next message:
	// a folder waits for bytes it holds.
	dedup  *accountDedup
	wanted atomic.Bool
}

// full reports whether the writer holds writerMessages messages: it must
// be committed.
func (w *writer) full() bool { return len(w.added) >= writerMessages }

func (w *writer) records() int {
	if w.rw == nil {
		return 0
	}
	return w.rw.Records()
}

// abort discards what the writer holds that is not committed.
func (w *writer) abort() {
	if w.rw != nil {
		w.rw.Abort()
		w.rw = nil
	}
	if w.dedup != nil {
		w.dedup.release(w, w.hashes) // not stored after all
	}
	w.hashes = nil
}

// flushWanted tells whether the writer of folder j must be committed
// before the next message, and with a checkpoint: Options.Checkpoint
// (flushDue); or another folder waits for bytes the writer holds
// (wanted), or for a segment of j to be committed by a checkpoint
// (folderJob.checkpointWanted).
func (r *run) flushWanted(w *writer, j *folderJob) (commit, checkpoint bool) {
	checkpoint = r.flushDue(w) || j.checkpointWanted.Swap(false)
	return checkpoint || w.wanted.Load(), checkpoint
}

// writerCommit is what a writer's commit hands to its folder: the segment it
// wrote (nil when the storage keeps none, or it held no record), the
// messages recorded through it, in order, what it stored by SHA-256, and
// the count and bytes of its records, which the result is credited with.
type writerCommit struct {
	w      *writer
	seg    *formats.Segment
	added  []addedMessage
	hashes map[string]location
	stored int
	bytes  int64
}

// commit is the one commit path of a folder's messages, for its own
// writer and for the writers of its parts alike. It commits the writer when
// it holds records and returns what it held; the next message starts a new
// writer, with the next part number. Without records (every message a
// duplicate of bytes stored before) it returns the messages and the writer
// stays open. If the commit fails it returns only the error: no snapshot
// names the messages the writer held.
func (w *writer) commit(partNo *atomic.Int64) (writerCommit, error) {
	c := writerCommit{w: w, added: w.added, hashes: w.hashes, stored: w.stored, bytes: w.bytes}
	w.added, w.hashes, w.stored, w.bytes, w.since = nil, nil, 0, 0, time.Time{}
	w.wanted.Store(false)
	if w.records() == 0 {
		return c, nil
	}
	seg, err := w.rw.Commit()
	if err != nil {
		if w.dedup != nil {
			w.dedup.release(w, c.hashes)
		}
		return writerCommit{}, storageErr(err)
	}
	c.seg, w.rw, w.part = seg, nil, int(partNo.Add(1))
	return c, nil
}

// store writes one fetched message through f's writer, or, when the
// folder already holds the same bytes, records it without storing them
// again.
func (w *worker) store(f *fetcher, m *Message) error {
	r := w.r
	out := f.out
	if out.rw == nil {
		rw, err := r.a.NewWriterPart(f.dir, r.runSeq, r.runID, out.part)
		if err != nil {
			return storageErr(err)
		}
		out.rw = rw
	}
	flags := formats.NormalizeFlags(m.Flags)
	if err := out.rw.BeginRecord(m.InternalDate, flags); err != nil {
		return storageErr(err)
	}
	if w.copyBuf == nil {
		w.copyBuf = make([]byte, 64<<10)
		w.hash = sha256.New()
	}
	h := w.hash
	h.Reset()
	w.hc.buf, w.hc.done = w.hc.buf[:0], false
	tee := &teeWriter{seg: out.rw, h: h, hc: &w.hc, hook: r.opts.hook}
	n, err := io.CopyBuffer(tee, m.Body, w.copyBuf)
	if err != nil {
		out.rw.AbortRecord()
		if tee.err != nil {
			return storageErr(fmt.Errorf("store %s: %w", m.Key, tee.err))
		}
		f.poison[m.Key]++
		return &connerr.Error{Err: fmt.Errorf("read %s: %w", m.Key, err)}
	}
	sum := hex.EncodeToString(h.Sum(nil))
	md := msghdr.Parse(w.hc.buf)
	msg := formats.Message{
		Key:          m.Key,
		SHA256:       sum,
		Size:         n,
		InternalDate: m.InternalDate.UTC(),
		Flags:        flags,
		MessageID:    md.MessageID,
		From:         md.From,
		To:           md.To,
		Subject:      md.Subject,
		Date:         md.Date,
	}
	// The same bytes already stored in this folder (in this run, before, or
	// under its old name) are not stored again.
	dup, present, err := f.duplicate(sum)
	if err != nil {
		out.rw.AbortRecord()
		return storageErr(fmt.Errorf("look up %s in the archive's state: %w", m.Key, err))
	}
	deferred, claimed := false, false
	var later *location // the copy deferred to, when committed
	if dup == nil && r.shared != nil {
		// Stored for another folder of the account, or being stored by
		// another writer (account.go).
		l, st, err := r.shared.lookup(sum, f)
		if err != nil {
			out.rw.AbortRecord()
			return storageErr(fmt.Errorf("look up %s in the archive's state: %w", m.Key, err))
		}
		switch st {
		case copyHere:
			dup, present = &l, true
		case copyLater:
			deferred = true
			if l.seg != "" {
				later = &l
			}
		default:
			claimed = r.shared.inRun
		}
	}
	var link *location // the copy the new file is a hard link to, if it can
	if dup != nil && !r.a.ReuseStored(present) {
		// The storage keeps a copy per message on the source (a Maildir
		// archive: one file each, so that a Maildir reader sees both), a
		// hard link to the bytes stored already where it can.
		if r.a.LinkStored() {
			link = dup
		}
		dup = nil
	}
	linked := false
	switch {
	case deferred:
		if err := out.rw.AbortRecord(); err != nil {
			return storageErr(err)
		}
		*f.deferred = append(*f.deferred, deferredMsg{msg: msg, loc: later})
	case dup != nil:
		if err := out.rw.AbortRecord(); err != nil {
			return storageErr(err)
		}
		msg.Seg, msg.Off = dup.seg, dup.off
	default:
		var loc string
		var off int64
		var linkErr error
		if lw, ok := out.rw.(formats.RecordLinker); ok && link != nil {
			loc, linkErr, err = lw.EndRecordLinked(formats.StoredCopy{Seg: link.seg, Size: n, Flags: link.flags})
			linked = err == nil && linkErr == nil
			if linkErr != nil {
				r.opts.Log.Debug("message stored in full, not as a hard link", "folder", f.name, "key", m.Key, "reason", linkErr)
			}
		} else {
			loc, off, err = out.rw.EndRecord()
		}
		if err != nil {
			if claimed {
				r.shared.releaseOne(out, sum)
			}
			return storageErr(fmt.Errorf("store %s: %w", m.Key, err))
		}
		msg.Seg, msg.Off = loc, off
		l := location{seg: loc, off: off, key: m.Key}
		if out.hashes == nil {
			out.hashes = map[string]location{}
		}
		out.hashes[sum] = l
		if claimed {
			r.shared.endedAt(out, sum, l)
		}
		if !linked {
			// A link stores no bytes: counted like a duplicate.
			out.stored++
			out.bytes += n
		}
	}
	if !deferred {
		out.added = append(out.added, addedMessage{Message: msg, stored: dup == nil && !linked})
	}
	f.known.add(m.Key)
	if out.since.IsZero() {
		out.since = r.opts.now()
	}
	r.opts.progress(Event{Kind: EventStored, Folder: f.name, Bytes: n})
	r.opts.hook("message-stored")
	return nil
}

// teeWriter feeds message bytes to the segment, the hash and the header
// capture. A write error of the segment is kept apart from read errors.
type teeWriter struct {
	seg  formats.RecordWriter
	h    hash.Hash
	hc   *headerCapture
	hook func(string)
	err  error
}

func (t *teeWriter) Write(p []byte) (int, error) {
	t.h.Write(p)
	t.hc.Write(p)
	if _, err := t.seg.Write(p); err != nil {
		t.err = err
		return 0, err
	}
	t.hook("body-chunk")
	return len(p), nil
}

// maxHeader bounds the header bytes kept to extract metadata.
const maxHeader = 64 << 10

// headerCapture keeps the start of a message up to the end of its header.
type headerCapture struct {
	buf  []byte
	done bool
}

func (h *headerCapture) Write(p []byte) (int, error) {
	if h.done {
		return len(p), nil
	}
	n := min(len(p), maxHeader-len(h.buf))
	h.buf = append(h.buf, p[:n]...)
	if bytes.Contains(h.buf, []byte("\n\n")) || bytes.Contains(h.buf, []byte("\n\r\n")) || len(h.buf) >= maxHeader {
		h.done = true
	}
	return len(p), nil
}
