//go:build unix

package backup

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"
)

// TestMaildirLinkFails: on a file system without hard links (the link
// function fails), every folder's file is a full copy, counted as stored;
// the run goes on as if nothing happened and says why at debug level.
func TestMaildirLinkFails(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EPERM, syscall.EXDEV, syscall.ENOTSUP, syscall.EMLINK} {
		t.Run(errno.Error(), func(t *testing.T) {
			a := newArchiveWith(t, linkingStorages(t)[0])
			a.Link = func(o, n string) error { return &os.LinkError{Op: "link", Old: o, New: n, Err: errno} }
			src, msgs := gmailSource(5)
			var log bytes.Buffer
			res, err := Run(context.Background(), a, Options{Source: "mem://gmail", Protocol: "imap", Connections: 2,
				Log:  slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug})),
				Dial: func(context.Context) (Source, error) { s := *src; return &s, nil }})
			if err != nil {
				t.Fatal(err)
			}
			if res.Stored != res.Added || res.Added <= len(msgs) {
				t.Errorf("stored %d of %d added, want every one (full copies)", res.Stored, res.Added)
			}
			checkArchive(t, a, src)
			if n, extra := maildirCopies(t, a); n != len(msgs) || extra != res.Added-len(msgs) {
				t.Errorf("%d distinct messages with %d extra copies, want %d with %d", n, extra, len(msgs), res.Added-len(msgs))
			}
			if links := strings.Count(log.String(), "not as a hard link"); links != res.Added-len(msgs) || !strings.Contains(log.String(), errno.Error()) {
				t.Errorf("the log says %d times that a message was not linked (%q), want %d: %s", links, errno.Error(), res.Added-len(msgs), log.String())
			}
			if strings.Contains(log.String(), "level=WARN") || strings.Contains(log.String(), "level=ERROR") {
				t.Errorf("the log warns: %s", log.String())
			}
		})
	}
}
