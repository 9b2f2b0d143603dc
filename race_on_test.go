//go:build race

package main

// raceEnabled: the race detector slows ferry several times over, which the
// kill loop's sizes account for.
const raceEnabled = true
