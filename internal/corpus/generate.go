package corpus

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"time"
)

// Message is one message of the corpus.
type Message struct {
	// Folder is the folder name with "/" as the hierarchy separator, for
	// example "Año 2023/Facturas".
	Folder string
	// Flags holds IMAP system flags and keywords, for example `\Seen`,
	// `\Flagged`, "$Label1", "Work". It never holds `\Recent`.
	Flags []string
	// InternalDate is the IMAP INTERNALDATE, in UTC with whole seconds.
	InternalDate time.Time
	// Body is the exact RFC 5322 message.
	Body []byte
}

// Options controls Generate.
type Options struct {
	// Seed selects the corpus; the same Options give the same bytes.
	Seed int64
	// Messages is the number of ordinary messages (2–20 KB) spread over
	// the folders. Zero means 200.
	Messages int
	// Large is the number of multi-megabyte messages with an attachment.
	Large int
	// LargeSize is the exact size in bytes of each large message. Zero
	// means 3 MiB. Sizes below a few KB are rounded up to the smallest
	// message that still has the attachment structure.
	LargeSize int
}

// Defaults applied by Generate.
const (
	DefaultMessages  = 200
	DefaultLargeSize = 3 << 20
	// MinSize and MaxSize bound the size of ordinary messages.
	MinSize = 2 * 1024
	MaxSize = 20 * 1024
)

// EmptyFolder is the folder of Folders that Generate leaves empty.
const EmptyFolder = "Archive"

// Folders returns the folder names the corpus uses, parents before
// children, with "/" as the hierarchy separator.
func Folders() []string {
	return []string{
		"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive",
		"Enviados",
		"Año 2023", "Año 2023/Facturas",
		"日本",
		"Work", "Work/Projects", "Work/Projects/2026",
		"Ünïcödé & Co",
		"Spaces in name",
		"dots.in.name",
	}
}

// Edge cases that Generate also puts into folders other than INBOX.
var edgeExtraFolders = map[string]string{
	EdgeFromLine:         "Work/Projects/2026",
	EdgeFromQuoted:       "Work/Projects/2026",
	EdgeFromDoubleQuoted: "Work/Projects/2026",
	EdgeFromFirstLine:    "Work/Projects/2026",
	EdgeNoFinalNewline:   "Work/Projects/2026",
	EdgeLatin1:           "日本",
	EdgeUTF8:             "日本",
	EdgeRFC2047:          "日本",
	EdgeLongLine:         "Año 2023/Facturas",
}

var (
	dateMin = time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	dateMax = time.Date(2026, 10, 31, 23, 59, 59, 0, time.UTC)
	zones   = []*time.Location{
		time.UTC,
		time.FixedZone("CET", 1*3600),
		time.FixedZone("CEST", 2*3600),
		time.FixedZone("EST", -5*3600),
		time.FixedZone("PDT", -7*3600),
		time.FixedZone("IST", 5*3600+1800),
		time.FixedZone("JST", 9*3600),
		time.FixedZone("NZDT", 13*3600),
		time.FixedZone("NST", -(3*3600 + 1800)),
	}
	me     = mail.Address{Name: "Alex Example", Address: "alex@example.org"}
	people = []mail.Address{
		{Name: "Maria García", Address: "maria.garcia@example.es"},
		{Name: "John Smith", Address: "john.smith@example.com"},
		{Name: "Zoë Brontë", Address: "zoe@example.co.uk"},
		{Name: "山田太郎", Address: "taro.yamada@example.jp"},
		{Name: "François Dupont", Address: "f.dupont@example.fr"},
		{Name: "Ingrid Økland", Address: "ingrid@example.no"},
		{Name: "Billing", Address: "billing@example.net"},
		{Name: "", Address: "noreply@example.com"},
		{Name: "Dev Team", Address: "dev-team@lists.example.org"},
		{Name: "Oleksandr Шевченко", Address: "o.shevchenko@example.com.ua"},
		{Name: "Mike O'Neil", Address: "mike@example.ie"},
		{Name: "Priya Raman", Address: "priya@example.in"},
	}
	subjects = []string{
		"Meeting notes for %s",
		"Re: Budget %d review",
		"Invoice #%d",
		"Fwd: photos from the trip",
		"Factura %d — pago pendiente",
		"Quarterly report Q%d",
		"Your order %d has shipped",
		"Lunch on %s?",
		"[dev] build #%d failed",
		"会議の議事録 %d",
		"Grüße und Rückfrage zu %s",
		"Reminder: dentist appointment",
		"Re: Re: contract draft v%d",
		"Résumé attached",
		"Weekly digest %d",
	}
	words = strings.Fields(`the a of and to in is for on with as by at from that this be are was
		project meeting report budget invoice schedule review draft plan team client server backup
		mail folder message archive release deadline update question answer thanks please regards
		tomorrow monday friday week month year morning afternoon office remote call agenda notes
		número año señor café résumé naïve über straße größe 東京 日本 ありがとう données été
		quarterly figures attached below above following previous next final version change`)
	spamSubjects = []string{
		"You have WON a prize!!!",
		"Cheap meds, no prescription",
		"URGENT: verify your account",
		"Re: your invoice is overdue",
	}
	keywords = []string{"$Label1", "$Label2", "$Label3", "$Label4", "$Label5", "$Forwarded", "$MDNSent", "Work", "NonJunk", "Later"}
)

