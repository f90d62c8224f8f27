package backup

import (
	"errors"
	"io"
	"sync/atomic"
)

// Big folders: a folder with many new messages is fetched in parts over
// several connections at once. Each part stores into writers of its own
// and hands what they committed to the folder's worker, the only one that
// changes the folder's state.

// A folder with at least splitMin messages to fetch is split into parts of
// at least partMin messages, fetched at once over several connections.
const (
	splitMin = 4000
	partMin  = 1000
)

// connectionMessages is how many messages to fetch justify one more
// connection: each costs a login (a TLS handshake, a process on the
// server), more than fetching a few dozen messages over one already open.
const connectionMessages = 100

// part is a range of a big folder's messages, fetched by whichever worker
// takes it first.
type part struct {
	keys  *keyList
	f     *fetcher // its own writers and dedup index
	taken atomic.Bool
}

func (p *part) take() bool { return p.taken.CompareAndSwap(false, true) }

// partResult is what a part hands to the folder's worker: the messages of
// a writer it committed, and whether a checkpoint is due; and once, last,
// done, with the storage error that stopped the part, if any.
type partResult struct {
	batch      writerCommit
	deferred   []deferredMsg // the messages of the part whose bytes another writer stores
	checkpoint bool
	done       bool
	err        error
}

// partFetcher returns the fetcher of a part whose first writer has part
// number index: writers and a record of what it stored of its own, the
// folder's archived messages to deduplicate against (read only: they do
// not change while parts run).
func (fs *folderSync) partFetcher(index int) *fetcher {
	return &fetcher{
		ix: fs.fetcher.ix, name: fs.fetcher.name, dir: fs.fetcher.dir, partNo: &fs.partNo, out: &writer{part: index},
		known:    fs.known.view(),
		archive:  fs.fetcher.archive,
		poison:   map[string]int{},
		job:      fs.job,
		deferred: new([]deferredMsg),
	}
}

// fetchParts fetches want in parts: idle workers take parts over their own
// connections (EXAMINE of the same folder), and this worker's connection
// takes every part nobody took, in a goroutine of its own, while this
// goroutine takes in the parts' results as they come: it adds them to the
// folder and commits checkpoints with them. What a part could not fetch is
// left for the caller, which fetches it on its own connection; only a
// storage error is returned.
func (w *worker) fetchParts(fs *folderSync, validity uint32, want *keyList) error {
	r := w.r
	k := min(r.opts.Connections, want.len()/partMin)
	if k < 2 {
		return nil
	}
	size := (want.len() + k - 1) / k
	parts := make([]*part, 0, k)
	for start := 0; start < want.len(); start += size {
		parts = append(parts, &part{keys: want.sub(start, min(start+size, want.len())), f: fs.partFetcher(int(fs.partNo.Add(1)))})
	}
	r.opts.Log.Info("fetching a big folder in parts", "folder", fs.folder.Name, "messages", want.len(), "parts", len(parts))
	name := fs.folder.Name
	results := make(chan partResult)
	fetch := func(pw *worker, p *part, examined bool) {
		err := pw.fetchPart(p, name, validity, examined, results)
		results <- partResult{done: true, err: err}
	}
	var tasks []func(*worker)
	for _, p := range parts[1:] {
		tasks = append(tasks, func(pw *worker) {
			if p.take() {
				fetch(pw, p, false)
			}
		})
	}
	w.pool.pushFront(tasks...)
	mine := make(chan struct{})
	go func() {
		defer close(mine)
		for _, p := range parts {
			if !p.take() {
				continue // another worker has it
			}
			if w.src == nil {
				// This connection broke: the caller fetches the rest.
				results <- partResult{done: true}
				continue
			}
			fetch(w, p, true)
		}
	}()
	var errs []error
	for left := len(parts); left > 0; {
		res := <-results
		for _, m := range res.batch.added {
			fs.known.add(m.Key)
		}
		for _, dm := range res.deferred {
			fs.known.add(dm.msg.Key)
		}
		fs.deferred = append(fs.deferred, res.deferred...)
		if err := fs.accept(r, res.batch); err != nil {
			errs = append(errs, err)
		} else if err := fs.tidy(r); err != nil {
			errs = append(errs, err)
		}
		if res.done {
			left--
			if res.err != nil {
				errs = append(errs, res.err)
			}
		}
		if res.checkpoint && fs.fetcher.out.records() == 0 {
			// Every message of the folder so far is in a committed writer.
			r.checkpoint(&fs.pending)
		}
	}
	<-mine
	return errors.Join(errs...)
}

// fetchPart fetches one part of a folder over pw's connection into the
// part's writers, and hands each writer it commits (as often as a
// checkpoint is due, and at the end) to the folder's worker over results.
// examined tells that pw's connection has the folder examined already (pw
// split the folder). It returns only a storage error or a daily limit: what it could not
// fetch is left for the folder's worker.
func (pw *worker) fetchPart(p *part, folder string, validity uint32, examined bool, results chan<- partResult) error {
	r := pw.r
	f := p.f
	defer f.out.abort()
	if pw.src == nil {
		if err := pw.connect(); err != nil {
			if r.ctx.Err() == nil {
				r.opts.Log.Warn("could not connect for a part of a folder", "folder", folder, "err", err)
			}
			return nil
		}
	}
	if !examined {
		st, err := pw.src.Examine(r.ctx, folder)
		if err != nil || st.UIDValidity != validity {
			if isConnErr(err) {
				pw.closeSource()
			}
			return nil
		}
	}
	flush := func(checkpoint bool) error {
		c, err := f.out.commit(f.partNo)
		if err != nil {
			return err
		}
		results <- partResult{batch: c, deferred: *f.deferred, checkpoint: checkpoint}
		*f.deferred = nil
		return nil
	}
	var err error
	for start := 0; start < p.keys.len() && err == nil; start += r.opts.BatchSize {
		batch := p.keys.slice(start, min(start+r.opts.BatchSize, p.keys.len()))
		inBatch := make(map[string]bool, len(batch))
		for _, k := range batch {
			inBatch[k] = true
		}
		err = pw.src.Fetch(r.ctx, batch, func(m *Message) error {
			if f.known.has(m.Key) || !inBatch[m.Key] {
				_, err := io.Copy(io.Discard, m.Body)
				return err
			}
			if commit, checkpoint := r.flushWanted(f.out, f.job); commit {
				if err := flush(checkpoint); err != nil {
					return err
				}
			}
			if err := r.charge(m.Size); err != nil {
				return err
			}
			if err := pw.storeCharged(f, m); err != nil {
				return err
			}
			if f.out.full() || len(*f.deferred) >= deferMessages {
				return flush(false)
			}
			return nil
		})
	}
	f.known.close()
	if errors.Is(err, ErrStorage) {
		return err
	}
	if ferr := flush(r.checkpointDue()); ferr != nil {
		return ferr
	}
	if errors.Is(err, ErrDailyLimit) {
		pw.closeSource()
		return err
	}
	if err != nil {
		if r.ctx.Err() == nil {
			r.opts.Log.Warn("a part of a folder failed; the rest is fetched on another connection", "folder", folder, "err", err)
		}
		if isConnErr(err) || r.ctx.Err() == nil {
			pw.closeSource()
		}
	}
	return nil
}
