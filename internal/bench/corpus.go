package bench

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"mime"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Profile sizes the benchmark mailbox.
type Profile struct {
	Name     string
	Messages int // all messages, large ones included
	Folders  int // the first Folders names of AllFolders
	Large    int // messages of 1–10 MB with an attachment
}

// Profiles are the mailboxes MAILVAULT_BENCH_PROFILE selects.
var Profiles = map[string]Profile{
	// About 1.07 GB: 19,900 messages of 2–60 KB (mean about 25 KB) and 100
	// of 1–10 MiB.
	"full": {Name: "full", Messages: 20000, Folders: 40, Large: 100},
	// About 105 MB.
	"quick": {Name: "quick", Messages: 2000, Folders: 10, Large: 10},
	// The account of BenchmarkWAN: 5,000 messages, about 350 MB.
	"wan": {Name: "wan", Messages: 5000, Folders: 20, Large: 40},
	// A small account to try BenchmarkWAN's harness: about 40 MB.
	"wan-quick": {Name: "wan-quick", Messages: 500, Folders: 10, Large: 4},
}

// AllFolders are the folder names, parents before children, "/" as the
// hierarchy separator. The first 10 (the quick profile) hold nested and
// non-ASCII names too.
var AllFolders = []string{
	"INBOX", "Sent", "Work", "Work/Projects", "Año 2023", "Año 2023/Facturas",
	"日本", "Drafts", "Trash", "Lists",
	"Junk", "Archive", "Archive/2019", "Archive/2020", "Archive/2021",
	"Archive/2022", "Archive/2023", "Archive/2024",
	"Work/Projects/Alpha", "Work/Projects/Beta", "Work/Clients",
	"Work/Clients/ACME Corp", "Work/HR",
	"Lists/golang-nuts", "Lists/dovecot", "Lists/debian-devel", "Lists/linux-kernel",
	"Family", "Family/Photos", "Travel", "Travel/2025 Japan",
	"Receipts", "Receipts/Online shops",
	"Ünïcödé & Co", "Spaces in name", "dots.in.name",
	"Newsletters", "Newsletters/Tech", "Finance", "Finance/Taxes",
}

// IncrementalFolders are the 3 folders that receive the new messages of
// the incremental runs: the inbox, a nested and a non-ASCII folder.
var IncrementalFolders = []string{"INBOX", "Work/Projects", "日本"}

// Sizes of ordinary and large messages, in bytes as the server sends them
// (CRLF line ends).
const (
	minSize      = 2 << 10
	maxSize      = 60 << 10
	minLargeSize = 1 << 20
	maxLargeSize = 10 << 20
)

// Stats describes a generated mailbox.
type Stats struct {
	Messages  int
	Bytes     int64          // RFC822.SIZE summed: bytes with CRLF line ends
	PerFolder map[string]int // messages per folder
	Large     int
}

// Message is a generated message, for APPEND.
type Message struct {
	Folder string
	Flags  []string // IMAP system flags
	Date   time.Time
	Body   []byte // CRLF line ends
}

var (
	dateMin = time.Date(2005, 1, 1, 0, 0, 0, 0, time.UTC)
	dateMax = time.Date(2026, 6, 30, 23, 59, 59, 0, time.UTC)
	people  = []string{
		`"Maria García" <maria.garcia@example.es>`,
		`John Smith <john.smith@example.com>`,
		`"Zoë Brontë" <zoe@example.co.uk>`,
		`=?utf-8?b?5bGx55Sw5aSq6YOO?= <taro.yamada@example.jp>`,
		`=?utf-8?q?Fran=C3=A7ois_Dupont?= <f.dupont@example.fr>`,
		`Billing <billing@example.net>`,
		`noreply@example.com`,
		`Dev Team <dev-team@lists.example.org>`,
		`Priya Raman <priya@example.in>`,
		`"Mike O'Neil" <mike@example.ie>`,
	}
	me       = `Alex Example <alex@example.org>`
	subjects = []string{
		"Meeting notes %d", "Re: Budget %d review", "Invoice #%d",
		"Fwd: photos from the trip %d", "Factura %d — pago pendiente",
		"Quarterly report Q%d", "Your order %d has shipped", "[dev] build #%d failed",
		"会議の議事録 %d", "Grüße und Rückfrage %d", "Re: Re: contract draft v%d",
	}
	words = strings.Fields(`the a of and to in is for on with as by at from that this be are was
		project meeting report budget invoice schedule review draft plan team client server backup
		mail folder message archive release deadline update question answer thanks please regards
		tomorrow monday friday week month year morning afternoon office remote call agenda notes
		número año señor café résumé naïve über straße größe 東京 日本 ありがとう données été
		quarterly figures attached below above following previous next final version change
		customer contract delivery payment account order shipping status ticket support issue`)
)

// generator builds messages with LF line ends (the Maildir form Dovecot
// itself writes); the server sends them with CRLF.
type generator struct {
	r   *rand.Rand
	b   bytes.Buffer
	raw []byte
	enc []byte
}

