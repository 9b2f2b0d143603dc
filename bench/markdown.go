package bench

import (
	"fmt"
	"strconv"
	"strings"
)

// caseAbout explains a case in the report.
func caseAbout(name string) string {
	switch name {
	case CaseInitial:
		return "first mirror into an empty remote directory, with a fresh ferry state, every repetition"
	case CaseNoop:
		return "re-run with nothing changed"
	case CaseChanged:
		return "before each repetition 1% of the files (another 1% each time) are rewritten with new content and a new size, then every tool re-runs"
	case CaseDeletes:
		return "before each repetition 1% of the files are deleted; ferry gets --delete, lftp --delete, rclone sync deletes anyway"
	case CaseLoopback:
		return "the same files sent one after another over one raw connection (curl -T; OpenSSH sftp put), against ferry with 1 and N workers, all into empty directories"
	case CaseDryRun:
		return "ferry --dry-run with a fresh state: the whole tree planned, nothing written"
	}
	return name
}

// commandLine is the bench command that reproduces this report.
func (rep *Report) commandLine() string {
	s := fmt.Sprintf("go run . bench --runs %d --workers %d --datasets %s --servers %s --seed %d",
		rep.Runs, rep.Workers, strings.Join(rep.Datasets, ","), strings.Join(rep.Servers, ","), rep.Seed)
	var tools []string
	for _, t := range rep.Tools {
		tools = append(tools, t.Name)
	}
	s += " --tools " + strings.Join(tools, ",")
	if rep.Quick {
		s += " --quick"
	}
	return s
}

// hasTool tells whether the run was asked for tool (a --tools name).
func (rep *Report) hasTool(tool string) bool {
	for _, t := range rep.Tools {
		if t.Name == tool {
			return true
		}
	}
	return false
}

