package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
)

// The cases, in the order they run for each dataset and server.
const (
	CaseInitial  = "initial"     // first mirror into an empty directory, fresh state
	CaseNoop     = "noop"        // re-run with nothing changed
	CaseChanged  = "changed1pct" // 1% of the files rewritten, then a re-run
	CaseDeletes  = "deletes"     // 1% of the files deleted, then a re-run that deletes
	CaseLoopback = "loopback"    // large files: one raw stream against ferry
	CaseDryRun   = "dry-run"     // million files: planning only
)

// runner carries the state of one benchmark run.
type runner struct {
	o         Options
	logf      func(string, ...any)
	work      string // scratch directory of this run
	stateRoot string // where ferry's state directories go (see stateRoot)
	rep       *Report
	bins      map[string]string // program -> path, only for the installed ones
	curlSFTP  bool
	sites     []*site
	stopSites func()

	rcloneConf, rcloneObscured string
	xferOff, xferCount         map[*site]int64 // vsftpd log read so far, uploads counted in it
}

// peers are the compared tools, in the order they alternate.
func (r *runner) peers() []entrant {
	var out []entrant
	for _, t := range r.o.Tools {
		e := entrant{label: t, slug: t, kind: t, workers: r.o.Workers}
		if t == ToolFerryGit {
			e.label, e.kind, e.git = ferryGitLabel, ToolFerry, true
		}
		out = append(out, e)
	}
	return out
}

// runDataset runs every case of one dataset against every server (or, for
// the million files, against file://).
func (r *runner) runDataset(ctx context.Context, name string) error {
	if name == DatasetLive {
		return r.runLive(ctx)
	}
	ds, err := ensureDataset(filepath.Join(r.o.WorkDir, "datasets"), name, r.o.Quick, r.o.Seed, r.logf)
	if err != nil {
		return err
	}
	if name == DatasetMillion {
		return r.runMillion(ctx, ds)
	}
	for _, s := range r.sites {
		if err := r.runGroup(ctx, ds, s); err != nil {
			return err
		}
	}
	return nil
}

// runGroup runs the four mirror cases (and the loopback case for large
// files) of one dataset on one server.
func (r *runner) runGroup(ctx context.Context, ds *dataset, s *site) error {
	g := &Group{Dataset: *ds, Server: s.name}
	r.rep.Groups = append(r.rep.Groups, g)
	src := filepath.Join(r.work, "src", ds.Name+"-"+s.name)
	if err := cloneTree(ds.Dir, src); err != nil {
		return fmt.Errorf("copy dataset %s: %w", ds.Name, err)
	}
	defer os.RemoveAll(src)
	if err := r.mkdirOwned(s, ds.Name); err != nil {
		return err
	}
	defer os.RemoveAll(s.disk(ds.Name))
	gitDir := filepath.Join(r.work, "git", ds.Name+"-"+s.name)
	defer os.RemoveAll(gitDir)
	mix := hashName(ds.Name + "/" + s.name)
	pick := rand.New(rand.NewPCG(r.o.Seed, mix))
	content := rand.NewChaCha8(seedBytes(r.o.Seed^mix, "changes"))
	for _, c := range []string{CaseInitial, CaseNoop, CaseChanged, CaseDeletes} {
		ents := r.peers()
		if c == CaseInitial && ds.Name != DatasetLarge {
			// Large files have their own limit, the raw single stream.
			ents = append(ents, entrant{label: floorLabel, slug: "floor", kind: toolFloor, workers: r.o.Workers})
		}
		cr := g.addCase(c, ents)
		for rep := 1; rep <= r.o.Runs; rep++ {
			w := Work{Rep: rep}
			var err error
			switch c {
			case CaseInitial, CaseNoop:
				w.Files, w.Bytes, err = countTree(src)
			case CaseChanged:
				var n int
				n, w.Bytes, err = changeFiles(src, pick, content)
				w.Files = int64(n)
			case CaseDeletes:
				var n int
				n, err = deleteFiles(src, pick)
				w.Files = int64(n)
			}
			if err != nil {
				return fmt.Errorf("%s/%s %s: prepare repetition %d: %w", ds.Name, s.name, c, rep, err)
			}
			cr.Work = append(cr.Work, w)
			for i, e := range cr.entrants {
				j := job{src: src, site: s, rel: ds.Name + "/" + e.slug, workers: e.workers,
					state: r.statePath(ds.Name, s.name, e.slug), delete: c == CaseDeletes}
				if e.git {
					// The repository lives as long as the state: new for
					// each initial mirror, kept for the re-runs.
					j.gitRepo = filepath.Join(gitDir, e.slug+".git")
					if c != CaseNoop {
						j.gitCommits = gitCommitsFor(w.Files)
					}
				}
				if c == CaseInitial {
					if err := r.reset(ctx, s, j); err != nil {
						return err
					}
				}
				r.measure(ctx, g, cr, cr.Rows[i], e, j, rep, true)
				if err := ctx.Err(); err != nil {
					return err
				}
			}
		}
	}
	if ds.Name == DatasetLarge {
		return r.runLoopback(ctx, g, ds, s)
	}
	return nil
}

