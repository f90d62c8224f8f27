package bench

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ScaleFolders are the folders of a scale account (ScaleOptions.Folders
// when nil): the inbox, which gets most of the mail, then a few others,
// nested and non-ASCII among them. Parents come before their children.
var ScaleFolders = []string{"INBOX", "Sent", "Archive", "Work", "Work/Projects", "Año 2023"}

// Sizes of scale messages, in bytes as the server sends them (CRLF line
// ends).
const (
	scaleMinSize = 1 << 10
	scaleMaxSize = 3 << 10
	scaleAim     = 150 // keeps the aim this far inside the range
)

// DefaultInboxShare is the fraction of a scale account's messages that
// goes to its first folder (the inbox) when ScaleOptions.InboxShare is 0.
const DefaultInboxShare = 0.9

// ScaleOptions describes one batch of a scale account: messages of 1–3 KB
// with realistic headers, most of them in one folder. Every message is a
// function of (Seed, its index, Folders, InboxShare) alone, so the same
// options give the same bytes whatever the number of Workers, and a later
// batch (First = the messages written so far) adds new, different messages
// to the same account.
type ScaleOptions struct {
	Seed     uint64
	First    int // index of the batch's first message
	Messages int // messages in the batch: indices First … First+Messages-1

	// Folders receive the messages: Folders[0] a share of InboxShare, the
	// others the rest, uniformly. Nil means ScaleFolders. "/" separates
	// levels; a parent that is not listed is created as an empty Maildir.
	Folders    []string
	InboxShare float64 // 0 means DefaultInboxShare; 1 puts everything in Folders[0]

	// Workers write files in parallel (0: 4 × GOMAXPROCS; file creation
	// waits on the file system more than on the CPU).
	Workers int

	// Chown makes every directory and file belong to UID:GID (the user a
	// Dovecot's mail processes run as when it was started as root).
	Chown    bool
	UID, GID int
}

// ScaleStats describes what WriteScale wrote.
type ScaleStats struct {
	Messages  int
	Bytes     int64          // RFC822.SIZE summed: bytes with CRLF line ends
	PerFolder map[string]int // messages per folder
	Elapsed   time.Duration
	Workers   int
}

func (o ScaleOptions) withDefaults() (ScaleOptions, error) {
	if o.Folders == nil {
		o.Folders = ScaleFolders
	}
	if o.InboxShare == 0 {
		o.InboxShare = DefaultInboxShare
	}
	if o.Workers == 0 {
		o.Workers = 4 * runtime.GOMAXPROCS(0)
	}
	switch {
	case len(o.Folders) == 0:
		return o, errors.New("scale account: no folders")
	case o.Messages < 0 || o.First < 0:
		return o, fmt.Errorf("scale account: messages %d from %d", o.Messages, o.First)
	case o.InboxShare < 0 || o.InboxShare > 1:
		return o, fmt.Errorf("scale account: inbox share %v, want 0..1", o.InboxShare)
	case o.Workers < 1:
		return o, fmt.Errorf("scale account: %d workers", o.Workers)
	}
	for _, f := range o.Folders {
		if f == "" || strings.HasPrefix(f, "/") || strings.HasSuffix(f, "/") || strings.Contains(f, "//") {
			return o, fmt.Errorf("scale account: bad folder name %q", f)
		}
	}
	return o, nil
}

// scaleGen draws scale messages. Its random source is reseeded for every
// message, from the seed and the message's index.
type scaleGen struct {
	generator
	pcg    *rand.PCG
	hdr    []byte
	target int // the size message aimed at
}

func newScaleGen() *scaleGen {
	pcg := rand.NewPCG(0, 0)
	return &scaleGen{generator: generator{r: rand.New(pcg)}, pcg: pcg}
}

// splitmix64 spreads consecutive indices over the whole seed space.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// message builds message i of o into g.b (LF line ends) and returns its
// folder, date and flags.
func (g *scaleGen) message(o ScaleOptions, i int) (string, time.Time, []string) {
	g.pcg.Seed(splitmix64(o.Seed), splitmix64(uint64(i)))
	folder := o.Folders[0]
	if len(o.Folders) > 1 && g.r.Float64() >= o.InboxShare {
		folder = o.Folders[1+g.r.IntN(len(o.Folders)-1)]
	}
	// generator.message lands between 100 bytes below and 200 above the
	// size it is given (it keeps room for MIME headers it may not use):
	// aim inside the range so that the result stays in it.
	target := scaleMinSize + scaleAim + g.r.IntN(scaleMaxSize-scaleMinSize-2*scaleAim)
	g.target = target
	date, flags := g.generator.message(fmt.Sprintf("s%d.%d", o.Seed, i), folder, target-scaleAim/3, false)
	return folder, date, flags
}

// ScaleMessage returns message i of the account o describes (i counts
// from 0 over all batches), with CRLF line ends, for an APPEND or an
// in-process server. It is the message WriteScale writes for index i.
func ScaleMessage(o ScaleOptions, i int) (Message, error) {
	o, err := o.withDefaults()
	if err != nil {
		return Message{}, err
	}
	g := newScaleGen()
	folder, date, flags := g.message(o, i)
	body := bytes.ReplaceAll(g.b.Bytes(), []byte("\n"), []byte("\r\n"))
	return Message{Folder: folder, Flags: flags, Date: date, Body: body}, nil
}

// scaleChunk is the number of consecutive messages a worker takes at once.
const scaleChunk = 512

// WriteScale writes the batch o describes into root as a Dovecot Maildir
// with LAYOUT=fs (INBOX in root itself, folder "A/B" in root/A/B, every
// folder and parent with cur, new and tmp), o.Workers files at a time.
// Each message goes to cur as <date>.M<index>P1.scale,S=<file size>,
// W=<size with CRLF>:2,<flags>, with its date as the file's mtime (the
// INTERNALDATE Dovecot reports). A file that exists already is an error
// (the batch was written before: give a new First). Dovecot sees the new
// mail once something syncs the folders, for example
// `doveadm mailbox status -u USER messages '*'`.
func WriteScale(root string, o ScaleOptions) (ScaleStats, error) {
	start := time.Now()
	o, err := o.withDefaults()
	if err != nil {
		return ScaleStats{}, err
	}
	if err := scaleDirs(root, o); err != nil {
		return ScaleStats{}, err
	}
	var (
		next     atomic.Int64
		failed   atomic.Bool
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	st := ScaleStats{PerFolder: map[string]int{}, Workers: o.Workers}
	for range o.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := newScaleGen()
			local := ScaleStats{PerFolder: map[string]int{}}
			err := func() error {
				for !failed.Load() {
					lo := int(next.Add(scaleChunk)) - scaleChunk
					if lo >= o.Messages {
						return nil
					}
					for k := lo; k < min(lo+scaleChunk, o.Messages); k++ {
						folder, wire, err := g.write(root, o, o.First+k)
						if err != nil {
							return err
						}
						local.Messages++
						local.Bytes += wire
						local.PerFolder[folder]++
					}
				}
				return nil
			}()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed.Store(true)
				if firstErr == nil {
					firstErr = err
				}
			}
			st.Messages += local.Messages
			st.Bytes += local.Bytes
			for f, n := range local.PerFolder {
				st.PerFolder[f] += n
			}
		}()
	}
	wg.Wait()
	st.Elapsed = time.Since(start)
	return st, firstErr
}