// Markdown renders the report.
func (rep *Report) Markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	m := rep.Machine
	p("# ferry bench: %s on %s\n\n", rep.Date.Format("2006-01-02"), m.Host)
	if rep.Quick {
		p("**Quick smoke run: tiny datasets, not a measurement.**\n\n")
	}
	p("Reproduce (as root, from the repository root): `%s`\n\n", rep.commandLine())
	p("## Machine and versions\n\n")
	p("- date: %s (UTC), the whole run took %.0f s\n", rep.Date.Format("2006-01-02 15:04"), rep.ElapsedS)
	p("- machine: %s, %d CPUs (%s), %.1f GiB memory, kernel %s, %s\n", m.Host, m.CPUs, m.CPUModel, m.MemoryGiB, m.Kernel, m.OS)
	p("- settings: %d workers (connections) for every tool, %d repetition(s) per case, seed %d\n", rep.Workers, rep.Runs, rep.Seed)
	p("- servers on 127.0.0.1, started by the bench: vsftpd (plain FTP, passive) and OpenSSH sshd (internal-sftp); the source and the servers' files share this machine's disk and page cache\n\n")
	p("| program | version |\n| --- | --- |\n")
	for _, v := range rep.Versions {
		p("| %s | %s |\n", v.Program, cell(v.Version))
	}
	p("\n## Flags each tool got, and why\n\n")
	for _, n := range rep.FlagNotes {
		p("- %s\n", n)
	}
	p("\n## How to read the tables\n\n")
	p("- **wall s**: median over the repetitions (min–max), measured around the child process.\n")
	p("- **peak RSS**: the highest ru_maxrss over the repetitions, as GNU time reports it for the tool itself (lftp's includes the ssh helper it reaps; the bench's own rusage of a child would include the bench's memory, see bench/measure.go).\n")
	p("- **rate**: files (or MB, 10^6 bytes) the case had to handle, divided by the wall time; median over repetitions.\n")
	p("- **ferry ÷ tool**: ferry's speed over this tool's, taken repetition by repetition (this tool's wall time over ferry's in the same repetition), median (min–max); above 1 ferry is faster. In the loopback case, ferry's throughput as a fraction of the fastest raw stream of the same repetition.\n")
	p("- Every run is checked: exit status 0, and the server's disk holds exactly the source's files with the same sizes (nothing missing, nothing extra such as a leftover temporary name). A run failing either check is counted as failed, not timed.\n")
	if rep.hasTool(ToolFerryGit) {
		p("- **%s** is ferry with its Git stage: its ferry ÷ tool is its own time over plain ferry's in the same repetition, so above 1 is what the stage costs. "+
			"Its runs are also checked in the repository: one commit per started batch of %d files shipped or deleted (none for the no-op), the source's files in the branch's tree, `git fsck --strict` clean. "+
			"`commits` in the notes is what each repetition added.\n", ferryGitLabel, gitBatchFiles)
	}
	p("- **notes**: `uploads` is what vsftpd logged as uploaded in each repetition; `sent` is what ferry's `--json` summary reports.\n")
	p("- Tools alternate within each repetition (ferry, rclone, lftp, ferry, ...), so a slow patch of the machine hits all of them, " +
		"and the file systems are synced before every run, so no run pays for the write-back of the data the one before it (or the change made for it) left dirty.\n\n")
	p("## Goals (DESIGN.md, \"The figures we aim for\")\n\n| goal | target | measured | verdict |\n| --- | --- | --- | --- |\n")
	for _, g := range rep.Goals {
		p("| %s | %s | %s | %s |\n", cell(g.Goal), cell(g.Target), cell(g.Measured), cell(g.Verdict))
	}
	p("\n## Results\n")
	for _, g := range rep.Groups {
		rep.writeGroup(&b, g)
	}
	if len(rep.Live) > 0 {
		p("\n### live latency\n\n")
		p("`ferry --config` runs as a daemon (default settings: settle_delay 50ms, %d workers) with its watcher on; the bench saves "+
			"1–9 KiB files into the watched tree, 20–50 ms apart, and times each from the write until the complete file is on the server's "+
			"disk under its name (polled every 0.5 ms; a partial file there would fail the run). **idle**: nothing else to do. "+
			"**bulk**: the saves are made while the daemon's first scan ships the small dataset (10,000 files) beside them; "+
			"only saves made before that scan ends count.\n\n", rep.Workers)
		p("| server | case | saves | p50 ms | p99 ms | max ms | bulk beside | peak RSS MiB | notes |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
		for _, l := range rep.Live {
			bulk := ""
			if l.Case == LiveBulk && l.BulkS > 0 {
				bulk = fmt.Sprintf("%d files in %.1f s", l.BulkFiles, l.BulkS)
			}
			note := ""
			if l.Error != "" {
				note = "FAILED: " + l.Error
			}
			p("| %s | %s | %d | %.0f | %.0f | %.0f | %s | %.1f | %s |\n", l.Server, l.Case, l.Saves, l.P50MS, l.P99MS, l.MaxMS, bulk, l.PeakRSSMiB, cell(note))
		}
	}
	if len(rep.Notes) > 0 {
		p("\n## Notes\n\n")
		for _, n := range rep.Notes {
			p("- %s\n", n)
		}
	}
	p("\nRaw samples: `latest.json` beside this file. Each run's output was kept in `%s` on the machine that ran it.\n", rep.LogDir)
	return b.String()
}

