// Package localsrc adapts local mail files to the backup engine's Source,
// to back up the mail an old computer keeps on its disk: mbox files
// (Thunderbird, mutt, internal/localstore) and Maildirs (Dovecot, Courier,
// mutt, internal/localstore). Both sources are read-only, list folders
// with "/" as the delimiter, report UIDVALIDITY 0 and hold no file open
// between calls (Close only forgets the examined folder, and the source
// can be used again). Folders are listed parents first; a parent that
// holds no messages of its own is NoSelect. Top-level folders named Sent,
// Drafts, Trash, Junk, Spam, Archive(s) and the like get the matching
// special-use attribute.
//
// # mbox (NewMbox)
//
// The path is one mbox file (one folder, named after the file without a
// ".mbox" extension; "Inbox" becomes INBOX) or a directory tree:
//
//   - Thunderbird's layout: a file per folder (Inbox, Sent, Work), the
//     subfolders of Work in the directory Work.sbd. A .sbd directory
//     without a file of the same name is a NoSelect parent.
//   - internal/localstore's layout: A.mbox with its subfolders in the
//     directory A; names are unescaped (%XX) as localstore escapes them.
//   - Any other directory is a parent folder of the same name, so a
//     Thunderbird "Mail" directory gives one parent per account.
//
// An mbox file is a regular file that starts with "From " or is empty
// (an empty folder). Thunderbird's .msf indexes, hidden files, other files
// and empty files with a non-mail extension (.dat, .lock, .json, …) are
// ignored. An unreadable file is listed as a folder whose Examine fails,
// so that the other folders are still backed up and the failure is
// reported. A top-level "Inbox" in any case is INBOX.
//
// A message starts at every line beginning with "From " at the start of
// the file or after a line break (LF or CRLF files), whether or not an
// empty line precedes it, as mutt and Thunderbird read mbox files. Its
// bytes are everything between its From line and the next one, minus the
// single empty line (LF or CRLF) that separates messages; a last message
// without a final newline is kept as it is.
//
// Quoting: one leading '>' is removed from lines that match ^>From (the
// mboxo quoting Thunderbird writes); lines with two or more '>' are kept
// as they are. mboxo files, which do not quote ">From " lines, therefore
// read back exactly, and mboxrd files (which quote every ^>*From line)
// lose nothing: a ">From " line of the original message reads back as
// ">>From ". Apart from this, the bytes are unchanged (X-Mozilla-Status
// and Status headers stay).
//
// Flags come from X-Mozilla-Status (hex: 0x0001 \Seen, 0x0002 \Answered,
// 0x0004 \Flagged, 0x0008 \Deleted, 0x1000 $Forwarded), X-Mozilla-Keys
// (Thunderbird's tags, as keywords), Status and X-Status (R \Seen,
// A \Answered, F \Flagged, D \Deleted, T \Draft). INTERNALDATE is the date
// of the From line ("From sender Www Mmm dd hh:mm:ss yyyy", with any
// spacing, optionally a zone; see Mbox.Zone for dates without one), else
// the Date header, else the file's modification time.
//
// A message's key is "sha256:" and the first 32 hex digits of the SHA-256
// of its (unquoted) bytes without the X-Mozilla-* header lines, with "#2",
// "#3", … for later identical copies in the same file: keys are stable
// across runs on an unchanged file, do not depend on the other messages,
// and survive Thunderbird rewriting X-Mozilla-Status in place when a
// message is read or tagged (the archive then records a flag change, and
// keeps the bytes it stored first).
// Examine reads the file once, streaming: it splits, unquotes and hashes
// the messages and remembers each message's byte range, without holding a
// message in memory. Fetch reads each range again, unquoting on the fly,
// and fails a message whose bytes are no longer those listed (the file was
// compacted in between); the engine then lists the folder again.
//
// # Maildir (NewMaildir)
//
// The path is a Maildir (cur/, new/, tmp/), which is INBOX, and the tree
// of folders around it, in one of two layouts:
//
//   - Maildir++ (Dovecot's default, Courier), used when the path holds a
//     Maildir whose name starts with '.': folder "A/B" is the Maildir
//     .A.B, each level decoded from IMAP's modified UTF-7 (&AMk-t&AOk- is
//     "Été"); a missing .A is a NoSelect parent.
//   - nested (internal/localstore, Dovecot's LAYOUT=fs): folder "A/B" is
//     the directory A/B, levels decoded from modified UTF-7 (as Dovecot
//     and localstore write them; UTF-8 names are kept) and unescaped (%XX)
//     as localstore escapes them; a directory that is not a Maildir
//     but holds some is a NoSelect parent; a top-level INBOX directory
//     holds INBOX's children (or is INBOX when the path is not a Maildir).
//
// Messages are the files of cur/ and new/ (tmp/ and hidden files are
// ignored). A message's key is its file name up to the first ':', which
// stays the same when the flags change or the file moves from new/ to
// cur/. Flags are the letters after ":2,": D \Draft, F \Flagged,
// P $Forwarded, R \Answered, S \Seen, T \Deleted, and the lower-case
// letters a–z are the keywords the folder's dovecot-keywords file names
// ("<n> <keyword>" lines, n = letter - 'a'). INTERNALDATE is the file's
// modification time, the size the file's. Fetch opens each file and
// streams it; a file renamed since List is found again, a file gone is
// not delivered, and a file that cannot be read fails with an error
// naming it.
package localsrc
