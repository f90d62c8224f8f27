package corpus

// WireForm returns the bytes that Dovecot 2.3 (Maildir, default
// mail_save_crlf = no) sends in FETCH BODY[] for a message that was
// APPENDed as body. Dovecot stores CRLF as LF, so a CR right before a CRLF
// is lost; it sends every LF not preceded by CR as CRLF; and it sends NUL
// bytes as 0x80 (they stay NUL in the Maildir file).
//
// A body with CRLF line endings, no lone CR before a CRLF and no NUL (every
// message of Generate except EdgeBareLF, EdgeMixedEOL, EdgeLoneCR and
// EdgeNUL) is returned unchanged: it round-trips byte for byte.
func WireForm(body []byte) []byte {
	out := make([]byte, 0, len(body)+len(body)/32)
	var prev byte // previous byte of the stored (CRLF -> LF) form
	for i := 0; i < len(body); i++ {
		c := body[i]
		if c == '\r' && i+1 < len(body) && body[i+1] == '\n' {
			continue // stored as LF; handled with the LF
		}
		switch {
		case c == '\n':
			if prev == '\r' {
				out = append(out, '\n')
			} else {
				out = append(out, '\r', '\n')
			}
		case c == 0:
			out = append(out, 0x80)
		default:
			out = append(out, c)
		}
		prev = c
	}
	return out
}
