package imaptest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/textproto"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// A Gmail-like server: Gmail shows a message once per label, each label a
// folder, and every message again in "[Gmail]/All Mail" (\All), under a
// "[Gmail]" parent that is \Noselect. A message is one message however
// many labels show it: APPEND into a label of a message whose Message-ID
// the account holds adds the label (no second copy in All Mail), APPEND
// into a label that shows it already changes nothing, and APPEND into All
// Mail of a message the account holds changes nothing either. Gmail cuts
// a client off with "* BYE [OVERQUOTA] Account exceeded command or
// bandwidth limits." once it downloaded its daily share.
// (https://developers.google.com/gmail/imap/imap-extensions,
// https://support.google.com/a/answer/1071518.)

// GmailAllMail is the name of the Gmail-like server's \All folder.
const GmailAllMail = "[Gmail]/All Mail"

// GmailOptions configures StartGmail.
type GmailOptions struct {
	User, Password string
	// BandwidthCap, if positive, is how many message bytes FETCH serves
	// (over all connections) before the server sends Gmail's BYE and
	// closes the connection, for every later FETCH too.
	BandwidthCap int64
}

// GmailServer is a running Gmail-like server (on MemServer: X-GM-EXT-1
// advertised, labels as folders sharing messages, All Mail, the [Gmail]
// parent, the bandwidth cap).
type GmailServer struct {
	*MemServer
	opts GmailOptions

	mu     sync.Mutex
	boxes  map[string]*gmailBox // by folder name
	served int64                // message bytes FETCH served
	byes   int                  // BYEs sent for the cap
}

// gmailBox is what the server knows of a folder's messages: by
// Message-ID, and their sizes by UID in UID (and so sequence) order.
type gmailBox struct {
	byID  map[string]imap.UID
	uids  []imap.UID
	sizes map[imap.UID]int64
}

// StartGmail starts a Gmail-like server on 127.0.0.1 (plaintext, LOGIN)
// with one user, INBOX and All Mail.
func StartGmail(t testing.TB, opts GmailOptions) *GmailServer {
	t.Helper()
	g := &GmailServer{opts: opts, boxes: map[string]*gmailBox{}}
	g.MemServer = startMem(t, MemOptions{
		Users:      map[string]string{opts.User: opts.Password},
		SpecialUse: map[string]string{GmailAllMail: `\All`},
	}, memExt{
		caps: []imap.Cap{"X-GM-EXT-1"},
		wrap: func(conn *imapserver.Conn, sess *memSession) imapserver.Session {
			return &gmailSession{memSession: sess, g: g, conn: conn}
		},
	})
	c := g.Dial(t, opts.User, opts.Password)
	Create(t, c, GmailAllMail)
	g.MemServer.mu.Lock()
	g.MemServer.boxes[opts.User]["[Gmail]"] = &memBox{noSelect: true}
	g.MemServer.mu.Unlock()
	return g
}

// Deliver puts a message into the account with the given labels (folders,
// created when missing), as mail arriving at Gmail: in each label and in
// All Mail, once. It fails the test on error.
func (g *GmailServer) Deliver(t testing.TB, body []byte, date time.Time, labels ...string) {
	t.Helper()
	c := g.Dial(t, g.opts.User, g.opts.Password)
	defer c.Close()
	for _, l := range labels {
		if l != "INBOX" && g.box(l) == nil {
			Create(t, c, l)
		}
		Append(t, c, l, nil, date, body)
	}
	if len(labels) == 0 {
		Append(t, c, GmailAllMail, nil, date, body)
	}
}

// Messages returns how many messages folder shows.
func (g *GmailServer) Messages(folder string) int {
	b := g.box(folder)
	if b == nil {
		return 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(b.uids)
}

// Labels returns, by Message-ID, the folders other than All Mail that show
// the message, sorted.
func (g *GmailServer) Labels() map[string][]string {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[string][]string{}
	for name, b := range g.boxes {
		for id := range b.byID {
			if name != GmailAllMail {
				out[id] = append(out[id], name)
			} else if out[id] == nil {
				out[id] = []string{}
			}
		}
	}
	for id := range out {
		sort.Strings(out[id])
	}
	return out
}

// Byes returns how many times the bandwidth cap ended a connection.
func (g *GmailServer) Byes() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.byes
}

// ResetBandwidth starts a new day: the cap applies afresh.
func (g *GmailServer) ResetBandwidth() {
	g.mu.Lock()
	g.served = 0
	g.mu.Unlock()
}

func (g *GmailServer) box(name string) *gmailBox {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.boxes[canonical(name)]
}

func canonical(name string) string {
	if strings.EqualFold(name, "INBOX") {
		return "INBOX"
	}
	return name
}

type gmailSession struct {
	*memSession
	g        *GmailServer
	conn     *imapserver.Conn
	selected string
}

