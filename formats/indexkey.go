package formats

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Keys of the state index (see index.go). Every key starts with one byte
// naming its kind; numbers are big-endian so that byte order is numeric
// order.
const (
	ixMeta     = 0x00 // the index's own record
	ixSnapshot = 'n'  // n SEQ(4): a committed manifest the index applied
	ixName     = 'F'  // F NAME: folder id of a folder name
	ixFolder   = 'f'  // f FID(4): folder record
	ixMessage  = 'm'  // m FID(4) KEY: a message (the latest entry of its key)
	ixOld      = 'o'  // o FID(4) KEY ADDED(4): an older entry of a key added again
	ixSegment  = 's'  // s PATH: a committed segment
	ixLocation = 'l'  // l PLACE 0 OFF(8) FID(4) KEY: a message stored there (sha256, size)
	ixHash     = 'h'  // h FID(4) SHA(32) (hash index): a key with that content
)

// Source keys are encoded so that byte order is the order a folder is
// listed and merged in: IMAP keys "UIDVALIDITY:UID" (canonical decimal
// numbers) numerically by UIDVALIDITY then UID; any other key (POP3 UIDL,
// local sources, a non-canonical IMAP key) after them, by its bytes. The
// encoding is self-delimiting, so that a suffix can follow it.
const (
	keyIMAP  = 0x01 // then UIDVALIDITY(4) UID(4)
	keyBytes = 0x02 // then the bytes, 0x00 escaped as 0x00 0xff, then 0x00 0x00
)

// AppendKey appends the index encoding of a source key to b.
func AppendKey(b []byte, key string) []byte {
	if v, u, ok := imapKey(key); ok {
		b = append(b, keyIMAP)
		b = binary.BigEndian.AppendUint32(b, v)
		return binary.BigEndian.AppendUint32(b, u)
	}
	b = append(b, keyBytes)
	for i := 0; i < len(key); i++ {
		if key[i] == 0 {
			b = append(b, 0, 0xff)
			continue
		}
		b = append(b, key[i])
	}
	return append(b, 0, 0)
}

// CompareKeys orders two source keys as the index does.
func CompareKeys(a, b string) int {
	var x, y [24]byte
	return bytes.Compare(AppendKey(x[:0], a), AppendKey(y[:0], b))
}

// imapKey parses a canonical IMAP key.
func imapKey(key string) (v, u uint32, ok bool) {
	vs, us, found := strings.Cut(key, ":")
	if !found || !canonicalUint32(vs) || !canonicalUint32(us) {
		return 0, 0, false
	}
	v64, _ := strconv.ParseUint(vs, 10, 32)
	u64, _ := strconv.ParseUint(us, 10, 32)
	return uint32(v64), uint32(u64), true
}

func canonicalUint32(s string) bool {
	if s == "" || len(s) > 10 || (len(s) > 1 && s[0] == '0') {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	_, err := strconv.ParseUint(s, 10, 32)
	return err == nil
}

// decodeKey returns the source key of an encoding and the bytes after it.
func decodeKey(b []byte) (string, []byte, error) {
	if len(b) == 0 {
		return "", nil, errBadIndex
	}
	switch b[0] {
	case keyIMAP:
		if len(b) < 9 {
			return "", nil, errBadIndex
		}
		v, u := binary.BigEndian.Uint32(b[1:]), binary.BigEndian.Uint32(b[5:])
		return strconv.FormatUint(uint64(v), 10) + ":" + strconv.FormatUint(uint64(u), 10), b[9:], nil
	case keyBytes:
		var out []byte
		for i := 1; i+1 < len(b); i++ {
			if b[i] != 0 {
				out = append(out, b[i])
				continue
			}
			switch b[i+1] {
			case 0:
				return string(out), b[i+2:], nil
			case 0xff:
				out = append(out, 0)
				i++
			default:
				return "", nil, errBadIndex
			}
		}
	}
	return "", nil, errBadIndex
}

var errBadIndex = errors.New("formats: state index record is damaged")

func fidBytes(b []byte, kind byte, fid uint32) []byte {
	b = append(b, kind)
	return binary.BigEndian.AppendUint32(b, fid)
}

func messageKey(fid uint32, key string) []byte {
	return AppendKey(fidBytes(make([]byte, 0, 32), ixMessage, fid), key)
}

func oldKey(fid uint32, key string, added int) []byte {
	b := AppendKey(fidBytes(make([]byte, 0, 36), ixOld, fid), key)
	return binary.BigEndian.AppendUint32(b, uint32(added))
}

func hashKey(fid uint32, sum string) []byte {
	b := fidBytes(make([]byte, 0, 37), ixHash, fid)
	raw, err := hex.DecodeString(sum)
	if err != nil || len(raw) != 32 {
		return append(b, sum...) // not a SHA-256: never matches a real one
	}
	return append(b, raw...)
}

func snapshotKey(seq int) []byte {
	return binary.BigEndian.AppendUint32([]byte{ixSnapshot}, uint32(seq))
}

// locationKey is where a message's bytes are: a segment path and the
// record's offset, or a Maildir file by its directory and unique part
// (its name changes with its flags) with offset 0; then 0 and the offset.
func locationKey(kind byte, seg string, off int64) []byte {
	b := make([]byte, 0, len(seg)+32)
	b = append(b, kind)
	if validMaildirPath(seg) {
		dir, name := seg[:strings.LastIndexByte(seg, '/')+1], seg[strings.LastIndexByte(seg, '/')+1:]
		b = append(append(b, dir...), MaildirBase(name)...)
		off = 0
	} else {
		b = append(b, seg...)
	}
	b = append(b, 0)
	return binary.BigEndian.AppendUint64(b, uint64(off))
}

// IndexMessage is a message in the state index.
type IndexMessage struct {
	Message
	AddedIn int // sequence number of the snapshot that added it
	GoneIn  int // of the snapshot that recorded it gone; 0 while present
}

// Gone reports whether the message is no longer on the source.
func (m *IndexMessage) Gone() bool { return m.GoneIn != 0 }

// Message values: a version byte, then the fields in a fixed order as
// uvarints, varints and length-prefixed strings; SHA-256 as 32 raw bytes.
const messageValueVersion = 1

type valEnc struct{ b []byte }

func (e *valEnc) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *valEnc) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *valEnc) str(s string) {
	e.uvarint(uint64(len(s)))
	e.b = append(e.b, s...)
}

