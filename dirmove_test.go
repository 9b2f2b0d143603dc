package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"ferry/entry"
	"ferry/internal/testrig"
)

// opsServer is a real server whose log tells each upload and rename.
type opsServer struct {
	liveServer
	ops func(t *testing.T) serverOps
}

// serverOps is what a server's log says it did under the mirror: uploads
// by final path, and renames as "from -> to", both relative to the mirror.
type serverOps struct {
	uploads, renames []string
}

// since is what was logged after before.
func (o serverOps) since(before serverOps) serverOps {
	return serverOps{uploads: o.uploads[len(before.uploads):], renames: o.renames[len(before.renames):]}
}

var (
	// vsftpd's own log format: `OK RENAME: Client "127.0.0.1", "/mirror/a /mirror/b"`.
	vsftpdRename = regexp.MustCompile(`OK RENAME: Client "[^"]+", "(\S+) (\S+)"`)
	// internal-sftp at INFO: `open "/abs" flags WRITE,CREATE,TRUNCATE mode 0644`
	// and `posix-rename old "/abs/a" new "/abs/b"` (or plain `rename`).
	sftpOpenWrite = regexp.MustCompile(`open "([^"]+)" flags \S*WRITE`)
	sftpRename    = regexp.MustCompile(`rename old "([^"]+)" new "([^"]+)"`)
)

// finalName maps a temporary upload name to the file it becomes.
func finalName(p string) string {
	dir, base := path.Split(p)
	if entry.IsTemp(base) {
		base = base[len(entry.TempPrefix)+13:] // .ferry-tmp-<12 hex>-<final name>
	}
	return dir + base
}

// opsServers starts vsftpd and OpenSSH with logs that count uploads and
// renames.
func opsServers(t *testing.T) []opsServer {
	ftp := testrig.FTP(t, testrig.FTPOptions{})
	ssh := testrig.SSH(t, testrig.SSHOptions{SFTPLogLevel: "INFO"})
	readLines := func(t *testing.T, log string, fn func(string)) {
		t.Helper()
		b, err := os.ReadFile(log)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			fn(sc.Text())
		}
	}
	ftpOps := func(t *testing.T) serverOps {
		var o serverOps
		o.uploads, _ = uploadsSince(t, ftp.XferLog, 0)
		readLines(t, ftp.XferLog, func(l string) {
			if m := vsftpdRename.FindStringSubmatch(l); m != nil {
				o.renames = append(o.renames, strings.TrimPrefix(m[1], "/mirror/")+" -> "+strings.TrimPrefix(m[2], "/mirror/"))
			}
		})
		return o
	}
	root := ssh.Root + "/mirror/"
	sshOps := func(t *testing.T) serverOps {
		var o serverOps
		readLines(t, ssh.SFTPLog, func(l string) {
			if m := sftpOpenWrite.FindStringSubmatch(l); m != nil {
				o.uploads = append(o.uploads, finalName(strings.TrimPrefix(m[1], root)))
			} else if m := sftpRename.FindStringSubmatch(l); m != nil {
				o.renames = append(o.renames, strings.TrimPrefix(m[1], root)+" -> "+strings.TrimPrefix(m[2], root))
			}
		})
		return o
	}
	return []opsServer{
		{liveServer{name: "vsftpd", target: ftp.URL("/mirror"), env: []string{"FERRY_PASSWORD=" + ftp.Password},
			disk: filepath.Join(ftp.Root, "mirror"), xferLog: ftp.XferLog}, ftpOps},
		{liveServer{name: "openssh", target: ssh.URL("mirror"),
			keys: fmt.Sprintf("identity_file = %q\nknown_hosts = %q\n", ssh.IdentityFile, ssh.KnownHostsFile),
			disk: filepath.Join(ssh.Root, "mirror")}, sshOps},
	}
}

// treeDiff compares two trees' files byte for byte and returns the first
// difference, or "" when they are equal.
func treeDiff(a, b string) string {
	read := func(root string) (map[string][]byte, error) {
		out := map[string][]byte{}
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			// ferry's marker at the root is bookkeeping, not a mirrored file.
			if d.Type().IsRegular() && p != filepath.Join(root, testrig.DefaultMarker) {
				rel, _ := filepath.Rel(root, p)
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				out[filepath.ToSlash(rel)] = b
			}
			return nil
		})
		return out, err
	}
	ma, err := read(a)
	if err != nil {
		return err.Error()
	}
	mb, err := read(b)
	if err != nil {
		return err.Error()
	}
	for p, x := range ma {
		y, ok := mb[p]
		switch {
		case !ok:
			return p + " is missing on the remote"
		case !bytes.Equal(x, y):
			return p + " differs on the remote"
		}
	}
	for p := range mb {
		if _, ok := ma[p]; !ok {
			return p + " is on the remote only"
		}
	}
	return ""
}