// folderWeights gives the share of ordinary messages per folder; Archive
// gets none.
var folderWeights = []struct {
	folder string
	weight int
}{
	{"INBOX", 30}, {"Sent", 12}, {"Drafts", 3}, {"Trash", 5}, {"Junk", 4},
	{"Enviados", 4}, {"Año 2023", 4}, {"Año 2023/Facturas", 6}, {"日本", 4},
	{"Work", 6}, {"Work/Projects", 6}, {"Work/Projects/2026", 4},
	{"Ünïcödé & Co", 3}, {"Spaces in name", 3}, {"dots.in.name", 3},
}

// Generate returns the corpus described by opts. It is deterministic: the
// same opts give the same messages, flags, dates and bytes on every run
// and platform.
//
// The result holds opts.Messages ordinary messages (every folder of
// Folders but EmptyFolder gets at least one when there are enough), every
// EdgeCases body in INBOX (some also in one other folder), and opts.Large
// large messages of exactly opts.LargeSize bytes. Messages of one folder
// appear in their APPEND order.
func Generate(opts Options) []Message {
	n := opts.Messages
	if n == 0 {
		n = DefaultMessages
	}
	largeSize := opts.LargeSize
	if largeSize == 0 {
		largeSize = DefaultLargeSize
	}
	seed := uint64(opts.Seed)
	r := rand.New(rand.NewPCG(seed, seed))

	msgs := make([]Message, 0, n+opts.Large+len(edgeExtraFolders)+20)
	total := 0
	for _, fw := range folderWeights {
		total += fw.weight
	}
	for i := range n {
		var folder string
		if i < len(folderWeights) {
			folder = folderWeights[i].folder
		} else {
			x := r.IntN(total)
			for _, fw := range folderWeights {
				if x < fw.weight {
					folder = fw.folder
					break
				}
				x -= fw.weight
			}
		}
		msgs = append(msgs, ordinary(r, i, folder))
	}

	// Edge cases go to random positions, so that they sit between
	// ordinary messages of the same folder.
	edges := EdgeCases()
	for k, name := range EdgeCaseNames() {
		folders := []string{"INBOX"}
		if f, ok := edgeExtraFolders[name]; ok {
			folders = append(folders, f)
		}
		for j, f := range folders {
			m := Message{
				Folder:       f,
				Flags:        edgeFlags(k + j),
				InternalDate: time.Date(2019, 3, 5, 10, 0, k*3+j, 0, time.UTC),
				Body:         bytes.Clone(edges[name]),
			}
			pos := r.IntN(len(msgs) + 1)
			msgs = append(msgs[:pos], append([]Message{m}, msgs[pos:]...)...)
		}
	}

	largeFolders := []string{"INBOX", "Sent", "Work/Projects"}
	for i := range opts.Large {
		msgs = append(msgs, large(r, i, largeFolders[i%len(largeFolders)], largeSize))
	}
	return msgs
}