func encodeMessage(b []byte, m *IndexMessage) []byte {
	e := valEnc{b: append(b, messageValueVersion)}
	e.str(m.Key)
	if raw, err := hex.DecodeString(m.SHA256); err == nil && len(raw) == 32 {
		e.b = append(e.b, 32)
		e.b = append(e.b, raw...)
	} else {
		e.b = append(e.b, 0)
		e.str(m.SHA256)
	}
	e.varint(m.Size)
	t := m.InternalDate
	_, zone := t.Zone()
	e.varint(t.Unix())
	e.uvarint(uint64(t.Nanosecond()))
	e.varint(int64(zone))
	e.uvarint(uint64(len(m.Flags)))
	for _, f := range m.Flags {
		e.str(f)
	}
	e.str(m.MessageID)
	e.str(m.From)
	e.str(m.To)
	e.str(m.Subject)
	e.str(m.Date)
	e.str(m.Seg)
	e.varint(m.Off)
	e.uvarint(uint64(m.AddedIn))
	e.uvarint(uint64(m.GoneIn))
	return e.b
}

type valDec struct {
	b   []byte
	err error
}

func (d *valDec) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errBadIndex
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *valDec) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errBadIndex
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *valDec) byte1() byte {
	if d.err != nil || len(d.b) == 0 {
		d.err = errBadIndex
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *valDec) raw(n int) []byte {
	if d.err != nil || len(d.b) < n {
		d.err = errBadIndex
		return nil
	}
	r := d.b[:n]
	d.b = d.b[n:]
	return r
}

func (d *valDec) str() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.err = errBadIndex
		return ""
	}
	return string(d.raw(int(n)))
}

func decodeMessage(b []byte, m *IndexMessage) error {
	d := valDec{b: b}
	if d.byte1() != messageValueVersion {
		return errBadIndex
	}
	*m = IndexMessage{}
	m.Key = d.str()
	if d.byte1() == 32 {
		m.SHA256 = hex.EncodeToString(d.raw(32))
	} else {
		m.SHA256 = d.str()
	}
	m.Size = d.varint()
	// The instant and its zone offset: UTC for offset 0 (mailvault writes
	// dates in UTC), a fixed zone otherwise.
	sec, nsec, zone := d.varint(), d.uvarint(), d.varint()
	if nsec >= 1e9 {
		return errBadIndex
	}
	t := time.Unix(sec, int64(nsec))
	if zone == 0 {
		t = t.UTC()
	} else {
		t = t.In(time.FixedZone("", int(zone)))
	}
	m.InternalDate = t
	if n := d.uvarint(); n > 0 {
		if n > uint64(len(d.b)) {
			return errBadIndex
		}
		m.Flags = make([]string, n)
		for i := range m.Flags {
			m.Flags[i] = d.str()
		}
	}
	m.MessageID = d.str()
	m.From = d.str()
	m.To = d.str()
	m.Subject = d.str()
	m.Date = d.str()
	m.Seg = d.str()
	m.Off = d.varint()
	m.AddedIn = int(d.uvarint())
	m.GoneIn = int(d.uvarint())
	if d.err != nil || len(d.b) != 0 {
		return errBadIndex
	}
	return nil
}
