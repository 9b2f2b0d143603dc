package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// entrant is one row of a case: a tool with its settings.
type entrant struct {
	label   string // the row's name in the report
	slug    string // its remote and state directory name
	kind    string // ToolFerry, ToolRclone, ToolLftp, "curl", "sftp", "find"
	workers int
	git     bool // ferry with its Git stage (ToolFerryGit)
}

// measure runs one entrant once, checks the result and records the sample.
func (r *runner) measure(ctx context.Context, g *Group, cr *CaseResult, row *Row, e entrant, j job, rep int, check bool) {
	if (e.kind != "find" && r.bins[e.kind] == "") || (e.git && r.bins["git"] == "") {
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
	var commitsBefore int64
	if j.gitRepo != "" {
		if commitsBefore, err = gitCommitCount(ctx, r.bins["git"], j.gitRepo); err != nil {
			row.Samples = append(row.Samples, Sample{Rep: rep, Error: err.Error(), ExitCode: -1, Uploads: -1, Transferred: -1})
			return
		}
	}
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
		if verr == nil && j.gitRepo != "" {
			var n int64
			n, verr = checkGitRepo(ctx, r.bins["git"], j.gitRepo, j.src, commitsBefore+j.gitCommits)
			if n >= 0 {
				sm.Commits = new(n - commitsBefore)
			}
			if verr != nil {
				verr = fmt.Errorf("repository: %w", verr)
			}
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
func (r *runner) reset(ctx context.Context, s *site, j job) error {
	for _, p := range []string{s.disk(j.rel), j.state} {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("reset %s: %w", p, err)
		}
	}
	if j.gitRepo != "" && r.bins["git"] != "" {
		if err := initGitRepo(ctx, r.bins["git"], j.gitRepo); err != nil {
			return fmt.Errorf("reset %s: %w", j.gitRepo, err)
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
