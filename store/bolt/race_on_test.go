//go:build race

package bolt

// raceEnabled scales long tests down under the race detector, which makes
// compression and bbolt many times slower.
const raceEnabled = true