func edgeFlags(k int) []string {
	switch k % 4 {
	case 0:
		return nil
	case 1:
		return []string{`\Seen`}
	case 2:
		return []string{`\Seen`, `\Flagged`, "$Label1"}
	default:
		return []string{`\Answered`, "Work"}
	}
}

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

func randomDate(r *rand.Rand) time.Time {
	span := dateMax.Unix() - dateMin.Unix()
	return time.Unix(dateMin.Unix()+r.Int64N(span+1), 0).UTC()
}

func flagsFor(r *rand.Rand, folder string) []string {
	var f []string
	add := func(p float64, flag string) {
		if r.Float64() < p {
			f = append(f, flag)
		}
	}
	switch folder {
	case "Sent", "Enviados":
		f = append(f, `\Seen`)
		add(0.05, `\Flagged`)
	case "Drafts":
		f = append(f, `\Draft`)
		add(0.5, `\Seen`)
	case "Trash":
		add(0.8, `\Seen`)
		add(0.5, `\Deleted`)
	case "Junk":
		add(0.3, `\Seen`)
		f = append(f, "$Junk")
	default:
		add(0.7, `\Seen`)
		add(0.15, `\Answered`)
		add(0.1, `\Flagged`)
		add(0.03, `\Deleted`)
		add(0.02, `\Draft`)
	}
	if r.Float64() < 0.3 {
		for range 1 + r.IntN(2) {
			k := pick(r, keywords)
			dup := false
			for _, x := range f {
				dup = dup || x == k
			}
			if !dup {
				f = append(f, k)
			}
		}
	}
	return f
}

// header writes one header field, folding nothing: callers keep lines
// short or fold themselves with CRLF + TAB.
func header(b *bytes.Buffer, name, value string) {
	b.WriteString(name)
	b.WriteString(": ")
	b.WriteString(value)
	b.WriteString("\r\n")
}

func encodeSubject(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return mime.QEncoding.Encode("utf-8", s)
		}
	}
	return s
}

func subject(r *rand.Rand, folder string, i int, date time.Time) string {
	if folder == "Junk" {
		return pick(r, spamSubjects)
	}
	tmpl := pick(r, subjects)
	switch {
	case strings.Contains(tmpl, "%s"):
		return fmt.Sprintf(tmpl, date.Format("January 2"))
	case strings.Contains(tmpl, "%d"):
		return fmt.Sprintf(tmpl, 1000+i)
	}
	return tmpl
}

// text returns CRLF-terminated lines of about 72 characters with at least
// size bytes.
func text(r *rand.Rand, size int) string {
	var b strings.Builder
	line := 0
	for b.Len() < size {
		w := pick(r, words)
		if line > 0 && line+1+len(w) > 72 {
			b.WriteString("\r\n")
			line = 0
			if r.IntN(8) == 0 {
				b.WriteString("\r\n")
			}
		}
		if line > 0 {
			b.WriteByte(' ')
			line++
		}
		b.WriteString(w)
		line += len(w)
	}
	b.WriteString("\r\n")
	return b.String()
}

func qp(s string) string {
	var b bytes.Buffer
	w := quotedprintable.NewWriter(&b)
	_, _ = w.Write([]byte(s))
	_ = w.Close()
	return b.String()
}

// b64 encodes data in base64 lines of 76 characters, each ending in CRLF.
func b64(data []byte) string {
	enc := base64.StdEncoding.EncodeToString(data)
	var b strings.Builder
	b.Grow(len(enc) + len(enc)/76*2 + 2)
	for len(enc) > 76 {
		b.WriteString(enc[:76])
		b.WriteString("\r\n")
		enc = enc[76:]
	}
	if enc != "" {
		b.WriteString(enc)
		b.WriteString("\r\n")
	}
	return b.String()
}

