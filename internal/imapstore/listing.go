package imapstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailvault/mailvault/backup"
)

var specialUse = map[imap.MailboxAttr]bool{
	imap.MailboxAttrAll: true, imap.MailboxAttrArchive: true, imap.MailboxAttrDrafts: true,
	imap.MailboxAttrFlagged: true, imap.MailboxAttrJunk: true, imap.MailboxAttrSent: true, imap.MailboxAttrTrash: true,
}

// Folders implements backup.Source: LIST (with LIST-STATUS where the
// server has it), else pipelined STATUS.
//
// Servers do not always answer in a form go-imap can read, and go-imap
// then fails the command and closes the connection. Folders survives
// that: a LIST reply it cannot read (a name that is not valid modified
// UTF-7) is read again with mailvault's own tolerant parser on a
// connection of its own; a STATUS reply it cannot read (GNU Mailutils
// leaves a name with a space unquoted) leaves that folder and the ones
// after it without a status, so the engine EXAMINEs them. Either way the
// Store reconnects and says so through Warn.
func (s *Store) Folders(ctx context.Context) ([]backup.FolderInfo, error) {
	listStatus := s.caps.Has(imap.CapListStatus) || s.caps.Has(imap.CapIMAP4rev2)
	out, err := s.list(ctx, listStatus)
	if err != nil {
		if !s.unreadable(ctx, err) {
			return nil, s.connErr(ctx, "list folders", err)
		}
		raw, rerr := s.listRaw(ctx)
		if rerr != nil {
			return nil, s.connErr(ctx, "list folders", fmt.Errorf("%w (and again with mailvault's own parser: %w)", err, rerr))
		}
		s.warn(fmt.Sprintf("the server's LIST reply could not be read (%v): listed the folders with mailvault's own parser", err))
		if err := s.redial(ctx); err != nil {
			return nil, err
		}
		out, listStatus = raw, false
	}
	if listStatus {
		return out, nil
	}
	return out, s.status(ctx, out)
}

// list runs LIST "" "*" through go-imap.
func (s *Store) list(ctx context.Context, listStatus bool) ([]backup.FolderInfo, error) {
	var out []backup.FolderInfo
	err := s.do(ctx, func() error {
		opts := &imap.ListOptions{ReturnSpecialUse: s.caps.Has(imap.CapSpecialUse)}
		if listStatus {
			opts.ReturnStatus = statusOptions(s.caps)
		}
		list, err := s.c.List("", "*", opts).Collect()
		if err != nil {
			return err
		}
		for _, ld := range list {
			fi := folderInfo(ld.Mailbox, ld.Attrs)
			if ld.Delim != 0 {
				fi.Delimiter = string(ld.Delim)
			}
			if ld.Status != nil {
				fi.Status = statusOf(ld.Status)
			}
			out = append(out, fi)
		}
		return nil
	})
	return out, err
}

func statusOptions(caps imap.CapSet) *imap.StatusOptions {
	return &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true, HighestModSeq: caps.Has(imap.CapCondStore)}
}