func newGenerator(seed uint64) *generator {
	return &generator{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

func (g *generator) pick(s []string) string { return s[g.r.IntN(len(s))] }

// text appends lines of about 72 characters until about n bytes were added.
func (g *generator) text(n int) {
	end := g.b.Len() + n
	line := 0
	for g.b.Len() < end {
		w := g.pick(words)
		if line > 0 && line+1+len(w) > 72 {
			g.b.WriteByte('\n')
			line = 0
			if g.r.IntN(8) == 0 {
				g.b.WriteByte('\n')
			}
		} else if line > 0 {
			g.b.WriteByte(' ')
			line++
		}
		g.b.WriteString(w)
		line += len(w)
	}
	g.b.WriteByte('\n')
}

// attachment appends about n bytes of base64 (76-character lines) of
// random, incompressible data.
func (g *generator) attachment(n int) {
	raw := max(n/78*57, 57)
	if cap(g.raw) < raw {
		g.raw = make([]byte, raw)
	}
	g.raw = g.raw[:raw]
	// Every byte is drawn: a tail left over from the previous message
	// would make a message depend on the one generated before it.
	for i := 0; i < raw; i += 8 {
		v := g.r.Uint64()
		for j := 0; j < 8 && i+j < raw; j++ {
			g.raw[i+j] = byte(v >> (8 * j))
		}
	}
	encLen := base64.StdEncoding.EncodedLen(raw)
	if cap(g.enc) < encLen {
		g.enc = make([]byte, encLen)
	}
	g.enc = g.enc[:encLen]
	base64.StdEncoding.Encode(g.enc, g.raw)
	for e := g.enc; len(e) > 0; {
		k := min(76, len(e))
		g.b.Write(e[:k])
		g.b.WriteByte('\n')
		e = e[k:]
	}
}

func (g *generator) header(name, value string) {
	g.b.WriteString(name)
	g.b.WriteString(": ")
	g.b.WriteString(value)
	g.b.WriteByte('\n')
}

// message builds one message of about size bytes (LF form) into g.b and
// returns its date and flags. id makes the Message-ID unique.
func (g *generator) message(id, folder string, size int, large bool) (time.Time, []string) {
	g.b.Reset()
	span := dateMax.Unix() - dateMin.Unix()
	date := time.Unix(dateMin.Unix()+g.r.Int64N(span), 0).UTC()
	from, to := g.pick(people), me
	outgoing := folder == "Sent" || folder == "Drafts"
	if outgoing {
		from, to = me, from
	} else {
		g.header("Return-Path", "<bounce@example.net>")
		g.header("Received", fmt.Sprintf("from mail.example.net (mail.example.net [192.0.2.%d])\n\tby mx.example.org (Postfix) with ESMTPS id %X\n\tfor <alex@example.org>; %s",
			1+g.r.IntN(254), g.r.Uint32(), date.Format(time.RFC1123Z)))
	}
	g.header("From", from)
	g.header("To", to)
	subj := fmt.Sprintf(g.pick(subjects), 1000+g.r.IntN(9000))
	g.header("Subject", mime.QEncoding.Encode("utf-8", subj))
	g.header("Date", date.Format(time.RFC1123Z))
	g.header("Message-ID", "<"+id+"@bench.example.org>")
	g.header("MIME-Version", "1.0")
	boundary := fmt.Sprintf("=_b%016x", g.r.Uint64())
	kind := g.r.IntN(10)
	if large {
		kind = 9
	}
	room := max(size-g.b.Len()-200, 100)
	switch {
	case kind < 4: // plain text
		g.header("Content-Type", "text/plain; charset=utf-8; format=flowed")
		g.header("Content-Transfer-Encoding", "8bit")
		g.b.WriteByte('\n')
		g.text(room)
	case kind < 7: // text and HTML
		g.header("Content-Type", `multipart/alternative; boundary="`+boundary+`"`)
		g.b.WriteString("\nThis is a multi-part message in MIME format.\n")
		fmt.Fprintf(&g.b, "--%s\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n", boundary)
		g.text(room * 4 / 10)
		fmt.Fprintf(&g.b, "--%s\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n<html><body><p>\n", boundary)
		g.text(room * 5 / 10)
		fmt.Fprintf(&g.b, "</p></body></html>\n--%s--\n", boundary)
	default: // text and an attachment
		g.header("Content-Type", `multipart/mixed; boundary="`+boundary+`"`)
		g.b.WriteByte('\n')
		fmt.Fprintf(&g.b, "--%s\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n", boundary)
		t := min(room/4, 4000)
		g.text(t)
		name, ctype := fmt.Sprintf("scan-%s.pdf", id), "application/pdf"
		if large {
			name, ctype = fmt.Sprintf("video-%s.mp4", id), "video/mp4"
		}
		fmt.Fprintf(&g.b, "--%s\nContent-Type: %s; name=\"%s\"\nContent-Disposition: attachment; filename=\"%s\"\nContent-Transfer-Encoding: base64\n\n", boundary, ctype, name, name)
		g.attachment(room - t)
		fmt.Fprintf(&g.b, "--%s--\n", boundary)
	}
	var flags []string
	switch folder {
	case "Sent":
		flags = []string{`\Seen`}
	case "Drafts":
		flags = []string{`\Draft`}
	default:
		// No \Deleted: mbsync does not copy new messages marked deleted.
		if g.r.IntN(100) < 75 {
			flags = append(flags, `\Seen`)
		}
		if g.r.IntN(100) < 10 {
			flags = append(flags, `\Answered`)
		}
		if g.r.IntN(100) < 8 {
			flags = append(flags, `\Flagged`)
		}
	}
	return date, flags
}

// ordinarySize draws a size of 2–60 KB, skewed to the small end (mean
// about 25 KB).
func (g *generator) ordinarySize() int {
	return minSize + int(float64(maxSize-minSize)*math.Pow(g.r.Float64(), 1.6))
}

// maildirFlags returns the Maildir info suffix letters for IMAP flags.
func maildirFlags(flags []string) string {
	letters := map[string]byte{`\Draft`: 'D', `\Flagged`: 'F', `\Answered`: 'R', `\Seen`: 'S'}
	var out []byte
	for _, f := range flags {
		out = append(out, letters[f])
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return string(out)
}

// WriteMaildir writes the mailbox of p, determined by seed, into root as a
// Dovecot Maildir with LAYOUT=fs (INBOX in root itself, folder "A/B" in
// root/A/B, each with cur, new and tmp). Messages go to cur with their
// flags, S= (file size) and W= (size with CRLF) in the file name and their
// date as the file's mtime (Dovecot's INTERNALDATE). Directories are 0700,
// files 0600; when uid is not -1 everything is chowned to uid:gid (the
// user Dovecot's mail processes run as).
func WriteMaildir(root string, p Profile, seed uint64, uid, gid int) (Stats, error) {
	if p.Folders < 1 || p.Folders > len(AllFolders) {
		return Stats{}, fmt.Errorf("profile %s: %d folders, want 1..%d", p.Name, p.Folders, len(AllFolders))
	}
	folders := AllFolders[:p.Folders]
	for _, f := range folders {
		for _, sub := range []string{"cur", "new", "tmp"} {
			if err := os.MkdirAll(filepath.Join(folderDir(root, f), sub), 0o700); err != nil {
				return Stats{}, err
			}
		}
	}
	g := newGenerator(seed)
	// Folder shares: the inbox and Sent get the most, the others 1–4
	// parts each.
	weights := make([]int, len(folders))
	total := 0
	for i, f := range folders {
		switch f {
		case "INBOX":
			weights[i] = 3 * len(folders) / 2
		case "Sent":
			weights[i] = len(folders) / 2
		default:
			weights[i] = 1 + g.r.IntN(4)
		}
		total += weights[i]
	}
	st := Stats{PerFolder: map[string]int{}}
	every := 0
	if p.Large > 0 {
		every = p.Messages / p.Large
	}
	for i := range p.Messages {
		var folder string
		if i < len(folders) {
			folder = folders[i] // every folder holds mail
		} else {
			x := g.r.IntN(total)
			for k, w := range weights {
				if x < w {
					folder = folders[k]
					break
				}
				x -= w
			}
		}
		large := every > 0 && i%every == every-1 && st.Large < p.Large
		size := 0
		if large {
			size = minLargeSize + g.r.IntN(maxLargeSize-minLargeSize)
			st.Large++
		} else {
			size = g.ordinarySize()
		}
		date, flags := g.message(fmt.Sprintf("m%d.%d", seed, i), folder, size, large)
		body := g.b.Bytes()
		wire := int64(len(body) + bytes.Count(body, []byte{'\n'}))
		name := fmt.Sprintf("%d.M%dP1.bench,S=%d,W=%d:2,%s", date.Unix(), i, len(body), wire, maildirFlags(flags))
		path := filepath.Join(folderDir(root, folder), "cur", name)
		if err := os.WriteFile(path, body, 0o600); err != nil {
			return st, err
		}
		if err := os.Chtimes(path, date, date); err != nil {
			return st, err
		}
		st.Messages++
		st.Bytes += wire
		st.PerFolder[folder]++
	}
	if uid == -1 {
		return st, nil
	}
	err := filepath.WalkDir(root, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
	return st, err
}

func folderDir(root, folder string) string {
	if folder == "INBOX" {
		return root
	}
	return filepath.Join(root, filepath.FromSlash(folder))
}

// NewMessages returns n ordinary messages spread round-robin over folders,
// with CRLF line ends, for APPEND. Different rounds give different
// messages (and Message-IDs).
func NewMessages(round, n int, folders []string) []Message {
	g := newGenerator(uint64(1000 + round))
	out := make([]Message, 0, n)
	for i := range n {
		folder := folders[i%len(folders)]
		date, flags := g.message(fmt.Sprintf("new%d.%d", round, i), folder, g.ordinarySize(), false)
		body := bytes.ReplaceAll(g.b.Bytes(), []byte("\n"), []byte("\r\n"))
		out = append(out, Message{Folder: folder, Flags: flags, Date: date, Body: body})
	}
	return out
}
