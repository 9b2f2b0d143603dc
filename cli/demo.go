package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"ferry/config"
	"ferry/daemon"
	"ferry/internal/sftpserver"
	"ferry/mirror"
	"ferry/remote"
)

// demo shows ferry end to end with no setup: it generates a tree, starts a
// real SFTP server on 127.0.0.1 inside this process, mirrors the tree with
// progress bars, runs again to show that nothing is re-sent, changes one
// file to show that exactly one is, and says where everything is.
func (a *App) demo(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("ferry demo", flag.ContinueOnError)
	fs.SetOutput(a.Stderr)
	dir := fs.String("dir", "", "where to put the demo (default: a new temporary directory)")
	files := fs.Int("files", 500, "files to generate")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "ferry-demo-")
		if err != nil {
			fmt.Fprintf(a.Stderr, "ferry demo: %v\n", err)
			return exitUsage
		}
		*dir = d
	}
	src, dst := filepath.Join(*dir, "source"), filepath.Join(*dir, "remote")
	state := filepath.Join(*dir, "state")
	for _, d := range []string{dst, filepath.Join(*dir, "server")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			fmt.Fprintf(a.Stderr, "ferry demo: %v\n", err)
			return exitUsage
		}
	}
	n, size, err := generateTree(src, *files)
	if err != nil {
		fmt.Fprintf(a.Stderr, "ferry demo: generate the tree: %v\n", err)
		return exitUsage
	}
	srv, err := sftpserver.Start(sftpserver.Options{Root: dst, Dir: filepath.Join(*dir, "server")})
	if err != nil {
		fmt.Fprintf(a.Stderr, "ferry demo: start the SFTP server: %v\n", err)
		return exitUsage
	}
	defer srv.Close()
	target, err := remote.ParseURL(srv.URL("/"))
	if err != nil {
		fmt.Fprintf(a.Stderr, "ferry demo: %v\n", err)
		return exitUsage
	}
	out := a.Stdout
	fmt.Fprintf(out, "ferry demo: %d files (%s) in %s\n", n, remote.Bytes(size), src)
	fmt.Fprintf(out, "            → %s (an SFTP server on %s, inside this process; host key checked against %s)\n", target, srv.Addr, srv.KnownHostsFile)

	o := mirror.Options{
		Source: src, Target: target, Open: a.Openers["sftp"],
		RemoteOpts: remote.Options{Password: srv.Password, KnownHostsFile: srv.KnownHostsFile, Timeout: 30 * time.Second},
		StateDir:   state, Workers: 4,
		// One job name for the --once runs and the daemon: the target's
		// marker names the registry job that writes it, and refuses others.
		Job: "demo", ExitCode: exitCode,
	}
	repo, err := a.demoGit(ctx, &o, *dir)
	if err != nil {
		fmt.Fprintf(out, "            (%v: the demo skips the Git stage)\n\n", err)
	} else {
		fmt.Fprintf(out, "            and commits what it ships to %s (a bare Git repository), under site/\n\n", repo)
	}
	step := func(title string, progress bool) (*mirror.Summary, int) {
		fmt.Fprintf(out, "== %s\n", title)
		run := o
		var b *bars
		if progress {
			b = newBars(a.Stderr)
			run.Progress = b
		}
		sum, err := mirror.Run(ctx, run)
		if b != nil {
			b.Close()
		}
		sum.WriteText(out)
		if len(sum.GitCommits) > 0 {
			fmt.Fprintf(out, "git log: %s\n", gitLog(ctx, repo))
		}
		if err != nil {
			fmt.Fprintf(a.Stderr, "ferry demo: %v\n", err)
			if me, ok := err.(*mirror.Error); ok {
				return sum, exitCode(me.Outcome)
			}
			return sum, exitUsage
		}
		fmt.Fprintln(out)
		return sum, exitOK
	}
	if _, code := step("first run: mirror everything", true); code != exitOK {
		return code
	}
	if _, code := step("second run, nothing changed: nothing is sent", false); code != exitOK {
		return code
	}
	edited := filepath.Join(src, "docs", "index.html")
	if err := os.WriteFile(edited, []byte(fmt.Sprintf("<h1>edited at %s</h1>\n", time.Now().Format(time.RFC3339))), 0o644); err != nil {
		fmt.Fprintf(a.Stderr, "ferry demo: %v\n", err)
		return exitUsage
	}
	if _, code := step("third run after editing docs/index.html: exactly one file is sent", false); code != exitOK {
		return code
	}
	if code := a.demoLive(ctx, o, src, dst, repo); code != exitOK {
		return code
	}
	fmt.Fprintf(out, "look around:\n  source     %s\n  remote     %s\n  registry   %s  (sqlite3 %s 'select dir, name, state, remote_size from entry limit 10')\n",
		src, dst, filepath.Join(state, "ferry.db"), filepath.Join(state, "ferry.db"))
	if repo != "" {
		fmt.Fprintf(out, "  git        %s  (git -C %s log --stat)\n", repo, repo)
	}
	fmt.Fprintf(out, "  again      ferry --once --job demo --state %s --known-hosts %s %s sftp://...  (the server stops with this demo)\n", state, srv.KnownHostsFile, src)
	return exitOK
}

