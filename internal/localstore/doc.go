// Package localstore implements restore targets that write to the local
// file system: a Maildir tree, mbox files and .eml files. All three have
// "/" as their hierarchy delimiter, create directories with mode 0700 and
// files with mode 0600, never replace an existing message file, and index
// what a folder already holds (Message-ID with size, SHA-256 for messages
// without a Message-ID) so that running a restore again adds only what is
// missing.
//
// # Folder names on disk
//
// A folder "A/B" is stored one level per path component. Each level is
// escaped (see internal/localname): '%', '/', control bytes and invalid
// UTF-8 become %XX, a leading '.' becomes %2E (so ".", "..", hidden and Maildir++ names
// cannot occur), the empty level becomes "%", and a level the layout
// reserves (Maildir's cur, new, tmp, dovecot* and courier* files; names
// ending in .mbox or .eml; Windows device names such as CON) has its
// first byte escaped. The mbox and .eml trees, meant to be copied
// anywhere, also escape the characters Windows forbids (\ < > : " | ? *)
// and a trailing dot or space. Everything else, including non-ASCII
// letters, spaces and inner dots, is kept. A Maildir tree then writes the
// level in IMAP's modified UTF-7 ("Entwürfe" is the directory
// Entw&APw-rfe), as Dovecot stores folder names without the UTF-8 option
// of mail_location; NewMaildirUTF8 keeps UTF-8 names for a Dovecot with
// that option. Folders lists the decoded, unescaped names. INBOX is
// recognized without regard to case.
//
// A level whose file name would be longer than 255 bytes (250 for mbox,
// which adds ".mbox") is shortened: the longest prefix of the level that
// fits, cut between characters, then "%~" and the first 16 hex digits of
// the SHA-256 of the whole level. The same level always gets the same
// name, so a re-run finds the folder again; escape never writes "%~", so
// no other folder gets it. StoredAs tells the restore which folders were
// shortened and the name Folders lists them under. A folder the file
// system still refuses (a path longer than it allows, a file in the way)
// fails with restore.ErrFolderRefused: the other folders are restored.
//
// # One restore at a time, and no leftovers
//
// A target that writes first takes the lock file .mailvault-restore.lock
// in its root (an advisory lock, dropped by the kernel when the process
// dies; the file is removed at Close). A second restore into the same
// tree is refused with ErrTargetInUse. Every temporary file of this
// package is named .mailvault-<random>.tmp (in a Maildir's tmp/, or in an
// .eml folder's directory); once a restore holds the lock, no other
// restore of ours owns any, so it removes them all: what a killed restore
// left is gone after the next one, whether it appends anything or not.
// (In a Maildir's tmp/ the names of earlier versions, <unique name with
// Q<n>R<16 hex digits>>.<this host> and .keywords.<16 hex digits>, are
// removed too; Dovecot's own files there are left alone.)
//
// # Maildir (NewMaildir, NewMaildirUTF8)
//
// Dovecot's LAYOUT=fs: INBOX is the Maildir at the root itself (root/cur,
// root/new, root/tmp), folder "A/B" is the Maildir root/A/B with its own
// cur, new and tmp (parents are Maildirs too), and the children of INBOX
// are under root/INBOX. A stock Dovecot configured with
//
//	mail_location = maildir:ROOT:LAYOUT=fs
//
// serves the tree NewMaildir writes, and one with
// maildir:ROOT:LAYOUT=fs:UTF-8 the tree NewMaildirUTF8 writes (the tests
// check both). NewMaildir refuses (ErrUTF8Tree) a tree that already has
// folder directories with UTF-8 names, which would otherwise get a second
// directory. Each message is written to a temporary file in tmp/,
// synced, given INTERNALDATE as its modification and access time, and
// hard-linked into cur/ as <unique>,S=<size>:2,<flags>, where <unique> is
// <seconds>.M<µs>P<pid>Q<n>R<random>.<host> (a name taken is never
// replaced: another unique name is tried), then cur/ is synced.
// Flags are the standard letters in ASCII order: D \Draft, F \Flagged,
// P $Forwarded, R \Answered, S \Seen, T \Deleted. Keywords are lower-case
// letters a–z mapped to names by the folder's dovecot-keywords file
// ("<n> <keyword>" lines, 0 for a), which keeps the letters already
// assigned; a folder has at most 26 keywords, and keywords beyond that, or
// that are not IMAP atoms, are dropped and counted (DroppedKeywords, for
// the messages stored). $Forwarded is kept as a keyword as well as P,
// because Dovecot ignores P.
//
// # mbox (NewMbox)
//
// One mboxrd file per folder, in a tree: folder "A/B" is the file
// root/A/B.mbox and its parent "A" is root/A.mbox (subfolders of a folder
// live in the directory of the same name, without the extension). This is
// Thunderbird's layout (file A, subfolders in A.sbd/) with the marker moved
// from the directory to the file: the extension lets import tools
// (ImportExportTools NG's "import mbox files" and its recursive directory
// import, Apple Mail, mutt, Python's mailbox.mbox) recognize the files,
// and the plain directory names mirror the folder tree.
//
// A record is a From line ("From MAILER-DAEMON <INTERNALDATE in UTC,
// asctime>", formats.FromLine), the message with mboxrd quoting (a line
// matching ^>*From gains a '>'; formats.QuoteWriter), a newline if the
// message does not end in one, and a blank line. Message bytes are never
// changed otherwise, so flags and keywords are not kept in mbox files (no
// X-Mozilla-Status or Status headers); restore to Maildir or IMAP to keep
// them. A reader that removes the quoting and the final blank line gets
// the message back, with one newline more for a message that did not end
// in one; Index therefore records each record both with and without its
// final newline.
//
// Files are only appended to, by one writer at a time (an advisory lock).
// A record up to 16 MiB is built in memory and written with one write;
// larger ones are streamed, and cut off again if writing fails. A record
// is written with a pending From line ("From MAILER_DAEMON …") and
// committed by a one-byte write turning it into formats.FromLine's once
// the whole record is in the file. When a file is next opened (to index
// or append), a last record that is pending, whose From line is cut short,
// or that is ours but does not end in a blank line is ignored and then
// cut off, so a crash in the middle of an append leaves nothing that a
// re-run takes for the message: it is appended again exactly once. (After
// a machine crash that lost the end of a committed record at a blank line
// of a message with bare LF line endings, the shortened record stays; it
// does not match the message, which is appended again after it.) Files
// are synced when the target moves to another folder and on Close. A file
// that does not start with "From " is refused; a complete foreign last
// record without a final blank line is padded with newlines first.
//
// # .eml files (NewEML)
//
// One file per message in a directory per folder: folder "A/B" is the
// directory root/A/B. A file is named YYYYMMDD-HHMMSS-<first 12 hex
// digits of the SHA-256>.eml after INTERNALDATE in UTC, so names are
// stable and sort by date; its modification time is INTERNALDATE. It is
// written to a temporary file (.mailvault-<random>.tmp) in the same
// directory, synced and hard-linked to its name. If the name is taken by a file with the same
// bytes, the message is already there; by other bytes, "-2", "-3", … is
// appended to the name. Flags and keywords are not kept.
package localstore
