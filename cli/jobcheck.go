package cli

import (
	"ferry/planner"
	"fmt"

	"ferry/config"
	"ferry/daemon"
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
	if _, err := planner.ParseConflict(j.Conflict); err != nil {
		bad("conflict", err)
	}
	if _, err := planner.ParseMaxDelete(j.MaxDelete); err != nil {
		bad("max_delete", err)
	}
	if err := mirror.CheckMarkerName(j.Marker); err != nil {
		bad("marker", err)
	}
	if _, err := schedule.ParseWindows(j.ProtectedHours); err != nil {
		bad("protected_hours", err)
	}
	return append(out, checkGit(j.Git)...)
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

// daemonJob types what the daemon needs of a job: the mirror options o
// built from it, and its own settings (watching, delays, scans, hours).
func daemonJob(j config.Job, o mirror.Options) (daemon.Job, error) {
	prot, err := schedule.ParseWindows(j.ProtectedHours)
	if err != nil {
		return daemon.Job{}, err
	}
	return daemon.Job{Name: j.Name, Options: o, Watch: j.Watch, Tuning: daemon.Tuning{
		SettleDelay: j.SettleDelay.Duration, MaxDelay: j.MaxDelay.Duration, ScanInterval: j.ScanInterval.Duration,
		Protected: prot, ProtectedLive: j.ProtectedLive,
	}}, nil
}
