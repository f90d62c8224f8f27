// Package imaptest provides IMAP servers for the tests of other packages.
// Both listen on 127.0.0.1 only and are shut down by t.Cleanup.
//
// StartMem runs go-imap's in-memory server (imapmemserver), a real IMAP
// implementation, with extras the backup tests need: special-use attributes
// in LIST (imapmemserver drops them), STARTTLS and implicit TLS with a
// generated certificate, and a record of every command line received
// (MemServer.Commands) to prove that a backup never selected a folder
// read-write, stored flags, expunged or fetched BODY[] without PEEK.
// Append and Create fill it through an ordinary client.
//
// StartFake runs a small hand-written IMAP4rev1 server that implements just
// what a read-only backup uses and misbehaves on request: UID after the body
// literal in FETCH responses (go-imap then silently drops the messages of a
// UID FETCH), missing UIDs, hanging or cutting the connection in the middle
// of a literal or at an earlier step, and failing FETCH in one folder. It
// records commands too, and exposes the flags of its messages so that a test
// can prove a client changed none.
package imaptest
