package formats

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
)

// MaildirKeywordsFile is Dovecot's per-folder file naming the keyword
// letters a–z of a Maildir's file names.
const MaildirKeywordsFile = "dovecot-keywords"

// maxMaildirKeywords is the number of keyword letters (a–z).
const maxMaildirKeywords = 26

// MaildirKeywords are a Maildir folder's keyword letters: index i is the
// letter 'a'+i, "" a free letter.
type MaildirKeywords []string

// ReadMaildirKeywords parses a dovecot-keywords file (lines "<index>
// <keyword>"); a missing file is an empty list and malformed lines are
// ignored.
func ReadMaildirKeywords(path string) (MaildirKeywords, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	kw := make(MaildirKeywords, maxMaildirKeywords)
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		num, name, ok := strings.Cut(strings.TrimRight(line, "\r"), " ")
		i, err := strconv.Atoi(num)
		name = strings.TrimSpace(name)
		if !ok || err != nil || i < 0 || i >= maxMaildirKeywords || !ValidKeyword(name) {
			continue
		}
		kw[i] = name
		n = max(n, i+1)
	}
	return kw[:n], nil
}

// Encode returns the dovecot-keywords file for k.
func (k MaildirKeywords) Encode() []byte {
	var b strings.Builder
	for i, name := range k {
		if name != "" {
			fmt.Fprintf(&b, "%d %s\n", i, name)
		}
	}
	return []byte(b.String())
}

// Info returns the Maildir info letters of a message with flags: the
// standard letters "DFPRST" in order, then its keyword letters. Keywords
// without a letter get a free one; they are returned in added and the
// caller must write the keywords file before a file name uses them.
// Flags that cannot be stored (unknown system flags, keywords that are not
// IMAP atoms, a 27th keyword) are counted in dropped.
func (k *MaildirKeywords) Info(flags []string) (info string, added []string, dropped int) {
	var std [256]bool
	var kws [maxMaildirKeywords]bool
	for _, fl := range flags {
		switch strings.ToLower(fl) {
		case `\draft`:
			std['D'] = true
			continue
		case `\flagged`:
			std['F'] = true
			continue
		case `\answered`:
			std['R'] = true
			continue
		case `\seen`:
			std['S'] = true
			continue
		case `\deleted`:
			std['T'] = true
			continue
		case `\recent`:
			continue
		case "$forwarded":
			// P for Maildir readers; Dovecot ignores P, so the keyword
			// is kept too.
			std['P'] = true
		}
		if !ValidKeyword(fl) {
			dropped++
			continue
		}
		i := -1
		for j, name := range *k {
			if strings.EqualFold(name, fl) {
				i = j
				break
			}
		}
		if i < 0 {
			for j, name := range *k {
				if name == "" {
					i = j
					break
				}
			}
		}
		if i < 0 {
			if len(*k) >= maxMaildirKeywords {
				dropped++
				continue
			}
			*k = append(*k, "")
			i = len(*k) - 1
		}
		if (*k)[i] == "" {
			(*k)[i] = fl
			added = append(added, fl)
		}
		kws[i] = true
	}
	b := make([]byte, 0, 8)
	for _, c := range []byte("DFPRST") {
		if std[c] {
			b = append(b, c)
		}
	}
	for i, ok := range kws {
		if ok {
			b = append(b, byte('a'+i))
		}
	}
	return string(b), added, dropped
}

// Flags returns the IMAP flags of Maildir info letters (the part after
// ":2,"), with keyword letters looked up in k; unknown letters are
// ignored, P is $Forwarded and no flag is listed twice.
func (k MaildirKeywords) Flags(info string) []string {
	var out []string
	add := func(f string) {
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	for i := 0; i < len(info); i++ {
		switch c := info[i]; {
		case c == 'D':
			add(`\Draft`)
		case c == 'F':
			add(`\Flagged`)
		case c == 'P':
			add("$Forwarded")
		case c == 'R':
			add(`\Answered`)
		case c == 'S':
			add(`\Seen`)
		case c == 'T':
			add(`\Deleted`)
		case c >= 'a' && c <= 'z':
			if j := int(c - 'a'); j < len(k) && k[j] != "" {
				add(k[j])
			}
		}
	}
	return out
}

// ValidKeyword reports whether s can be an IMAP keyword: an atom, not a
// system flag.
func ValidKeyword(s string) bool {
	if s == "" || strings.HasPrefix(s, `\`) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return false
		}
	}
	return true
}