// b64Len is len(b64(make([]byte, n))).
func b64Len(n int) int {
	chars := (n + 2) / 3 * 4
	return chars + (chars+75)/76*2
}

func commonHeaders(r *rand.Rand, b *bytes.Buffer, i int, folder string, internal time.Time) (from mail.Address, date time.Time) {
	outgoing := folder == "Sent" || folder == "Enviados" || folder == "Drafts"
	from = pick(r, people)
	to := []mail.Address{me}
	if outgoing {
		to[0] = from
		from = me
	}
	if r.IntN(4) == 0 {
		to = append(to, pick(r, people))
	}
	// The Date header is some seconds to hours before delivery, in one of
	// several time zones.
	date = internal.Add(-time.Duration(r.IntN(3*3600)) * time.Second).In(pick(r, zones))
	host := strings.SplitN(from.Address, "@", 2)[1]
	if !outgoing {
		header(b, "Return-Path", "<"+from.Address+">")
		fmt.Fprintf(b, "Received: from mail.%s (mail.%s [192.0.2.%d])\r\n\tby mx.example.org (Postfix) with ESMTPS id %X\r\n\tfor <%s>; %s\r\n",
			host, host, 1+r.IntN(254), r.Uint32(), me.Address, internal.In(zones[1]).Format(time.RFC1123Z))
	}
	header(b, "From", from.String())
	tos := make([]string, len(to))
	for k, a := range to {
		tos[k] = a.String()
	}
	header(b, "To", strings.Join(tos, ",\r\n\t"))
	if r.IntN(6) == 0 {
		cc := pick(r, people)
		header(b, "Cc", cc.String())
	}
	header(b, "Subject", encodeSubject(subject(r, folder, i, date)))
	header(b, "Date", date.Format(time.RFC1123Z))
	header(b, "Message-ID", fmt.Sprintf("<%016x.%d@%s>", r.Uint64(), i, host))
	if r.IntN(5) == 0 {
		ref := fmt.Sprintf("<%016x@%s>", r.Uint64(), host)
		header(b, "In-Reply-To", ref)
		header(b, "References", ref)
	}
	if r.IntN(3) == 0 {
		header(b, "X-Mailer", pick(r, []string{"Thunderbird 115.3.1", "Apple Mail (2.3731)", "Microsoft Outlook 16.0", "mutt/2.2.12"}))
	}
	header(b, "MIME-Version", "1.0")
	return from, date
}

// ordinary returns a message of MinSize..MaxSize bytes. It draws two
// seeds from r and builds the message from its own generator, rebuilding
// it with more or less text until the size fits.
func ordinary(r *rand.Rand, i int, folder string) Message {
	s1, s2 := r.Uint64(), r.Uint64()
	target := MinSize + 256 + r.IntN(MaxSize-MinSize-1024)
	room := target - 1500
	for {
		m := buildOrdinary(rand.New(rand.NewPCG(s1, s2)), i, folder, room)
		switch n := len(m.Body); {
		case n < MinSize:
			room += MinSize - n + 256
		case n > MaxSize:
			room -= n - MaxSize + 256
		default:
			return m
		}
	}
}

