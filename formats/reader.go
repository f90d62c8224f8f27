package formats

import (
	"fmt"
	"io"
)

// MessageReader reads archived messages one after another: the one read
// path of the archive's storage. Messages read in archive order (the order
// a FolderState lists them) are read in one pass over what stores them;
// any other order works too. It is not safe for concurrent use.
type MessageReader struct {
	r    storageReader
	view *indexView // the index it reads through, if any
}

// NewMessageReader returns a reader of the messages of st.
func (a *Archive) NewMessageReader(st *State) *MessageReader {
	return &MessageReader{r: a.store.newReader(st)}
}

// NewIndexMessageReader returns a reader of the messages a state index
// names (see Archive.ReadIndex). Readers of one index may be used on
// several goroutines, each its own reader.
func (a *Archive) NewIndexMessageReader(ix *Index) *MessageReader {
	v := &indexView{ix: ix}
	return &MessageReader{r: a.store.newReader(v), view: v}
}

// Open returns a reader of m's exact bytes, valid until the next Open or
// Close. It fails with ErrCorrupt if the stored record is damaged or
// shorter than recorded; it does not check the hash (see Verify).
func (r *MessageReader) Open(m *Message) (io.Reader, error) {
	body, err := r.r.open(m)
	if r.view != nil && r.view.err != nil {
		// The index could not say where the message is: that is not a
		// damaged archive.
		err, r.view.err = r.view.err, nil
		return nil, fmt.Errorf("message %s: %w", m.Key, err)
	}
	return body, err
}

// Close releases the open files and the decompressor.
func (r *MessageReader) Close() error {
	r.r.close()
	return nil
}

// OpenMessage returns a reader of one stored message's exact bytes, to be
// closed by the caller: a MessageReader for one message. It reads only
// what the message needs (in a segment, the frames it spans).
func (a *Archive) OpenMessage(st *State, m *Message) (io.ReadCloser, error) {
	mr := a.NewMessageReader(st)
	body, err := mr.Open(m)
	if err != nil {
		mr.Close()
		return nil, err
	}
	return &recordCloser{Reader: body, close: mr.Close}, nil
}
