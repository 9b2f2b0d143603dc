package mirror

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"ferry/internal/syncbuf"
	"ferry/internal/testrig"
	"ferry/remote"
	"ferry/remote/file"
	"ferry/remote/ftp"
	"ferry/remote/sftp"
)

// env is one source tree, one target and one state directory.
type env struct {
	t      *testing.T
	name   string
	src    string
	state  string
	target *remote.Target
	ropts  remote.Options
	open   remote.Opener
	disk   string             // the target root on the server's disk
	ftp    *testrig.FTPServer // when the target is vsftpd
	ssh    *testrig.SSHServer // when the target is OpenSSH
	logs   *syncbuf.Buffer
}

// backends returns the targets every integration test runs against.
func backends(t *testing.T) []func(t *testing.T) *env {
	return []func(t *testing.T) *env{newFileEnv, newFTPEnv, newSFTPEnv}
}

func baseEnv(t *testing.T, name string) *env {
	return &env{t: t, name: name, src: filepath.Join(t.TempDir(), "src"), state: t.TempDir(), logs: &syncbuf.Buffer{}}
}

func newFileEnv(t *testing.T) *env {
	e := baseEnv(t, "file")
	e.disk = filepath.Join(t.TempDir(), "remote")
	e.target, _ = remote.ParseURL("file://" + e.disk)
	e.open = file.Open
	return e
}

func newFTPEnv(t *testing.T) *env {
	return newFTPEnvWith(t, testrig.FTPOptions{})
}

func newFTPEnvWith(t *testing.T, o testrig.FTPOptions) *env {
	e := baseEnv(t, "vsftpd")
	e.ftp = testrig.FTP(t, o)
	var err error
	if e.target, err = remote.ParseURL(e.ftp.URL("/mirror")); err != nil {
		t.Fatal(err)
	}
	e.ropts = remote.Options{Password: e.ftp.Password, CAFile: e.ftp.CAFile, Timeout: 10 * time.Second}
	e.open = ftp.Open
	e.disk = filepath.Join(e.ftp.Root, "mirror")
	return e
}

func newSFTPEnv(t *testing.T) *env {
	e := baseEnv(t, "openssh")
	e.ssh = testrig.SSH(t, testrig.SSHOptions{})
	var err error
	if e.target, err = remote.ParseURL(e.ssh.URL("mirror")); err != nil {
		t.Fatal(err)
	}
	e.ropts = remote.Options{IdentityFile: e.ssh.IdentityFile, KnownHostsFile: e.ssh.KnownHostsFile, Timeout: 10 * time.Second}
	e.open = sftp.Open
	e.disk = filepath.Join(e.ssh.Root, "mirror")
	return e
}

func (e *env) options() Options {
	return Options{Source: e.src, Target: e.target, RemoteOpts: e.ropts, Open: e.open, StateDir: e.state, Workers: 4,
		Logf: func(format string, args ...any) { fmt.Fprintf(e.logs, format+"\n", args...) }}
}

// run makes one pass and returns the summary and its outcome.
func (e *env) run(mut func(*Options)) (*Summary, Outcome) {
	e.t.Helper()
	o := e.options()
	if mut != nil {
		mut(&o)
	}
	sum, err := Run(context.Background(), o)
	var me *Error
	switch {
	case err == nil:
		return sum, Complete
	case errors.As(err, &me):
		return sum, me.Outcome
	}
	e.t.Fatalf("Run returned a bare error: %v", err)
	return nil, -1
}

func (e *env) mustRun(mut func(*Options)) *Summary {
	e.t.Helper()
	sum, code := e.run(mut)
	if code != Complete {
		e.t.Fatalf("%s: exit %d; summary %+v\nlog:\n%s", e.name, code, sum, e.logs)
	}
	return sum
}

// tree writes n files spread over dirs directories, deterministically.
func (e *env) tree(n, dirs int) {
	e.t.Helper()
	rng := rand.New(rand.NewPCG(1, uint64(n)))
	for i := 0; i < n; i++ {
		d := filepath.Join(e.src, fmt.Sprintf("d%02d", i%dirs), fmt.Sprintf("s%d", i%3))
		e.write(filepath.Join(d, fmt.Sprintf("f%05d.txt", i)), 1+rng.IntN(16<<10))
	}
}

func (e *env) write(p string, size int) {
	e.t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		e.t.Fatal(err)
	}
	b := make([]byte, size)
	for i := range b {
		b[i] = byte('a' + (i*7+size)%26)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// snapshot maps every file under root to its content (dirs end in "/").
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." || rel == DefaultMarker { // the marker is ferry's, not the mirror's
			return nil
		}
		if d.IsDir() {
			out[filepath.ToSlash(rel)+"/"] = ""
			return nil
		}
		b, err := os.ReadFile(p)
		out[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return out
}

// sameTree fails unless the remote holds exactly the source, byte for byte,
// with no temporary file anywhere.
func (e *env) sameTree() {
	e.t.Helper()
	want, got := snapshot(e.t, e.src), snapshot(e.t, e.disk)
	var diffs []string
	for p, w := range want {
		if g, ok := got[p]; !ok {
			diffs = append(diffs, "missing "+p)
		} else if g != w {
			diffs = append(diffs, "differs "+p)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			diffs = append(diffs, "extra "+p)
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		e.t.Fatalf("%s: remote differs from source in %d places: %s", e.name, len(diffs), strings.Join(diffs[:min(len(diffs), 10)], ", "))
	}
}