// converge waits until the remote equals the source and returns how long
// it took.
func converge(t *testing.T, src, disk string, limit time.Duration) time.Duration {
	t.Helper()
	began := time.Now()
	diff := ""
	for time.Since(began) < limit {
		if diff = treeDiff(src, disk); diff == "" {
			return time.Since(began)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("the remote is not the source after %v: %s", limit, diff)
	return 0
}

// dirTree writes n files under root, a fifth of them in a nested
// directory and a few in one nested deeper, so a move carries subtrees.
func dirTree(t *testing.T, root string, n int) {
	t.Helper()
	for i := range n {
		rel := fmt.Sprintf("page%04d.txt", i)
		switch {
		case i%50 == 0:
			rel = "sub/deeper/" + rel
		case i%5 == 0:
			rel = "sub/" + rel
		}
		writeFile(t, filepath.Join(root, filepath.FromSlash(rel)), strings.Repeat(fmt.Sprintf("page %d\n", i), 1+i%97))
	}
}

// TestDaemonDirMove renames a directory of 1,000 files under the daemon,
// on vsftpd and OpenSSH: the remote directory is renamed once and nothing
// is uploaded again; with one file edited right after the move, that file
// alone is uploaded.
func TestDaemonDirMove(t *testing.T) {
	for _, srv := range opsServers(t) {
		t.Run(srv.name, func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, "src")
			dirTree(t, filepath.Join(src, "docs"), 1000)
			writeFile(t, filepath.Join(src, "index.txt"), "index\n")
			d := startDaemon(t, writeConfig(t, dir, srv.liveServer, ""), srv.env)
			converge(t, src, srv.disk, 60*time.Second)

			// All 1,000 files move at once.
			before := srv.ops(t)
			if err := os.Rename(filepath.Join(src, "docs"), filepath.Join(src, "manual")); err != nil {
				t.Fatal(err)
			}
			took := converge(t, src, srv.disk, 120*time.Second)

			// Then again, with one file edited just after the move.
			if err := os.Rename(filepath.Join(src, "manual"), filepath.Join(src, "guide")); err != nil {
				t.Fatal(err)
			}
			edited := filepath.Join(src, "guide", "sub", "page0005.txt")
			writeFile(t, edited, "edited after the move\n")
			converge(t, src, srv.disk, 120*time.Second)
			if code := d.stop(t, 30*time.Second); code != 0 {
				t.Fatalf("SIGTERM: exit %d", code)
			}
			if diff := treeDiff(src, srv.disk); diff != "" {
				t.Fatalf("after the daemon stopped: %s", diff)
			}
			noTemps(t, srv.disk)

			ops := srv.ops(t).since(before)
			first := len(ops.renames)
			for i, r := range ops.renames {
				if strings.HasPrefix(r, "manual -> ") {
					first = i
					break
				}
			}
			firstUps, secondUps := 0, []string{}
			for _, u := range ops.uploads {
				if strings.HasPrefix(u, "manual/") || strings.HasPrefix(u, "docs/") {
					firstUps++
				} else {
					secondUps = append(secondUps, u)
				}
			}
			t.Logf("%s: 1,000 files in a renamed directory: %d uploads, renames %q, converged in %v",
				srv.name, firstUps, ops.renames[:min(first, 5)], took.Round(time.Millisecond))
			if firstUps != 0 || first != 1 || ops.renames[0] != "docs -> manual" {
				t.Errorf("docs/ renamed to manual/: %d uploads and renames %q; want none and one rename",
					firstUps, ops.renames[:min(first, 5)])
			}
			rest := ops.renames[min(first, len(ops.renames)):]
			dirRenames := 0
			for _, r := range rest {
				if r == "manual -> guide" {
					dirRenames++
				}
			}
			if dirRenames != 1 || len(secondUps) != 1 || secondUps[0] != "guide/sub/page0005.txt" {
				t.Errorf("manual/ renamed to guide/ with one file edited: %d uploads %q, %d renames of the directory; "+
					"want guide/sub/page0005.txt alone and one rename", len(secondUps), secondUps[:min(len(secondUps), 5)], dirRenames)
			}
		})
	}
}
