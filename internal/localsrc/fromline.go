package localsrc

import (
	"net/mail"
	"strconv"
	"strings"
	"time"
)

var months = map[string]time.Month{
	"jan": time.January, "feb": time.February, "mar": time.March, "apr": time.April,
	"may": time.May, "jun": time.June, "jul": time.July, "aug": time.August,
	"sep": time.September, "oct": time.October, "nov": time.November, "dec": time.December,
}

// zones are the zone names of RFC 5322's obsolete syntax, which old From
// lines use ("Sat Jan  3 01:05:34 EST 1996").
var zones = map[string]int{
	"UT": 0, "UTC": 0, "GMT": 0, "Z": 0,
	"EST": -5, "EDT": -4, "CST": -6, "CDT": -5, "MST": -7, "MDT": -6, "PST": -8, "PDT": -7,
}

// parseFromLine returns the date of an mbox From line ("From " and the
// line end included or not): the asctime date after the sender,
// "Www Mmm dd hh:mm:ss yyyy", with any spacing, the weekday optional, the
// seconds optional, and a zone ("+0100", "GMT", "EST") before or after the
// year; trailing words ("remote from host") are ignored. An RFC 5322 date
// after the sender is accepted too. A date without a zone is in loc.
func parseFromLine(line string, loc *time.Location) (time.Time, bool) {
	line = strings.TrimRight(strings.TrimPrefix(line, "From "), "\r\n")
	f := strings.Fields(line)
	// The sender is one word, usually, but may hold spaces (a quoted
	// local part): find the month followed by a day and a time.
	for i := 0; i+2 < len(f); i++ {
		if t, ok := asctime(f[i:], loc); ok {
			return t, true
		}
	}
	for i := 1; i < len(f); i++ {
		if t, err := mail.ParseDate(strings.Join(f[i:], " ")); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// asctime parses "Mmm dd hh:mm[:ss]" followed by the year and an optional
// zone in either order.
func asctime(f []string, loc *time.Location) (time.Time, bool) {
	mon, ok := months[strings.ToLower(f[0])]
	if !ok || len(f[0]) != 3 {
		return time.Time{}, false
	}
	day, err := strconv.Atoi(f[1])
	if err != nil || day < 1 || day > 31 {
		return time.Time{}, false
	}
	hms := strings.Split(f[2], ":")
	if len(hms) < 2 || len(hms) > 3 {
		return time.Time{}, false
	}
	var clock [3]int
	for i, s := range hms {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > 60 || len(s) > 2 {
			return time.Time{}, false
		}
		clock[i] = n
	}
	if clock[0] > 23 || clock[1] > 59 {
		return time.Time{}, false
	}
	year := -1
	zone := loc
	for _, w := range f[3:min(len(f), 5)] {
		if n, err := strconv.Atoi(w); err == nil && len(w) == 4 && year < 0 {
			year = n
			continue
		}
		if z, ok := parseZone(w); ok && zone == loc {
			zone = z
			continue
		}
		break
	}
	if year < 0 {
		return time.Time{}, false
	}
	t := time.Date(year, mon, day, clock[0], clock[1], clock[2], 0, zone)
	if t.Day() != day {
		return time.Time{}, false // Feb 30
	}
	return t, true
}

// parseZone parses "+hhmm", "-hhmm" or a zone name of zones.
func parseZone(w string) (*time.Location, bool) {
	if h, ok := zones[strings.ToUpper(w)]; ok {
		if h == 0 {
			return time.UTC, true
		}
		return time.FixedZone(strings.ToUpper(w), h*3600), true
	}
	if len(w) != 5 || w[0] != '+' && w[0] != '-' {
		return nil, false
	}
	n, err := strconv.Atoi(w[1:])
	if err != nil || n%100 > 59 {
		return nil, false
	}
	off := (n/100*60 + n%100) * 60
	if w[0] == '-' {
		off = -off
	}
	return time.FixedZone("", off), true
}
