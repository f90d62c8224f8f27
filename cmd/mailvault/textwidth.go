package main

import (
	"io"
	"strings"
	"unicode"

	"golang.org/x/text/width"
)

// runeWidth is how many terminal columns r takes: 2 for East Asian Wide
// and Fullwidth characters (CJK ideographs, kana, Hangul, most emoji), 0
// for combining marks and format characters (accents, variation
// selectors, zero-width joiner), 1 otherwise.
func runeWidth(r rune) int {
	if unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf) {
		return 0
	}
	switch width.LookupRune(r).Kind() {
	case width.EastAsianWide, width.EastAsianFullwidth:
		return 2
	}
	return 1
}

// displayWidth is how many terminal columns s takes.
func displayWidth(s string) int {
	n := 0
	for _, r := range s {
		n += runeWidth(r)
	}
	return n
}

// truncate shortens s to at most n columns, ending it with "…" when cut.
func truncate(s string, n int) string {
	if displayWidth(s) <= n {
		return s
	}
	var b strings.Builder
	w := 0
	for _, r := range s {
		rw := runeWidth(r)
		if w+rw > n-1 {
			break
		}
		b.WriteRune(r)
		w += rw
	}
	return b.String() + "…"
}

// table lays out rows in columns padded by display width (text/tabwriter
// counts runes, so a CJK cell shifts the columns after it). The last cell
// of a row is not padded.
// table lays out rows in columns. A long listing is written in blocks
// (flush): the widths of a block are at least those of the blocks before,
// so that columns stay aligned as far as the rows seen allow, and no
// listing is held whole.
type table struct {
	rows   [][]string
	widths []int
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

// lsFlushRows is how many rows a streamed listing holds before it writes
// them.
const lsFlushRows = 2000

func (t *table) len() int { return len(t.rows) }

func (t *table) write(w io.Writer) error { return t.flush(w) }

// flush writes the rows added so far and forgets them.
func (t *table) flush(w io.Writer) error {
	widths := t.widths
	for _, row := range t.rows {
		for i, c := range row[:max(len(row)-1, 0)] {
			if i == len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], displayWidth(c))
		}
	}
	t.widths = widths
	var b strings.Builder
	for _, row := range t.rows {
		for i, c := range row {
			b.WriteString(c)
			if i < len(row)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-displayWidth(c)+2))
			}
		}
		b.WriteByte('\n')
	}
	t.rows = t.rows[:0]
	_, err := io.WriteString(w, b.String())
	return err
}
