package demo

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mailvault/mailvault/internal/corpus"
)

// The sample is corpus.Generate's mailbox for these options, plus a few
// more generated messages for the Archive folder and as the new mail of
// the demo's third step. Changing them changes testdata/demo/sample.txt
// (go test ./internal/demo -run TestSampleListing -update).
const (
	sampleSeed     = 18
	sampleMessages = 250
	archiveCount   = 6 // messages in Archive, which corpus leaves empty
	newMailCount   = 2
)

// Users of the demo server: the account that is backed up and the second
// account a restore writes to.
const (
	Source = "alice"
	Second = "bob"
)

// specialUse are the folders of the sample that carry a SPECIAL-USE
// attribute.
var specialUse = map[string]string{
	"Sent":    `\Sent`,
	"Drafts":  `\Drafts`,
	"Trash":   `\Trash`,
	"Junk":    `\Junk`,
	"Archive": `\Archive`,
}

// Sample is the demo's mailbox and the changes its third step makes.
type Sample struct {
	// Folders are the folders of the mailbox, parents before children,
	// with "/" between levels; INBOX first.
	Folders []string
	// Messages are the messages of the mailbox in APPEND order.
	Messages []corpus.Message
	// NewMail arrives in INBOX in the third step.
	NewMail []corpus.Message
	// Deleted are indexes in Messages of the messages deleted on the
	// server in the third step, one each in three folders.
	Deleted []int
	// Flagged is the index in Messages of the message flagged in the
	// third step.
	Flagged int
}

// SpecialUse returns the SPECIAL-USE attribute of a folder of the sample,
// or "".
func SpecialUse(folder string) string { return specialUse[folder] }

// NewSample returns the demo's sample. It is the same, byte for byte, on
// every run and platform: everything in it comes from corpus.Generate,
// which uses a seeded generator and fixed dates.
func NewSample() (*Sample, error) {
	s := &Sample{Folders: corpus.Folders()}
	// Only messages a server serves as they were stored: corpus's edge
	// cases with bare LF, lone CR or NUL bytes are not valid on the wire,
	// and servers rewrite them (see corpus.WireForm).
	for _, m := range corpus.Generate(corpus.Options{Seed: sampleSeed, Messages: sampleMessages}) {
		if bytes.Equal(corpus.WireForm(m.Body), m.Body) {
			s.Messages = append(s.Messages, m)
		}
	}
	extra := ordinaryOnly(corpus.Generate(corpus.Options{Seed: sampleSeed + 1, Messages: archiveCount + newMailCount}))
	if len(extra) != archiveCount+newMailCount {
		return nil, fmt.Errorf("demo sample: %d extra messages generated, want %d", len(extra), archiveCount+newMailCount)
	}
	for _, m := range extra[:archiveCount] {
		m.Folder = corpus.EmptyFolder
		s.Messages = append(s.Messages, m)
	}
	arrived := time.Date(2026, 11, 2, 8, 30, 0, 0, time.UTC)
	for i, m := range extra[archiveCount:] {
		m.Folder, m.Flags, m.InternalDate = "INBOX", nil, arrived.Add(time.Duration(i)*17*time.Minute)
		s.NewMail = append(s.NewMail, m)
	}

	edges := corpus.EdgeCases()
	find := func(what, folder string, ok func(corpus.Message) bool) (int, error) {
		for i, m := range s.Messages {
			if m.Folder == folder && !hasFlag(m.Flags, `\Deleted`) && ok(m) {
				return i, nil
			}
		}
		return 0, fmt.Errorf("demo sample: no %s in %q", what, folder)
	}
	isEdge := func(name string) func(corpus.Message) bool {
		return func(m corpus.Message) bool { return bytes.Equal(m.Body, edges[name]) }
	}
	ordinary := func(m corpus.Message) bool { return !isEdgeCase(m.Body, edges) }
	for _, d := range []struct {
		what, folder string
		ok           func(corpus.Message) bool
	}{
		{"message without Message-ID", "INBOX", isEdge(corpus.EdgeNoMessageID)},
		{"message in raw UTF-8", "日本", isEdge(corpus.EdgeUTF8)},
		{"ordinary message", "Work/Projects", ordinary},
	} {
		i, err := find(d.what, d.folder, d.ok)
		if err != nil {
			return nil, err
		}
		s.Deleted = append(s.Deleted, i)
	}
	i, err := find("unflagged message", "INBOX", func(m corpus.Message) bool {
		return ordinary(m) && !hasFlag(m.Flags, `\Flagged`)
	})
	if err != nil {
		return nil, err
	}
	s.Flagged = i
	return s, nil
}

// ordinaryOnly returns the messages that are not corpus edge cases.
func ordinaryOnly(msgs []corpus.Message) []corpus.Message {
	edges := corpus.EdgeCases()
	var out []corpus.Message
	for _, m := range msgs {
		if !isEdgeCase(m.Body, edges) {
			out = append(out, m)
		}
	}
	return out
}

func isEdgeCase(body []byte, edges map[string][]byte) bool {
	for _, e := range edges {
		if bytes.Equal(body, e) {
			return true
		}
	}
	return false
}

// hasFlag reports whether flags holds flag, ignoring case as IMAP does.
func hasFlag(flags []string, flag string) bool {
	return slices.ContainsFunc(flags, func(f string) bool { return strings.EqualFold(f, flag) })
}
