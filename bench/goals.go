package bench

import (
	"fmt"
	"strings"
)

// computeGoals summarizes every group and sets the figures DESIGN.md aims
// for against what this run measured.
func (rep *Report) computeGoals() {
	for _, g := range rep.Groups {
		g.summarize()
	}
	rep.Goals = nil
	for _, s := range []struct {
		server string
		target float64
		proto  string
	}{{ServerVsftpd, 1.25, "FTP"}, {ServerOpenSSH, 2, "SFTP"}} {
		rep.Goals = append(rep.Goals, rep.smallFilesGoal(s.server, s.proto, s.target))
	}
	for _, server := range []string{ServerVsftpd, ServerOpenSSH} {
		rep.Goals = append(rep.Goals, rep.floorGoal(server))
	}
	for _, server := range []string{ServerVsftpd, ServerOpenSSH} {
		rep.Goals = append(rep.Goals, rep.largeFilesGoal(server))
	}
	rep.Goals = append(rep.Goals, rep.noopGoal(), rep.changedGoal())
	rep.Goals = append(rep.Goals, rep.liveGoals()...)
	rep.Goals = append(rep.Goals, rep.millionGoals()...)
}

// smallFilesGoal: the initial mirror of 10,000 small files, ferry's speed
// over the better of rclone and lftp.
func (rep *Report) smallFilesGoal(server, proto string, target float64) Goal {
	g := Goal{Goal: fmt.Sprintf("10,000 small files over %s (%s): faster than the better of rclone and lftp", proto, server),
		Target: fmt.Sprintf("≥ %.2f×", target), Verdict: "not measured"}
	c := rep.group(DatasetSmall, server).caseResult(CaseInitial)
	if c == nil || rep.Quick {
		g.Measured = "small dataset not run in full on this server"
		return g
	}
	var best *Row
	for _, r := range c.Rows {
		if r.Kind != ToolFerry && r.Kind != toolFloor && r.FerrySpeedup != nil && r.WallS.N > 0 && (best == nil || r.WallS.Median < best.WallS.Median) {
			best = r
		}
	}
	if best == nil {
		g.Measured = "no successful peer run to compare with"
		return g
	}
	x := best.FerrySpeedup.Median
	g.Measured = fmt.Sprintf("%.2f× vs %s, the faster peer (pairwise median, range %.2f–%.2f)",
		x, best.Tool, best.FerrySpeedup.Min, best.FerrySpeedup.Max)
	g.Verdict = verdict(x >= target, fmt.Sprintf("%+.0f%% of the target", (x/target-1)*100))
	return g
}

// floorGoal: the initial mirror of small files within 10% of the raw
// protocol floor's time.
func (rep *Report) floorGoal(server string) Goal {
	g := Goal{Goal: fmt.Sprintf("10,000 small files on %s: time against the raw protocol floor", server),
		Target: "≤ 1.10× the floor's time", Verdict: "not measured"}
	c := rep.group(DatasetSmall, server).caseResult(CaseInitial)
	f := c.row(floorLabel)
	if f == nil || f.FerrySpeedup == nil || rep.Quick {
		g.Measured = "small dataset not run in full on this server"
		return g
	}
	x := 1 / f.FerrySpeedup.Median // ferry's time over the floor's, pairwise
	g.Measured = fmt.Sprintf("%.2f× the floor's time (pairwise median; floor %.2f s)", x, f.WallS.Median)
	g.Verdict = verdict(x <= 1.1, fmt.Sprintf("%.2f× against 1.10×", x))
	return g
}

// largeFilesGoal: ferry with one connection against the raw stream.
func (rep *Report) largeFilesGoal(server string) Goal {
	g := Goal{Goal: fmt.Sprintf("large files on %s: throughput per connection vs one raw stream", server),
		Target: "≥ 90% of the loopback limit", Verdict: "not measured"}
	c := rep.group(DatasetLarge, server).caseResult(CaseLoopback)
	w1 := c.row("ferry --workers 1")
	if w1 == nil || w1.OfLimit == nil || rep.Quick {
		g.Measured = "large dataset not run in full on this server"
		return g
	}
	g.Measured = fmt.Sprintf("%.0f%% with 1 worker (range %.0f–%.0f%%)", 100*w1.OfLimit.Median, 100*w1.OfLimit.Min, 100*w1.OfLimit.Max)
	if wn := c.row(fmt.Sprintf("ferry --workers %d", rep.Workers)); wn != nil && wn.OfLimit != nil {
		g.Measured += fmt.Sprintf("; %.0f%% with %d workers", 100*wn.OfLimit.Median, rep.Workers)
	}
	g.Verdict = verdict(w1.OfLimit.Median >= 0.9, fmt.Sprintf("%.0f points from 90%%", 100*w1.OfLimit.Median-90))
	return g
}

// noopGoal: the no-op re-run; the target is set for 100,000 files, the
// small dataset has 10,000, so the figure is scaled and said to be.
func (rep *Report) noopGoal() Goal {
	g := Goal{Goal: "re-run with nothing changed on 100,000 files", Target: "< 1 s, zero transfers", Verdict: "not measured"}
	var parts []string
	for _, server := range []string{ServerVsftpd, ServerOpenSSH} {
		c := rep.group(DatasetSmall, server).caseResult(CaseNoop)
		r := c.row(ToolFerry)
		if r == nil || r.WallS.N == 0 || rep.Quick {
			continue
		}
		sent := int64(0)
		for _, s := range r.Samples {
			sent += max(0, s.Transferred)
		}
		parts = append(parts, fmt.Sprintf("%s: %.2f s for %d files (%d transfers), ≈ %.1f s scaled to 100,000",
			server, r.WallS.Median, c.work(1).Files, sent, r.WallS.Median*100000/float64(max(1, c.work(1).Files))))
	}
	if len(parts) == 0 {
		g.Measured = "small dataset not run in full"
		return g
	}
	g.Measured = joinSemi(parts)
	g.Verdict = "not measured at 100,000 (10,000 measured; see the scaled figure)"
	return g
}

