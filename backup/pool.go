package backup

import (
	"hash"
	"sort"
	"sync"
)

// The worker pool: up to Options.Connections workers, each with its own
// connection, take folders (and parts of big folders) from one queue.

// worker synchronises folders over its own connection.
type worker struct {
	r    *run
	pool *pool // nil outside syncJobs
	src  Source
	// Per-message scratch, reused so that a run's garbage does not grow
	// with the number of messages.
	copyBuf []byte
	hash    hash.Hash
	hc      headerCapture
}

func (w *worker) connect() error {
	src, err := w.r.opts.Dial(w.r.ctx)
	if err != nil {
		return err
	}
	w.src = src
	return nil
}

func (w *worker) closeSource() {
	if w.src != nil {
		w.src.Close()
		w.src = nil
	}
}

// syncJobs synchronises the folders that need it over up to
// Options.Connections connections, biggest folders first, All Mail last.
// The connection that listed the folders is the first worker's; the
// others are opened as the workers start, and a worker whose connection is
// refused (servers limit connections per user) leaves its share to the
// others.
func (r *run) syncJobs(jobs []*folderJob) {
	var todo []*folderJob
	for _, j := range jobs {
		if j.action == actSync {
			todo = append(todo, j)
		}
	}
	if len(todo) == 0 {
		return
	}
	// All Mail (\All) last: it records the copies the labels stored
	// (walkOrder).
	sort.SliceStable(todo, func(a, b int) bool {
		if ta, tb := walkOrder(todo[a]), walkOrder(todo[b]); ta != tb {
			return ta < tb
		}
		return jobSize(todo[a]) > jobSize(todo[b])
	})
	r.setupShared(todo)
	planned := Event{Kind: EventPlanned, Folders: len(todo)}
	known := true // every folder's status is known
	for _, j := range todo {
		if j.info.Status != nil {
			planned.Messages += int(max(0, jobSize(j)))
		}
		known = known && j.info.Status != nil
	}
	r.opts.progress(planned)
	p := &pool{r: r}
	p.cond = sync.NewCond(&p.mu)
	for _, j := range todo {
		p.tasks = append(p.tasks, func(w *worker) { w.run(j) })
	}
	// One connection per folder, and more for a big folder's parts.
	useful := int64(len(todo))
	for _, j := range todo {
		if size := jobSize(j); j.info.Status != nil && size >= splitMin {
			useful += size / partMin
		}
	}
	if known {
		// Each connection costs a login: little to fetch, few connections.
		useful = min(useful, 1+int64(planned.Messages)/connectionMessages)
	}
	n := int(max(1, min(int64(r.opts.Connections), useful)))
	workers := make([]*worker, n)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{r: r, pool: p}
		workers[i] = w
		if i == 0 {
			w.src, r.src = r.src, nil
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i > 0 {
				if err := w.connect(); err != nil {
					if r.ctx.Err() == nil {
						r.opts.Log.Warn("could not open another connection; going on with fewer", "connection", i+1, "err", err)
					}
					return
				}
			}
			for t := p.next(); t != nil; t = p.next() {
				t(w)
				p.done()
				r.checkpoint(nil)
			}
		}()
	}
	wg.Wait()
	// The first worker's connection goes back to the run (a POP3 session
	// deletes over it); the others are closed.
	r.src = workers[0].src
	for _, w := range workers[1:] {
		w.closeSource()
	}
}

// jobSize estimates a folder's work: the messages it may have to fetch.
func jobSize(j *folderJob) int64 {
	if j.info.Status == nil {
		return 1 << 40 // unknown: start early
	}
	n := int64(j.info.Status.Messages)
	if j.prevState != nil {
		n -= int64(j.prevState.Folder.Messages)
	}
	return n
}

// pool hands tasks (a folder, or a part of a big folder) to workers. A
// worker waits while the queue is empty but tasks are running, since a
// running folder may add parts.
type pool struct {
	r      *run
	mu     sync.Mutex
	cond   *sync.Cond
	tasks  []func(*worker)
	active int
}

// next returns the next task, or nil when there is none left.
func (p *pool) next() func(*worker) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.tasks) == 0 && p.active > 0 && p.r.ctx.Err() == nil {
		p.cond.Wait()
	}
	if len(p.tasks) == 0 || p.r.stopped() {
		return nil
	}
	t := p.tasks[0]
	p.tasks = p.tasks[1:]
	p.active++
	return t
}

func (p *pool) done() {
	p.mu.Lock()
	p.active--
	p.cond.Broadcast()
	p.mu.Unlock()
}

// pushFront queues tasks ahead of the others.
func (p *pool) pushFront(tasks ...func(*worker)) {
	p.mu.Lock()
	p.tasks = append(tasks, p.tasks...)
	p.cond.Broadcast()
	p.mu.Unlock()
}