func buildOrdinary(r *rand.Rand, i int, folder string, room int) Message {
	internal := randomDate(r)
	var b bytes.Buffer
	commonHeaders(r, &b, i, folder, internal)
	room = max(room, 200)
	boundary := fmt.Sprintf("=_%016x", r.Uint64())
	switch r.IntN(5) {
	case 0: // plain US-ASCII-ish text, 8bit
		header(&b, "Content-Type", "text/plain; charset=utf-8; format=flowed")
		header(&b, "Content-Transfer-Encoding", "8bit")
		b.WriteString("\r\n")
		b.WriteString(text(r, room))
	case 1: // quoted-printable
		header(&b, "Content-Type", "text/plain; charset=utf-8")
		header(&b, "Content-Transfer-Encoding", "quoted-printable")
		b.WriteString("\r\n")
		b.WriteString(qp(text(r, room*9/10)))
	case 2, 3: // multipart/alternative
		header(&b, "Content-Type", "multipart/alternative;\r\n\tboundary=\""+boundary+"\"")
		b.WriteString("\r\nThis is a multi-part message in MIME format.\r\n")
		t := text(r, room*4/10)
		fmt.Fprintf(&b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n%s\r\n", boundary, qp(t))
		html := "<html><body><p>" + strings.ReplaceAll(strings.TrimSuffix(t, "\r\n"), "\r\n\r\n", "</p>\r\n<p>") + "</p></body></html>\r\n"
		fmt.Fprintf(&b, "--%s\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n%s\r\n", boundary, qp(html))
		fmt.Fprintf(&b, "--%s--\r\n", boundary)
	default: // multipart/mixed with a small attachment
		header(&b, "Content-Type", "multipart/mixed; boundary=\""+boundary+"\"")
		b.WriteString("\r\n")
		t := text(r, room/3)
		fmt.Fprintf(&b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n%s\r\n", boundary, t)
		att := make([]byte, max(room-len(t), 100)*3/4)
		for k := range att {
			att[k] = byte(r.Uint32())
		}
		name := fmt.Sprintf("scan-%04d.pdf", i)
		fmt.Fprintf(&b, "--%s\r\nContent-Type: application/pdf; name=\"%s\"\r\nContent-Disposition: attachment; filename=\"%s\"\r\nContent-Transfer-Encoding: base64\r\n\r\n%s\r\n", boundary, name, name, b64(att))
		fmt.Fprintf(&b, "--%s--\r\n", boundary)
	}
	return Message{Folder: folder, Flags: flagsFor(r, folder), InternalDate: internal, Body: b.Bytes()}
}

// large returns a multipart/mixed message of exactly size bytes (or the
// smallest possible one) with a base64 attachment.
func large(r *rand.Rand, i int, folder string, size int) Message {
	internal := randomDate(r)
	var head bytes.Buffer
	commonHeaders(r, &head, 100000+i, folder, internal)
	boundary := fmt.Sprintf("=_big%016x", r.Uint64())
	name := fmt.Sprintf("holiday-video-%d.mp4", i)
	header(&head, "Content-Type", "multipart/mixed; boundary=\""+boundary+"\"")
	head.WriteString("\r\n")
	t := text(r, 600)
	textPart := fmt.Sprintf("--%s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n", boundary)
	attHead := fmt.Sprintf("--%s\r\nContent-Type: video/mp4; name=\"%s\"\r\nContent-Disposition: attachment; filename=\"%s\"\r\nContent-Transfer-Encoding: base64\r\n\r\n", boundary, name, name)
	tail := fmt.Sprintf("--%s--\r\n", boundary)
	overhead := head.Len() + len(textPart) + len(t) + len(attHead) + len(tail)

	// The largest attachment that fits, then pad the text part so the
	// total is exactly size.
	avail := size - overhead
	n := max(avail/4*3, 0)
	for n > 0 && b64Len(n) > avail {
		n--
	}
	slack := max(avail-b64Len(n), 0)
	att := make([]byte, n)
	for k := 0; k+8 <= n; k += 8 {
		v := r.Uint64()
		for j := range 8 {
			att[k+j] = byte(v >> (8 * j))
		}
	}
	for k := n &^ 7; k < n; k++ {
		att[k] = byte(r.Uint32())
	}
	// Padding goes at the end of the text's last line.
	t = strings.TrimSuffix(t, "\r\n") + strings.Repeat(".", slack) + "\r\n"

	var b bytes.Buffer
	b.Grow(size)
	b.Write(head.Bytes())
	b.WriteString(textPart)
	b.WriteString(t)
	b.WriteString(attHead)
	b.WriteString(b64(att))
	b.WriteString(tail)
	flags := []string{`\Seen`}
	if i%2 == 1 {
		flags = append(flags, `\Flagged`, "$Label2")
	}
	return Message{Folder: folder, Flags: flags, InternalDate: internal, Body: b.Bytes()}
}
