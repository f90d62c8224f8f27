package imapstore

import (
	"bytes"
	"fmt"
	"io"

	"github.com/mailvault/mailvault/restore"
)

// TargetQuirks adapt a restore target to its provider (see package
// provider and docs/SERVERS.md).
type TargetQuirks struct {
	Provider string // the provider's name, for messages
	// Reserved reports whether the provider refuses to create a folder of
	// this name (delim separates its levels): CreateFolder fails it at
	// once, saying why, instead of asking the server.
	Reserved func(name, delim string) bool
	// FinalCRLF: a message that does not end in CRLF gets one (the literal
	// grows by one or two bytes) before APPEND, which the provider
	// refuses otherwise. The target's index then knows such a message by
	// its archived size as well.
	FinalCRLF bool
}

// reservedErr fails a folder the provider reserves.
func (t *Target) reservedErr(name string) error {
	if t.Quirks.Reserved == nil || !t.Quirks.Reserved(name, t.Delimiter()) {
		return nil
	}
	return fmt.Errorf("%w: %s reserves the name %q (a system folder or label); restore it under another name with --map %q=NEW",
		restore.ErrFolderRefused, t.Quirks.Provider, name, name)
}

// finalCRLF reads the body (into memory, or a temporary file when large)
// and returns it, with CRLF (or LF after a final CR) appended when it does
// not end in CRLF, and its new size.
func (t *Target) finalCRLF(body io.Reader, size int64) (io.Reader, int64, func(), error) {
	sp, err := newSpool(body)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("read message: %w", err)
	}
	var tail [2]byte
	n := 0
	if sp.file != nil {
		if size >= 2 {
			n, _ = sp.file.ReadAt(tail[:], size-2)
		}
	} else {
		b := sp.mem.Bytes()
		n = copy(tail[:], b[max(0, len(b)-2):])
	}
	end := tail[:n]
	var pad []byte
	switch {
	case bytes.HasSuffix(end, []byte("\r\n")):
	case bytes.HasSuffix(end, []byte("\r")):
		pad = []byte("\n")
	default:
		pad = []byte("\r\n")
	}
	if pad != nil {
		t.padded++
		if t.padded == 1 && t.Warn != nil {
			t.Warn(fmt.Sprintf("%s refuses messages that do not end in a line break: such messages get a final CRLF (their restored copies are one or two bytes longer)", t.Quirks.Provider))
		}
	}
	return io.MultiReader(sp.reader(), bytes.NewReader(pad)), size + int64(len(pad)), sp.close, nil
}