// generateTree writes a small website-like tree, deterministically.
func generateTree(root string, files int) (int, int64, error) {
	rng := rand.New(rand.NewPCG(7, 42))
	dirs := []string{"docs", "docs/guide", "assets/css", "assets/js", "assets/img", "blog/2025", "blog/2026", "downloads"}
	var total int64
	for i := 0; i < files; i++ {
		d := dirs[i%len(dirs)]
		name := fmt.Sprintf("page-%04d.html", i)
		size := 512 + rng.IntN(16<<10)
		switch {
		case i == 0:
			d, name = "docs", "index.html"
		case d == "assets/img":
			name, size = fmt.Sprintf("photo-%04d.jpg", i), 32<<10+rng.IntN(96<<10)
		case d == "downloads" && i%40 == 7:
			name, size = fmt.Sprintf("release-%04d.tar.gz", i), 2<<20
		}
		p := filepath.Join(root, filepath.FromSlash(d), name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return 0, 0, err
		}
		buf := make([]byte, size)
		for j := range buf {
			buf[j] = byte('a' + rng.IntN(26))
		}
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			return 0, 0, err
		}
		total += int64(size)
	}
	return files, total, nil
}

// demoLive runs the daemon on the demo's job, saves a file three times and
// shows each save arriving on the remote, renamed into place.
func (a *App) demoLive(ctx context.Context, o mirror.Options, src, dst, repo string) int {
	out := a.Stdout
	fmt.Fprintln(out, "== live: the daemon watches the tree; each save below is shipped as soon as it settles")
	jc := config.Defaults()
	jc.Name, jc.Source, jc.Target = o.Job, src, o.Target.String()
	log := slog.New(slog.NewTextHandler(a.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	dj, err := daemonJob(jc, o)
	if err != nil {
		fmt.Fprintf(a.Stderr, "ferry demo: %v\n", err)
		return exitUsage
	}
	d, err := daemon.New(daemon.Options{Jobs: []daemon.Job{dj}, Log: log, StateDir: o.StateDir, Version: a.Version})
	if err != nil {
		fmt.Fprintf(a.Stderr, "ferry demo: %v\n", err)
		return exitUsage
	}
	ready := make(chan struct{})
	d.SetReady(func() { close(ready) })
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx, ctx) }()
	stopped := false
	defer func() {
		stop()
		if !stopped {
			<-done
		}
	}()
	select {
	case <-ready:
	case err := <-done:
		stopped = true
		fmt.Fprintf(a.Stderr, "ferry demo: the daemon stopped: %v\n", err)
		return exitUsage
	case <-ctx.Done():
		return exitInterrupted
	}
	rel := filepath.Join("docs", "guide", "live.html")
	var body []byte
	for i := 1; i <= 3; i++ {
		body = []byte(fmt.Sprintf("<h1>live edit %d, saved at %s</h1>\n", i, time.Now().Format("15:04:05.000")))
		saved := time.Now()
		if err := os.WriteFile(filepath.Join(src, rel), body, 0o644); err != nil {
			fmt.Fprintf(a.Stderr, "ferry demo: %v\n", err)
			return exitUsage
		}
		took, ok := waitContent(ctx, filepath.Join(dst, rel), body, 30*time.Second)
		if !ok {
			fmt.Fprintf(a.Stderr, "ferry demo: save %d of %s did not arrive within 30 s\n", i, rel)
			return exitFailed
		}
		fmt.Fprintf(out, "   saved %s (%d bytes) at %s → on the remote %d ms later, complete\n", rel, len(body), saved.Format("15:04:05.000"), took.Milliseconds())
		time.Sleep(300 * time.Millisecond)
	}
	if repo != "" {
		fmt.Fprintf(out, "   the Git stage holds the saves until its batch is due (%s); ferry sync --git commits them now:\n", o.Git.BatchDelay)
		if !demoGitSync(ctx, d, repo, filepath.ToSlash(rel), body) {
			fmt.Fprintln(a.Stderr, "ferry demo: the Git stage made no commit within 30 s")
			return exitFailed
		}
		fmt.Fprintf(out, "   git log: %s\n", gitLog(ctx, repo))
	}
	fmt.Fprintf(out, "\n== what `ferry status` says about it (from the daemon's control socket in %s)\n", o.StateDir)
	writeStatus(a, d.Status(ctx))
	fmt.Fprintf(out, "\n(run your own: ferry --config FILE, with a [[job]] as in config.example.toml)\n\n")
	return exitOK
}

