package main

import "strings"

// closest returns the name in names nearest to s when it is near enough
// to be a typo (an edit distance of at most a third of its length, at
// least 1, with a swap of two letters counting once), or the only name s
// is a prefix of; "" otherwise.
func closest(s string, names []string) string {
	s = strings.ToLower(s)
	best, bestD := "", -1
	for _, n := range names {
		d := editDistance(s, n)
		if bestD < 0 || d < bestD {
			best, bestD = n, d
		}
	}
	if bestD >= 0 && bestD <= max(1, len([]rune(s))/3) {
		return best
	}
	prefixed := ""
	for _, n := range names {
		if len(s) >= 2 && strings.HasPrefix(n, s) {
			if prefixed != "" {
				return ""
			}
			prefixed = n
		}
	}
	return prefixed
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and transpositions of adjacent runes.
func editDistance(a, b string) int {
	x, y := []rune(a), []rune(b)
	d := make([][]int, len(x)+1)
	for i := range d {
		d[i] = make([]int, len(y)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(x); i++ {
		for j := 1; j <= len(y); j++ {
			cost := 1
			if x[i-1] == y[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && x[i-1] == y[j-2] && x[i-2] == y[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(x)][len(y)]
}
