package demo

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mailvault/mailvault/internal/corpus"
)

var update = flag.Bool("update", false, "rewrite testdata/demo/sample.txt")

// listingPath is the description of the sample kept in the repository.
var listingPath = filepath.Join("..", "..", "testdata", "demo", "sample.txt")

// listing describes every message of the sample, one line each, and the
// changes of the third step.
func listing(s *Sample) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# The sample mailbox of 'mailvault demo', as internal/demo.NewSample generates it\n")
	fmt.Fprintf(&b, "# (see README.md here). One line per message, in APPEND order:\n")
	fmt.Fprintf(&b, "# folder | INTERNALDATE | size | SHA-256 | flags | subject\n")
	fmt.Fprintf(&b, "# Regenerate with: go test ./internal/demo -run TestSampleListing -update\n\n")
	line := func(m corpus.Message) {
		sum := sha256.Sum256(m.Body)
		flags := strings.Join(m.Flags, " ")
		if flags == "" {
			flags = "-"
		}
		fmt.Fprintf(&b, "%s | %s | %d | %s | %s | %s\n", m.Folder, m.InternalDate.UTC().Format("2006-01-02T15:04:05Z"),
			len(m.Body), hex.EncodeToString(sum[:]), flags, subject(m.Body))
	}
	fmt.Fprintf(&b, "## alice: %d messages in %d folders\n", len(s.Messages), len(s.Folders))
	for _, f := range s.Folders {
		fmt.Fprintf(&b, "%s\n", strings.TrimSpace("folder "+f+" "+SpecialUse(f)))
	}
	for _, m := range s.Messages {
		line(m)
	}
	fmt.Fprintf(&b, "\n## step 3: new mail\n")
	for _, m := range s.NewMail {
		line(m)
	}
	fmt.Fprintf(&b, "\n## step 3: deleted\n")
	for _, i := range s.Deleted {
		line(s.Messages[i])
	}
	fmt.Fprintf(&b, "\n## step 3: flagged\n")
	line(s.Messages[s.Flagged])
	return b.Bytes()
}

// The sample is generated, not stored: this pins its bytes (every
// message's SHA-256) so that a change to corpus or to NewSample shows, and
// so that the listing in testdata describes what the demo really loads.
func TestSampleListing(t *testing.T) {
	s, err := NewSample()
	if err != nil {
		t.Fatal(err)
	}
	got := listing(s)
	if *update {
		if err := os.WriteFile(listingPath, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(listingPath)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(gl) && i < len(wl); i++ {
			if gl[i] != wl[i] {
				t.Fatalf("the sample differs from %s at line %d:\n got  %s\n want %s\n(run with -update if the change is meant)", listingPath, i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("the sample has %d lines, %s has %d (run with -update if the change is meant)", len(gl), listingPath, len(wl))
	}
}

func TestSampleDeterministic(t *testing.T) {
	a, err := NewSample()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewSample()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two NewSample calls differ")
	}
}

// The sample has what issue 18 asks of it.
func TestSampleContents(t *testing.T) {
	s, err := NewSample()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(s.Messages); n < 200 || n > 400 {
		t.Errorf("the sample has %d messages; want a few hundred", n)
	}
	perFolder := map[string]int{}
	for _, m := range s.Messages {
		perFolder[m.Folder]++
		if !bytes.Equal(corpus.WireForm(m.Body), m.Body) {
			t.Errorf("message %q is not valid on the wire: a server would rewrite it", subject(m.Body))
		}
	}
	for _, f := range s.Folders {
		if perFolder[f] == 0 {
			t.Errorf("folder %q is empty", f)
		}
	}
	for _, f := range []string{"Sent", "Drafts", "Trash", "Junk", "Archive"} {
		if SpecialUse(f) == "" || perFolder[f] == 0 {
			t.Errorf("special-use folder %q: attribute %q, %d messages", f, SpecialUse(f), perFolder[f])
		}
	}
	has := func(what string, ok func(corpus.Message) bool) {
		t.Helper()
		for _, m := range s.Messages {
			if ok(m) {
				return
			}
		}
		t.Errorf("no message %s", what)
	}
	has("in a folder nested three levels deep", func(m corpus.Message) bool { return strings.Count(m.Folder, "/") == 2 })
	has("in a non-ASCII folder", func(m corpus.Message) bool {
		return strings.ContainsFunc(m.Folder, func(r rune) bool { return r > 0x7f })
	})
	has("with a keyword", func(m corpus.Message) bool {
		for _, f := range m.Flags {
			if !strings.HasPrefix(f, `\`) {
				return true
			}
		}
		return false
	})
	has("flagged", func(m corpus.Message) bool { return hasFlag(m.Flags, `\Flagged`) })
	has("with an attachment", func(m corpus.Message) bool { return bytes.Contains(m.Body, []byte("Content-Disposition: attachment")) })
	has("without Message-ID", func(m corpus.Message) bool { return !bytes.Contains(bytes.ToLower(m.Body), []byte("\nmessage-id:")) })
	has(`with a body line starting "From "`, func(m corpus.Message) bool {
		_, body, _ := bytes.Cut(m.Body, []byte("\r\n\r\n"))
		return bytes.HasPrefix(body, []byte("From ")) || bytes.Contains(body, []byte("\nFrom "))
	})

	if len(s.NewMail) != newMailCount {
		t.Errorf("%d new messages; want %d", len(s.NewMail), newMailCount)
	}
	folders := map[string]bool{}
	for _, i := range s.Deleted {
		folders[s.Messages[i].Folder] = true
	}
	if len(folders) != 3 || !folders[lsFolder] {
		t.Errorf("messages deleted in %v; want three folders, %q among them", folders, lsFolder)
	}
	if hasFlag(s.Messages[s.Flagged].Flags, `\Flagged`) {
		t.Errorf("the message to flag is flagged already")
	}
}