// runLoopback measures the loopback limit: the same files sent one after
// another over one raw stream (curl, and OpenSSH's sftp over SFTP), against
// ferry with one worker and with the configured number.
func (r *runner) runLoopback(ctx context.Context, g *Group, ds *dataset, s *site) error {
	var ents []entrant
	if r.bins["curl"] != "" && (!s.sftp() || r.curlSFTP) {
		ents = append(ents, entrant{label: "curl (1 stream)", slug: "loop-curl", kind: "curl", workers: 1})
	}
	if s.sftp() && r.bins["sftp"] != "" {
		ents = append(ents, entrant{label: "sftp (1 stream)", slug: "loop-sftp", kind: "sftp", workers: 1})
	}
	ents = append(ents, entrant{label: "ferry --workers 1", slug: "loop-ferry-w1", kind: ToolFerry, workers: 1})
	if r.o.Workers > 1 {
		ents = append(ents, entrant{label: fmt.Sprintf("ferry --workers %d", r.o.Workers),
			slug: fmt.Sprintf("loop-ferry-w%d", r.o.Workers), kind: ToolFerry, workers: r.o.Workers})
	}
	list, err := listTree(ds.Dir)
	if err != nil {
		return fmt.Errorf("list dataset %s: %w", ds.Name, err)
	}
	var files []string
	for _, f := range list {
		files = append(files, filepath.Join(ds.Dir, filepath.FromSlash(f.rel)))
	}
	cr := g.addCase(CaseLoopback, ents)
	for rep := 1; rep <= r.o.Runs; rep++ {
		cr.Work = append(cr.Work, Work{Rep: rep, Files: ds.Files, Bytes: ds.Bytes})
		for i, e := range ents {
			j := job{src: ds.Dir, site: s, rel: ds.Name + "/" + e.slug, workers: e.workers,
				state: r.statePath(ds.Name, s.name, e.slug), files: files}
			if err := r.reset(ctx, s, j); err != nil {
				return err
			}
			if e.kind == "sftp" {
				if err := r.mkdirOwned(s, j.rel); err != nil {
					return err
				}
			}
			r.measure(ctx, g, cr, cr.Rows[i], e, j, rep, true)
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	}
	return nil
}

// runMillion is the memory case: a million empty files planned with
// --dry-run, mirrored to file://, and re-run with nothing changed next to a
// bare stat walk (find).
func (r *runner) runMillion(ctx context.Context, ds *dataset) error {
	s := &site{name: serverFile, root: filepath.Join(r.work, "million-remote")}
	if err := os.MkdirAll(s.root, 0o755); err != nil {
		return fmt.Errorf("million: %w", err)
	}
	defer os.RemoveAll(s.root)
	g := &Group{Dataset: *ds, Server: "file://"}
	r.rep.Groups = append(r.rep.Groups, g)
	ferry := entrant{label: ToolFerry, slug: ToolFerry, kind: ToolFerry, workers: r.o.Workers}
	mirrors := []entrant{ferry}
	if slices.Contains(r.o.Tools, ToolRclone) {
		mirrors = append(mirrors, entrant{label: ToolRclone, slug: ToolRclone, kind: ToolRclone, workers: r.o.Workers})
	}
	find := entrant{label: "find -printf (stat walk)", slug: "find", kind: "find"}
	cases := []struct {
		name  string
		ents  []entrant
		reset bool
	}{
		{CaseDryRun, []entrant{ferry}, true},
		{CaseInitial, mirrors, true},
		{CaseNoop, append(slices.Clone(mirrors), find), false},
	}
	for _, c := range cases {
		cr := g.addCase(c.name, c.ents)
		for rep := 1; rep <= r.o.Runs; rep++ {
			cr.Work = append(cr.Work, Work{Rep: rep, Files: ds.Files, Bytes: ds.Bytes})
			for i, e := range c.ents {
				j := job{src: ds.Dir, site: s, rel: e.slug, workers: e.workers,
					state: r.statePath(ds.Name, s.name, e.slug), dryRun: c.name == CaseDryRun}
				if c.name == CaseDryRun {
					j.rel, j.state = "ferry-dry-run", r.statePath(ds.Name, s.name, "ferry-dry-run")
				}
				if c.reset {
					if err := r.reset(ctx, s, j); err != nil {
						return err
					}
				}
				r.measure(ctx, g, cr, cr.Rows[i], e, j, rep, e.kind != "find")
				if err := ctx.Err(); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
