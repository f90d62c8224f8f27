package restore

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"strings"
)

// verifier hands a target an archived message's bytes and checks them on
// the way. A read error, a body shorter than recorded or bytes whose
// SHA-256 is not the recorded one fail the read before its bytes are
// handed over, so a target never receives the whole of a message whose
// bytes are wrong: the last chunk is withheld when the hash does not
// match. err keeps the failure; it is the archive's, not the target's.
type verifier struct {
	r       io.Reader
	h       hash.Hash
	want    string
	size, n int64
	checked bool
	err     error
}

func newVerifier(r io.Reader, size int64, sha string) *verifier {
	return &verifier{r: r, h: sha256.New(), want: sha, size: size}
}

func (v *verifier) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if v.n == v.size {
		return 0, v.finish()
	}
	if rem := v.size - v.n; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	switch {
	case err != nil && err != io.EOF:
		v.err = err
		return 0, v.err
	case v.n == v.size:
		if ferr := v.finish(); ferr != io.EOF {
			return 0, ferr
		}
		return n, nil
	case err == io.EOF:
		v.err = fmt.Errorf("the archive holds %d of the message's %d bytes", v.n, v.size)
		return 0, v.err
	}
	return n, nil
}

// finish checks the hash once the recorded size was read: io.EOF when it
// matches.
func (v *verifier) finish() error {
	if v.checked {
		return io.EOF
	}
	v.checked = true
	if v.want != "" && !strings.EqualFold(hex.EncodeToString(v.h.Sum(nil)), v.want) {
		v.err = fmt.Errorf("the archived bytes do not have the recorded SHA-256 %s (damaged)", v.want)
		return v.err
	}
	return io.EOF
}
