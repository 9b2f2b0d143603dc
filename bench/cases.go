package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
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

// entrant is one row of a case: a tool with its settings.
type entrant struct {
	label   string // the row's name in the report
	slug    string // its remote and state directory name
	kind    string // ToolFerry, ToolRclone, ToolLftp, "curl", "sftp", "find"
	workers int
}

// peers are the compared tools, in the order they alternate.
func (r *runner) peers() []entrant {
	var out []entrant
	for _, t := range r.o.Tools {
		out = append(out, entrant{label: t, slug: t, kind: t, workers: r.o.Workers})
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
				if c == CaseInitial {
					if err := r.reset(s, j); err != nil {
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
			if err := r.reset(s, j); err != nil {
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
					if err := r.reset(s, j); err != nil {
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

// measure runs one entrant once, checks the result and records the sample.
func (r *runner) measure(ctx context.Context, g *Group, cr *CaseResult, row *Row, e entrant, j job, rep int, check bool) {
	if e.kind != "find" && r.bins[e.kind] == "" {
		row.NotInstalled = true
		return
	}
	inv, err := r.command(e, j)
	if err != nil {
		row.Samples = append(row.Samples, Sample{Rep: rep, Error: err.Error(), ExitCode: -1, Uploads: -1, Transferred: -1})
		return
	}
	if row.Command == "" {
		row.Command = inv.String()
	}
	before := r.uploads(j.site)
	logPath := filepath.Join(r.rep.LogDir, fmt.Sprintf("%s-%s-%s-%s-%d.log", g.Dataset.Name,
		strings.TrimSuffix(g.Server, "://"), cr.Case, e.slug, rep))
	// Dirty pages left by the last run's server writes or by the change
	// just made to the source would be written back during this run and
	// bill it for the one before: every run starts with them on disk.
	syscall.Sync()
	sm, out := runChild(ctx, inv, logPath, r.o.Timeout, r.bins["time"])
	sm.Rep = rep
	if before >= 0 {
		sm.Uploads = r.uploads(j.site) - before
	}
	if e.kind == ToolFerry {
		sm.Transferred = ferryTransferred(out)
	}
	if sm.OK && check {
		var verr error
		switch {
		case j.dryRun:
			if n, _, err := countTree(j.site.disk(j.rel)); err == nil && n > 0 {
				verr = fmt.Errorf("a dry run wrote %d files", n)
			}
		case g.Dataset.Name == DatasetMillion:
			verr = compareCounts(j.src, j.site.disk(j.rel))
		default:
			verr = compareTrees(j.src, j.site.disk(j.rel))
		}
		if verr != nil {
			sm.OK, sm.Error = false, "verify: "+verr.Error()
		}
	}
	row.Samples = append(row.Samples, sm)
	status := "ok"
	if !sm.OK {
		status = "FAILED: " + sm.Error
	}
	r.logf("%s/%s %s %d/%d %s: %.2f s, %.1f MiB, %s", g.Dataset.Name, g.Server, cr.Case, rep, r.o.Runs,
		e.label, sm.WallS, float64(sm.MaxRSSKiB)/1024, status)
}

// command builds the child process for an entrant.
func (r *runner) command(e entrant, j job) (invocation, error) {
	switch e.kind {
	case ToolFerry:
		return ferryCommand(r.bins[ToolFerry], j), nil
	case ToolRclone:
		return rcloneCommand(r.bins[ToolRclone], r.rcloneConf, r.rcloneObscured, j), nil
	case ToolLftp:
		return lftpCommand(r.bins[ToolLftp], j), nil
	case toolFloor:
		return floorCommand(r.bins[ToolFerry], j), nil
	case "curl":
		return curlCommand(r.bins["curl"], j.files, j), nil
	case "sftp":
		return sftpCommand(r.bins["sftp"], filepath.Join(r.work, "sftp-batch"), j.files, j)
	case "find":
		return invocation{argv: []string{r.bins["find"], j.src, "-printf", `%s %T@\n`}}, nil
	}
	return invocation{}, fmt.Errorf("unknown tool %q", e.kind)
}

// statePath is ferry's state directory for one row.
func (r *runner) statePath(dataset, server, slug string) string {
	return filepath.Join(r.stateRoot, dataset+"-"+server+"-"+slug)
}

// stateRoot picks where ferry's registries go: a tmpfs when there is one.
// The loopback servers write their files to this machine's disk, and on
// ext4 an fsync of the registry (at a checkpoint, at exit) makes the
// kernel write back every dirty page of that disk first: after a 1 GiB
// upload that fsync took 0.40 s, which a real deployment (the server
// elsewhere) never pays and the other tools (which fsync nothing) do not
// pay here either.
func stateRoot(work string) (root, note string) {
	var st syscall.Statfs_t
	const tmpfsMagic = 0x01021994
	if err := syscall.Statfs("/dev/shm", &st); err == nil && st.Type == tmpfsMagic {
		if d, err := os.MkdirTemp("/dev/shm", "ferry-bench-state-"); err == nil {
			return d, "ferry's state directories (its SQLite registries) are on a tmpfs (" + d + "): on the shared disk, " +
				"the registry's fsync made the kernel write back the loopback server's freshly uploaded files first (0.40 s " +
				"after a 1 GiB upload), a cost no real deployment pays"
		}
	}
	return filepath.Join(work, "state"), "ferry's state directories share the disk with the loopback servers' files " +
		"(no tmpfs at /dev/shm): the registry's fsync can make the kernel write back the server's freshly uploaded files, " +
		"which slows ferry's large-file runs"
}

// reset empties a row's remote directory (on the server's disk, as root) and
// its ferry state before an initial mirror.
func (r *runner) reset(s *site, j job) error {
	for _, p := range []string{s.disk(j.rel), j.state} {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("reset %s: %w", p, err)
		}
	}
	return nil
}

// mkdirOwned creates rel on the site's disk, owned by the server account so
// that the tools, logged in as that account, can write into it.
func (r *runner) mkdirOwned(s *site, rel string) error {
	dir := s.disk(rel)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("remote directory: %w", err)
	}
	if s.acct == nil {
		return nil
	}
	for d := dir; len(d) > len(s.root); d = filepath.Dir(d) {
		if err := os.Lchown(d, s.acct.UID, s.acct.GID); err != nil {
			return fmt.Errorf("remote directory: %w", err)
		}
	}
	return nil
}

// uploads is the running count of "OK UPLOAD" lines in vsftpd's log, read
// incrementally; -1 for servers that do not log uploads.
func (r *runner) uploads(s *site) int64 {
	if s.ftp == nil {
		return -1
	}
	if r.xferOff == nil {
		r.xferOff, r.xferCount = map[*site]int64{}, map[*site]int64{}
	}
	f, err := os.Open(s.ftp.XferLog)
	if err != nil {
		return r.xferCount[s]
	}
	defer f.Close()
	if _, err := f.Seek(r.xferOff[s], io.SeekStart); err != nil {
		return -1
	}
	data, _ := io.ReadAll(f)
	if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
		data = data[:i+1]
		r.xferOff[s] += int64(len(data))
		r.xferCount[s] += int64(bytes.Count(data, []byte("] OK UPLOAD: ")))
	}
	return r.xferCount[s]
}

// ferryTransferred reads "transferred" from ferry's --json summary, the last
// top-level object on its stdout; -1 if there is none.
func ferryTransferred(out []byte) int64 {
	i := bytes.LastIndex(out, []byte("\n{"))
	switch {
	case i >= 0:
		i++
	case bytes.HasPrefix(out, []byte("{")):
		i = 0
	default:
		return -1
	}
	var sum struct {
		Transferred *int64 `json:"transferred"`
	}
	if err := json.Unmarshal(out[i:], &sum); err != nil || sum.Transferred == nil {
		return -1
	}
	return *sum.Transferred
}

// itoa is strconv.Itoa for the report's table cells.
func itoa(n int64) string { return strconv.FormatInt(n, 10) }
