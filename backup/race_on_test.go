//go:build race

package backup

// raceEnabled: the tests run under the race detector (ten times slower);
// the kill tests then take fewer points (the run without it takes them
// all).
const raceEnabled = true