func (rep *Report) writeGroup(b *strings.Builder, g *Group) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("\n### %s on %s\n\n%d files, %s: %s.\n\n", g.Dataset.Name, g.Server, g.Dataset.Files, human(g.Dataset.Bytes), g.Dataset.Desc)
	for _, c := range g.Cases {
		p("- **%s**: %s", c.Case, caseAbout(c.Case))
		if len(c.Work) > 0 && c.Case != CaseInitial && c.Case != CaseLoopback && c.Case != CaseDryRun {
			var ns []string
			for _, w := range c.Work {
				ns = append(ns, itoa(w.Files))
			}
			p(" (files per repetition: %s)", strings.Join(ns, ", "))
		}
		p(".\n")
	}
	p("\n| case | tool | wall s, median (min–max) | peak RSS MiB | rate | ferry ÷ tool | notes |\n")
	p("| --- | --- | --- | --- | --- | --- | --- |\n")
	for _, c := range g.Cases {
		for _, r := range c.Rows {
			p("| %s | %s | %s |\n", c.Case, r.Tool, strings.Join(rowCells(c, r), " | "))
		}
	}
}

// rowCells renders a row's measured cells.
func rowCells(c *CaseResult, r *Row) []string {
	if r.NotInstalled {
		return []string{"not installed", "", "", "", ""}
	}
	wall, rss, rate := "failed", "", ""
	if r.WallS.N > 0 {
		wall = fmt.Sprintf("%s (%s–%s)", secs(r.WallS.Median), secs(r.WallS.Min), secs(r.WallS.Max))
		rss = fmt.Sprintf("%.1f", r.PeakRSSMiB)
		rate = fmt.Sprintf("%s %s", num(r.Rate.Median), r.RateUnit)
	}
	ratio := ""
	switch {
	case r.OfLimit != nil:
		ratio = fmt.Sprintf("%.0f%% of limit (%.0f–%.0f%%)", 100*r.OfLimit.Median, 100*r.OfLimit.Min, 100*r.OfLimit.Max)
	case r.FerrySpeedup != nil:
		ratio = fmt.Sprintf("%.2f× (%.2f–%.2f)", r.FerrySpeedup.Median, r.FerrySpeedup.Min, r.FerrySpeedup.Max)
	case r.Kind == ToolFerry && c.Case != CaseLoopback:
		ratio = "—"
	}
	var notes []string
	if r.Failed > 0 {
		first := ""
		for _, s := range r.Samples {
			if !s.OK {
				first = s.Error
				break
			}
		}
		if len(first) > 160 {
			first = first[:160] + "…"
		}
		notes = append(notes, fmt.Sprintf("**FAILED %d/%d**: %s", r.Failed, len(r.Samples), first))
	}
	if c.Case != CaseLoopback {
		if up := perRep(r, func(s Sample) int64 { return s.Uploads }); up != "" {
			notes = append(notes, "uploads "+up)
		}
		if sent := perRep(r, func(s Sample) int64 { return s.Transferred }); sent != "" {
			notes = append(notes, "sent "+sent)
		}
		if commits := perRep(r, func(s Sample) int64 {
			if s.Commits == nil {
				return -1
			}
			return *s.Commits
		}); commits != "" {
			notes = append(notes, "commits "+commits)
		}
	}
	return []string{wall, rss, rate, ratio, cell(strings.Join(notes, "; "))}
}

// perRep lists a per-sample count ("0/0/0"), or "" if no sample has it.
func perRep(r *Row, f func(Sample) int64) string {
	var xs []string
	for _, s := range r.Samples {
		if f(s) >= 0 {
			xs = append(xs, itoa(f(s)))
		}
	}
	return strings.Join(xs, "/")
}

func secs(s float64) string {
	switch {
	case s >= 100:
		return fmt.Sprintf("%.0f", s)
	case s >= 10:
		return fmt.Sprintf("%.1f", s)
	}
	return fmt.Sprintf("%.2f", s)
}

func num(x float64) string {
	switch {
	case x >= 1000:
		return fmt.Sprintf("%.0f", x)
	case x >= 10:
		return fmt.Sprintf("%.1f", x)
	}
	return fmt.Sprintf("%.2f", x)
}

// cell makes text safe inside a Markdown table cell.
func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// itoa is strconv.Itoa for the report's table cells.
func itoa(n int64) string { return strconv.FormatInt(n, 10) }
