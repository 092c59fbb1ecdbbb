//go:build race

package hub

// raceEnabled scales down the heaviest tests: the race detector makes them
// about ten times slower.
const raceEnabled = true
