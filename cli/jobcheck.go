package cli

import (
	"fmt"

	"ferry/config"
	"ferry/mirror"
	"ferry/remote"
	"ferry/scanner"
	"ferry/schedule"
)

// checkJob judges the values of a job that only the stages can judge (the
// config package knows none of them): it is the config's Checker, and the
// flags of `ferry --once` go through it too, so a value is judged the same
// wherever it was written.
func checkJob(j *config.Job) []config.FieldError {
	var out []config.FieldError
	bad := func(key string, err error) {
		out = append(out, config.FieldError{Key: key, Err: err})
	}
	if j.Target != "" {
		if _, err := remote.ParseURL(j.Target); err != nil {
			bad("target", err)
		}
	}
	if _, err := linkMode(*j); err != nil {
		bad("links", err)
	}
	if _, err := mirror.ParseConflict(j.Conflict); err != nil {
		bad("conflict", err)
	}
	if _, err := mirror.ParseMaxDelete(j.MaxDelete); err != nil {
		bad("max_delete", err)
	}
	if err := mirror.CheckMarkerName(j.Marker); err != nil {
		bad("marker", err)
	}
	if _, err := schedule.ParseWindows(j.ProtectedHours); err != nil {
		bad("protected_hours", err)
	}
	return out
}

// linkMode reads the links key.
func linkMode(j config.Job) (scanner.Links, error) {
	switch j.Links {
	case "skip", "":
		return scanner.SkipLinks, nil
	case "follow":
		return scanner.FollowLinks, nil
	}
	return 0, fmt.Errorf("%q: want skip or follow", j.Links)
}