// changedGoal: with 1% changed, time should follow the change.
func (rep *Report) changedGoal() Goal {
	g := Goal{Goal: "re-run with 1% changed (small files)", Target: "time proportional to the change, not the tree",
		Verdict: "informative"}
	var parts []string
	for _, server := range []string{ServerVsftpd, ServerOpenSSH} {
		grp := rep.group(DatasetSmall, server)
		ch, init, noop := grp.caseResult(CaseChanged).row(ToolFerry), grp.caseResult(CaseInitial).row(ToolFerry), grp.caseResult(CaseNoop).row(ToolFerry)
		if ch == nil || init == nil || noop == nil || ch.WallS.N == 0 || init.WallS.N == 0 || noop.WallS.N == 0 || rep.Quick {
			continue
		}
		ideal := noop.WallS.Median + 0.01*init.WallS.Median
		parts = append(parts, fmt.Sprintf("%s: %.2f s, vs %.2f s for a no-op plus 1%% of the initial mirror (%.1f×)",
			server, ch.WallS.Median, ideal, ch.WallS.Median/ideal))
	}
	if len(parts) == 0 {
		g.Measured, g.Verdict = "small dataset not run in full", "not measured"
		return g
	}
	g.Measured = joinSemi(parts)
	return g
}

// millionGoals: peak RSS of the million-file mirror and the no-op re-run
// against a bare stat walk.
func (rep *Report) millionGoals() []Goal {
	rss := Goal{Goal: "1,000,000 files (1,000 × 1,000) mirrored to file://", Target: "≤ 64 MiB peak RSS", Verdict: "not measured"}
	walk := Goal{Goal: "1,000,000 files: re-run with nothing changed", Target: "≤ 1.5× a bare stat walk (find -printf)", Verdict: "not measured"}
	g := rep.group(DatasetMillion, "file://")
	if g == nil || rep.Quick {
		rss.Measured, walk.Measured = "million dataset not run (opt-in: --datasets million)", "million dataset not run"
		return []Goal{rss, walk}
	}
	if r := g.caseResult(CaseInitial).row(ToolFerry); r != nil && r.WallS.N > 0 {
		rss.Measured = fmt.Sprintf("%.1f MiB (mirror, %.1f s)", r.PeakRSSMiB, r.WallS.Median)
		if d := g.caseResult(CaseDryRun).row(ToolFerry); d != nil && d.WallS.N > 0 {
			rss.Measured += fmt.Sprintf("; %.1f MiB for --dry-run", d.PeakRSSMiB)
		}
		if rc := g.caseResult(CaseInitial).row(ToolRclone); rc != nil && rc.WallS.N > 0 {
			rss.Measured += fmt.Sprintf("; rclone %.1f MiB", rc.PeakRSSMiB)
		}
		rss.Verdict = verdict(r.PeakRSSMiB <= 64, fmt.Sprintf("%.1f MiB to spare", 64-r.PeakRSSMiB))
	}
	noop := g.caseResult(CaseNoop)
	if f, find := noop.row(ToolFerry), noop.row("find -printf (stat walk)"); f != nil && find != nil && f.WallS.N > 0 && find.WallS.N > 0 && find.FerrySpeedup != nil {
		x := 1 / find.FerrySpeedup.Median // ferry's time over find's, pairwise
		walk.Measured = fmt.Sprintf("ferry %.2f s, find %.2f s: %.2f× (pairwise median)", f.WallS.Median, find.WallS.Median, x)
		walk.Verdict = verdict(x <= 1.5, fmt.Sprintf("%.2f× against 1.5×", x))
	}
	return []Goal{rss, walk}
}

// liveGoals: save-to-visible p99, idle and beside a bulk sync.
func (rep *Report) liveGoals() []Goal {
	var out []Goal
	for _, c := range []struct {
		name   string
		target float64
		what   string
	}{{LiveIdle, 100, "idle"}, {LiveBulk, 300, "while a bulk sync of 10,000 files runs"}} {
		g := Goal{Goal: "live mode: a saved file on the remote, renamed into place, " + c.what,
			Target: fmt.Sprintf("p99 ≤ %.0f ms", c.target), Verdict: "not measured", Measured: "live case not run"}
		var parts []string
		ok, measured := true, false
		for _, l := range rep.Live {
			if l.Case != c.name || rep.Quick {
				continue
			}
			if l.Error != "" {
				parts = append(parts, fmt.Sprintf("%s: failed", l.Server))
				ok = false
				continue
			}
			measured = true
			parts = append(parts, fmt.Sprintf("%s: p99 %.0f ms, p50 %.0f ms (%d saves)", l.Server, l.P99MS, l.P50MS, l.Saves))
			ok = ok && l.P99MS <= c.target
		}
		if len(parts) > 0 {
			g.Measured = joinSemi(parts)
		}
		if measured {
			g.Verdict = verdict(ok, "every server")
			if !ok {
				g.Verdict = verdict(false, "see the live table")
			}
		}
		out = append(out, g)
	}
	return out
}

func verdict(ok bool, by string) string {
	if ok {
		return "met (" + by + ")"
	}
	return "not met (" + by + ")"
}

func joinSemi(parts []string) string { return strings.Join(parts, "; ") }