// folderInfo fills in a listed folder's attributes.
func folderInfo(name string, attrs []imap.MailboxAttr) backup.FolderInfo {
	fi := backup.FolderInfo{Name: name}
	for _, a := range attrs {
		fi.Attrs = append(fi.Attrs, string(a))
		if len(a) < 2 {
			continue
		}
		canon := imap.MailboxAttr(`\` + strings.ToUpper(string(a[1:2])) + strings.ToLower(string(a[2:])))
		if specialUse[canon] && fi.SpecialUse == "" {
			fi.SpecialUse = string(canon)
		}
		if strings.EqualFold(string(a), string(imap.MailboxAttrNoSelect)) || strings.EqualFold(string(a), string(imap.MailboxAttrNonExistent)) {
			fi.NoSelect = true
		}
	}
	return fi
}

// status fills in the status of every selectable folder with pipelined
// STATUS commands. A folder the server answers NO for is left without
// (the engine EXAMINEs it). When go-imap cannot read an answer, the
// connection is gone: the folders not answered yet stay without a status
// and the Store reconnects.
func (s *Store) status(ctx context.Context, out []backup.FolderInfo) error {
	failedAt := -1
	var failure error
	err := s.do(ctx, func() error {
		opts := statusOptions(s.caps)
		cmds := make([]*imapclient.StatusCommand, len(out))
		for i := range out {
			if !out[i].NoSelect && out[i].Err == nil && out[i].Status == nil {
				cmds[i] = s.c.Status(out[i].Name, opts)
			}
		}
		for i, cmd := range cmds {
			if cmd == nil {
				continue
			}
			sd, err := cmd.Wait()
			if err != nil {
				var ie *imap.Error
				if errors.As(err, &ie) {
					continue // this folder is examined instead
				}
				if failedAt < 0 {
					failedAt, failure = i, err
				}
				continue
			}
			out[i].Status = statusOf(sd)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if failedAt < 0 {
		return nil
	}
	if !s.unreadable(ctx, failure) {
		return s.connErr(ctx, "status", failure)
	}
	s.warn(fmt.Sprintf("the server's STATUS reply for folder %q could not be read (%v): that folder and the %d after it are examined instead", out[failedAt].Name, failure, countWithout(out[failedAt+1:])))
	return s.redial(ctx)
}

func countWithout(fis []backup.FolderInfo) int {
	n := 0
	for _, fi := range fis {
		if !fi.NoSelect && fi.Err == nil && fi.Status == nil {
			n++
		}
	}
	return n
}

func statusOf(sd *imap.StatusData) *backup.FolderStatus {
	fs := &backup.FolderStatus{UIDValidity: sd.UIDValidity, UIDNext: uint32(sd.UIDNext), HighestModSeq: sd.HighestModSeq}
	if sd.NumMessages != nil {
		fs.Messages = *sd.NumMessages
	}
	return fs
}

// unreadable reports whether err says that go-imap could not read the
// server's reply (it then closes the connection), as opposed to a NO or
// BAD answer, a timeout, or a cancelled run. A connection the server
// closed counts too: a second attempt costs little and tells.
func (s *Store) unreadable(ctx context.Context, err error) bool {
	var ie *imap.Error
	return err != nil && ctx.Err() == nil && !errors.As(err, &ie) && !s.wd.TimedOut.Load()
}

// redial replaces the Store's connection with a new one. The old one is
// closed first: a fleet run's connection limit (mailconn.Config.DialContext)
// may have no room for both at once.
func (s *Store) redial(ctx context.Context) error {
	s.c.Close()
	n, err := Dial(ctx, s.cfg)
	if err != nil {
		return err
	}
	s.c, s.wd, s.caps = n.c, n.wd, n.caps
	return nil
}

func (s *Store) warn(msg string) {
	if s.Warn != nil {
		s.Warn(msg)
	}
}

// listRaw lists the folders with mailvault's own parser. A name that is
// not valid modified UTF-7 is kept under an escaped name (see
// escapeMailbox) and marked as failed: go-imap cannot name it to the
// server, so that folder alone is not backed up.
func (s *Store) listRaw(ctx context.Context) ([]backup.FolderInfo, error) {
	entries, err := rawList(ctx, s.cfg, s.caps.Has(imap.CapSpecialUse))
	if err != nil {
		return nil, err
	}
	var out []backup.FolderInfo
	taken := map[string]bool{}
	for _, e := range entries {
		name, derr := decodeMailbox(e.name)
		if derr == nil {
			taken[name] = true
		}
	}
	for _, e := range entries {
		attrs := make([]imap.MailboxAttr, len(e.attrs))
		for i, a := range e.attrs {
			attrs[i] = imap.MailboxAttr(a)
		}
		name, derr := decodeMailbox(e.name)
		if derr != nil {
			name = escapeMailbox(e.name)
			for taken[name] {
				name += "~"
			}
			taken[name] = true
		}
		fi := folderInfo(name, attrs)
		fi.Delimiter = e.delim
		if derr != nil && !fi.NoSelect {
			fi.Err = fmt.Errorf("the server's name for it is not valid modified UTF-7 (%v); mailvault cannot open it (listed as %q)", derr, name)
			s.warn(fmt.Sprintf("folder %q: %v", name, fi.Err))
		}
		out = append(out, fi)
	}
	return out, nil
}
