package daemon

import (
	"context"
	"errors"
	"time"

	"ferry/mirror"
)

// want asks for a scan of dir ("" = everything, with a remote listing).
func (j *job) want(dir string) {
	j.wantMu.Lock()
	j.wants[dir] = true
	j.wantMu.Unlock()
	select {
	case j.wake <- struct{}{}:
	default:
	}
}

// scanner runs the scans asked for, one at a time, and the periodic full
// scan; wanted subtrees are merged (a full scan covers them all).
func (j *job) scanner(ctx context.Context) error {
	var t *time.Ticker
	var tick <-chan time.Time
	arm := func() {
		if t != nil {
			t.Stop()
			t, tick = nil, nil
		}
		j.mu.Lock()
		iv := j.tune.ScanInterval
		j.mu.Unlock()
		if iv > 0 {
			t = time.NewTicker(iv)
			tick = t.C
		}
	}
	arm()
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-j.retuned:
			arm()
			continue
		case <-tick:
			j.want("")
			continue
		case <-j.wake:
		}
		// Let a burst of removals arrive before scanning their directories.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
		for _, dir := range j.takeWants() {
			j.scan(ctx, dir)
			if ctx.Err() != nil {
				return nil
			}
		}
	}
}

// takeWants empties the wanted subtrees and returns those no other one
// covers: everything alone when a full scan is wanted.
func (j *job) takeWants() []string {
	j.wantMu.Lock()
	dirs := j.wants
	j.wants = map[string]bool{}
	j.wantMu.Unlock()
	if dirs[""] {
		return []string{""}
	}
	var out []string
	for dir := range dirs {
		if !covered(dir, dirs) {
			out = append(out, dir)
		}
	}
	return out
}

// covered reports whether an ancestor of dir is also to be scanned.
func covered(dir string, dirs map[string]bool) bool {
	for d := dir; d != ""; {
		d = parent(d)
		if dirs[d] {
			return true
		}
	}
	return false
}

func (j *job) scan(ctx context.Context, dir string) {
	full := dir == ""
	began := time.Now()
	if full {
		j.progress.reset()
	}
	j.mu.Lock()
	j.scanning, j.scanSince = true, began
	j.mu.Unlock()
	j.refreshState()
	res := j.live.Scan(ctx, dir, full)
	j.mu.Lock()
	j.scanning, j.scanSince = false, time.Time{}
	if full {
		j.lastScan, j.lastScanAt, j.lastScanTook = &res, began, time.Since(began)
	}
	j.mu.Unlock()
	j.refreshState()
	if ctx.Err() != nil {
		return
	}
	attrs := []any{"dir", dir, "took", time.Since(began).Round(time.Millisecond), "uploads", res.Plan.Uploads,
		"touches", res.Plan.Touches, "deletes", res.Plan.Deletes, "unchanged", res.Plan.Unchanged}
	if res.Err != nil {
		j.noteErr(res.Err)
		j.log.Error("scan failed", append(attrs, "error", res.Err)...)
		if errors.Is(res.Err, mirror.ErrNotOurs) {
			j.refuse()
		}
		return
	}
	if res.MarkerWritten {
		attrs = append(attrs, "marker", "written")
	}
	if full || res.Plan.Uploads+res.Plan.Deletes > 0 {
		j.log.Info("scan done", attrs...)
	}
}