// Select implements imapserver.Session.
func (s *gmailSession) Select(name string, options *imap.SelectOptions) (*imap.SelectData, error) {
	d, err := s.memSession.Select(name, options)
	if err == nil {
		s.selected = canonical(name)
	}
	return d, err
}

// Unselect implements imapserver.Session.
func (s *gmailSession) Unselect() error {
	s.selected = ""
	return s.memSession.Unselect()
}

// Append implements imapserver.Session, the way Gmail treats a message it
// holds already (see above).
func (s *gmailSession) Append(mailbox string, r imap.LiteralReader, options *imap.AppendOptions) (*imap.AppendData, error) {
	body, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	mailbox = canonical(mailbox)
	id := messageID(body)
	g := s.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if id != "" {
		if b := g.boxes[mailbox]; b != nil {
			if uid, ok := b.byID[id]; ok {
				st, err := s.memSession.Status(mailbox, &imap.StatusOptions{UIDValidity: true})
				if err != nil {
					return nil, err
				}
				return &imap.AppendData{UID: uid, UIDValidity: st.UIDValidity}, nil
			}
		}
	}
	data, err := s.add(mailbox, body, id, options)
	if err != nil || mailbox == GmailAllMail {
		return data, err
	}
	if all := g.boxes[GmailAllMail]; id == "" || all == nil || all.byID[id] == 0 {
		if _, err := s.add(GmailAllMail, body, id, options); err != nil {
			return nil, err
		}
	}
	return data, nil
}

// add appends body to mailbox and records it; g.mu is held.
func (s *gmailSession) add(mailbox string, body []byte, id string, options *imap.AppendOptions) (*imap.AppendData, error) {
	data, err := s.memSession.Append(mailbox, bytesLiteral{bytes.NewReader(body)}, options)
	if err != nil {
		return nil, err
	}
	b := s.g.boxes[mailbox]
	if b == nil {
		b = &gmailBox{byID: map[string]imap.UID{}, sizes: map[imap.UID]int64{}}
		s.g.boxes[mailbox] = b
	}
	if id != "" {
		b.byID[id] = data.UID
	}
	b.uids = append(b.uids, data.UID)
	b.sizes[data.UID] = int64(len(body))
	return data, nil
}

// Fetch implements imapserver.Session: it serves message bodies up to
// the bandwidth cap, then sends Gmail's BYE.
func (s *gmailSession) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	g := s.g
	if g.opts.BandwidthCap <= 0 || len(options.BodySection) == 0 {
		return s.memSession.Fetch(w, numSet, options)
	}
	g.mu.Lock()
	b := g.boxes[s.selected]
	var allowed imap.UIDSet
	over := false
	if b != nil {
		for i, uid := range b.uids {
			if !inSet(numSet, uint32(i+1), uid, uint32(len(b.uids)), b.uids[len(b.uids)-1]) {
				continue
			}
			if g.served+b.sizes[uid] > g.opts.BandwidthCap {
				over = true
				break
			}
			g.served += b.sizes[uid]
			allowed.AddNum(uid)
		}
	}
	if over {
		g.byes++
	}
	g.mu.Unlock()
	if !over {
		return s.memSession.Fetch(w, numSet, options)
	}
	if len(allowed) > 0 {
		opts := *options
		opts.UID = true
		if err := s.memSession.Fetch(w, allowed, &opts); err != nil {
			return err
		}
	}
	s.conn.Bye("[OVERQUOTA] Account exceeded command or bandwidth limits.")
	return fmt.Errorf("imaptest: bandwidth cap of %d bytes reached", g.opts.BandwidthCap)
}

// inSet reports whether numSet names the message with sequence number seq
// and UID uid in a folder whose last ones are maxSeq and maxUID ("*").
func inSet(numSet imap.NumSet, seq uint32, uid imap.UID, maxSeq uint32, maxUID imap.UID) bool {
	in := func(n, start, stop, star uint32) bool {
		if start == 0 {
			start = star
		}
		if stop == 0 {
			stop = star
		}
		if start > stop {
			start, stop = stop, start
		}
		return start <= n && n <= stop
	}
	switch set := numSet.(type) {
	case imap.SeqSet:
		for _, r := range set {
			if in(seq, r.Start, r.Stop, maxSeq) {
				return true
			}
		}
	case imap.UIDSet:
		for _, r := range set {
			if in(uint32(uid), uint32(r.Start), uint32(r.Stop), uint32(maxUID)) {
				return true
			}
		}
	}
	return false
}

type bytesLiteral struct{ *bytes.Reader }

func (b bytesLiteral) Size() int64 { return b.Reader.Size() }

// messageID returns the Message-ID of a message, "" when it has none.
func messageID(body []byte) string {
	h, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(body))).ReadMIMEHeader()
	if err != nil && len(h) == 0 {
		return ""
	}
	return strings.TrimSpace(h.Get("Message-Id"))
}
