//go:build race

package sandbox

// raceEnabled: the workers are race-enabled too, and report running out of
// memory in the race runtime's words.
const raceEnabled = true