// write writes message i into its folder and returns the folder and the
// message's size with CRLF line ends.
func (g *scaleGen) write(root string, o ScaleOptions, i int) (string, int64, error) {
	folder, date, flags := g.message(o, i)
	body := g.b.Bytes()
	wire := int64(len(body) + bytes.Count(body, []byte{'\n'}))
	g.hdr = fmt.Appendf(g.hdr[:0], "%d.M%dP1.scale,S=%d,W=%d:2,%s", date.Unix(), i, len(body), wire, maildirFlags(flags))
	path := filepath.Join(folderDir(root, folder), "cur", string(g.hdr))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", 0, fmt.Errorf("write scale message %d: %w", i, err)
	}
	_, err = f.Write(body)
	if err == nil && o.Chown {
		err = f.Chown(o.UID, o.GID)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chtimes(path, date, date)
	}
	if err != nil {
		return "", 0, fmt.Errorf("write scale message %d: %w", i, err)
	}
	return folder, wire, nil
}

// scaleDirs makes root and every folder of o, parents included, a Maildir
// (cur, new, tmp), owned by o.UID:o.GID when o.Chown is set.
func scaleDirs(root string, o ScaleOptions) error {
	dirs := []string{root}
	seen := map[string]bool{}
	for _, f := range o.Folders {
		parts := strings.Split(f, "/")
		for k := range parts {
			name := strings.Join(parts[:k+1], "/")
			if !seen[name] {
				seen[name] = true
				dirs = append(dirs, folderDir(root, name))
			}
		}
	}
	for _, d := range dirs {
		for _, sub := range []string{"", "cur", "new", "tmp"} {
			p := filepath.Join(d, sub)
			if err := os.MkdirAll(p, 0o700); err != nil {
				return fmt.Errorf("scale account: %w", err)
			}
			if o.Chown {
				if err := os.Chown(p, o.UID, o.GID); err != nil {
					return fmt.Errorf("scale account: %w", err)
				}
			}
		}
	}
	return nil
}