// waitContent polls p until it holds want.
func waitContent(ctx context.Context, p string, want []byte, limit time.Duration) (time.Duration, bool) {
	began := time.Now()
	for time.Since(began) < limit && ctx.Err() == nil {
		if got, err := os.ReadFile(p); err == nil && bytes.Equal(got, want) {
			return time.Since(began), true
		}
		time.Sleep(time.Millisecond)
	}
	return 0, false
}

// demoGit gives the demo's job a Git stage: a bare repository in dir,
// batches larger than the demo's tree (one commit per run), pushed. It
// returns the repository, or why there is none: the demo needs no setup,
// so no git is a line in its output, not a failure.
func (a *App) demoGit(ctx context.Context, o *mirror.Options, dir string) (string, error) {
	if _, err := exec.LookPath("git"); err != nil {
		return "", errors.New("git is not installed")
	}
	repo := filepath.Join(dir, "site.git")
	if out, err := exec.CommandContext(ctx, "git", "init", "-q", "--bare", "-b", "main", repo).CombinedOutput(); err != nil {
		return "", fmt.Errorf("git init: %v %s", err, bytes.TrimSpace(out))
	}
	g := config.Defaults().Git
	g.Repository, g.BatchFiles, g.PathPrefix = repo, 100_000, "site"
	opts, err := gitOptions(g, a.warnf)
	if err != nil {
		return "", err
	}
	o.Git = opts
	return repo, nil
}

// gitLog is the last commit of the demo's repository in one line.
func gitLog(ctx context.Context, repo string) string {
	out, err := exec.CommandContext(ctx, "git", "-C", repo, "log", "-1", "--format=%h %s", "main").CombinedOutput()
	if err != nil {
		return fmt.Sprintf("(git log: %v)", err)
	}
	return string(bytes.TrimSpace(out))
}

// demoGitSync presses the button until the repository holds the last
// save, pushed, and the stage says nothing waits: a save reaches the stage
// once the registry has it as shipped, which may be just after it is on
// the remote.
func demoGitSync(ctx context.Context, d *daemon.Daemon, repo, rel string, want []byte) bool {
	deadline := time.Now().Add(30 * time.Second)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		if _, err := d.GitSync("demo"); err != nil {
			return false
		}
		for range 10 {
			got, _ := exec.CommandContext(ctx, "git", "-C", repo, "show", "main:site/"+rel).Output()
			if bytes.Equal(got, want) {
				for _, j := range d.Status(ctx).Jobs {
					if g := j.Git; g != nil && g.Waiting == 0 && g.Unpushed == 0 && g.Pushes >= g.Commits {
						return true
					}
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return false
}
