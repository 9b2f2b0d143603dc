package gitstage

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"ferry/internal/testrig"
)

// sshServed is OpenSSH's sshd on 127.0.0.1, whose sessions may run git,
// with an empty bare repository on its disk: where it is there, and its
// ssh:// URL. Git reaches it as a user's git reaches a Git host, through
// GIT_SSH_COMMAND.
func sshServed(t *testing.T, srv *testrig.SSHServer, name string) (dir, url string) {
	t.Helper()
	return srv.BareRepo(t, name), srv.GitURL(name)
}

// sshStage is a stage on url with push on, in batches of two.
func sshStage(t *testing.T, url string) (*Stage, *memStore, *Repo) {
	t.Helper()
	r := openT(t, url, func(o *Options) { o.Push, o.BatchFiles, o.BatchDelay = true, 2, time.Hour })
	st := &memStore{shippedAt: stageNow}
	return NewStage(r, st, "site", "reg/site", func() time.Time { return stageNow }, t.Logf), st, r
}

// TestSSHPush: the stage commits what waits and pushes it to an ssh://
// repository, through the user's own ssh (an identity file and a
// known_hosts file in GIT_SSH_COMMAND); git-receive-pack writes the
// repository on the server as the server's account.
func TestSSHPush(t *testing.T) {
	ctx := ctxT(t)
	srv := testrig.SSH(t, testrig.SSHOptions{Exec: true})
	dir, url := sshServed(t, srv, "site.git")
	t.Setenv("GIT_SSH_COMMAND", srv.GitSSHCommand(srv.IdentityFile, srv.KnownHostsFile))
	s, st, r := sshStage(t, url)
	st.ship(t, r, "index.html", "css/site.css")
	st.pending = append(st.pending, Change{Path: "bin/run.sh", Blob: blobT(t, r, "#!/bin/sh\n"), Exec: true})
	made, err := s.Drain(ctx)
	if err != nil || len(made) != 2 {
		t.Fatalf("3 files in batches of 2 over SSH: made %v, %v", made, err)
	}
	if got := gitT(t, dir, "rev-parse", "main"); got != made[1] {
		t.Fatalf("the server's main is %s, want the last commit %s", got, made[1])
	}
	sameFiles(t, files(t, dir, "main"), map[string]string{
		"index.html": "100644 content of index.html", "css/site.css": "100644 content of css/site.css",
		"bin/run.sh": "100755 #!/bin/sh\n",
	})
	// Written by git-receive-pack on the server, as the account sshd
	// logged in: not by a push to a local path.
	acct, err := testrig.EnsureAccount()
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "refs", "heads", "main"))
	if err != nil {
		t.Fatal(err)
	}
	if uid := fi.Sys().(*syscall.Stat_t).Uid; int(uid) != acct.UID {
		t.Fatalf("the server's ref belongs to uid %d, not to %s (%d): the push did not go through sshd", uid, acct.Name, acct.UID)
	}
	if stt := s.Status(); stt.Pushes != 1 || stt.Unpushed != 0 || stt.Err != "" || stt.LastCommit != made[1] {
		t.Fatalf("status %+v", stt)
	}

	// A change and a deletion: the fetch finds the branch there now.
	st.pending = append(st.pending, Change{Path: "index.html", Blob: blobT(t, r, "new index")}, Change{Path: "css/site.css"})
	more, err := s.Drain(ctx)
	if err != nil || len(more) != 1 {
		t.Fatalf("a change and a deletion over SSH: made %v, %v", more, err)
	}
	if got := gitT(t, dir, "rev-parse", "main"); got != more[0] {
		t.Fatalf("the server's main is %s, want %s", got, more[0])
	}
	sameFiles(t, files(t, dir, "main"), map[string]string{"index.html": "100644 new index", "bin/run.sh": "100755 #!/bin/sh\n"})
	if n := gitT(t, dir, "rev-list", "--count", "main"); n != "3" {
		t.Fatalf("%s commits on the server, want 3", n)
	}
	if out, err := gitTry(dir, "", "fsck", "--strict", "--no-dangling"); err != nil {
		t.Fatalf("fsck --strict on the server: %v\n%s", err, out)
	}
}

// TestSSHRefused: a server whose host key is not the one known_hosts
// holds, or that does not accept the identity, is an error naming the
// repository and quoting ssh, and nothing is pushed: when the clone is
// made (Open fails and leaves nothing), and when a stage opened earlier
// pushes (the batch stays committed in the clone, the status says why,
// and the next push once ssh is set right sends it).
func TestSSHRefused(t *testing.T) {
	srv := testrig.SSH(t, testrig.SSHOptions{Exec: true})
	good := srv.GitSSHCommand(srv.IdentityFile, srv.KnownHostsFile)
	keys := t.TempDir()
	empty := filepath.Join(keys, "known_hosts_empty")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	changed, err := srv.WrongKnownHosts(keys)
	if err != nil {
		t.Fatal(err)
	}
	stranger := filepath.Join(keys, "id_stranger")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "stranger", "-f", stranger).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	for _, tc := range []struct {
		name, ssh, identity string
		said                []string // what the error must quote
	}{
		{"unknown host key", srv.GitSSHCommand(srv.IdentityFile, empty), srv.IdentityFile,
			[]string{"No ED25519 host key is known for", "Host key verification failed"}},
		{"changed host key", srv.GitSSHCommand(srv.IdentityFile, changed), srv.IdentityFile,
			[]string{"REMOTE HOST IDENTIFICATION HAS CHANGED", "Host key verification failed"}},
		{"key not accepted", srv.GitSSHCommand(stranger, srv.KnownHostsFile), stranger,
			[]string{"Permission denied (publickey"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t)
			name := strings.ReplaceAll(tc.name, " ", "-") + ".git"
			dir, url := sshServed(t, srv, name)
			key, err := os.ReadFile(tc.identity)
			if err != nil {
				t.Fatal(err)
			}
			secret := strings.Split(string(key), "\n")[2] // a line of the private key
			refused := func(what string, err error) {
				t.Helper()
				if err == nil {
					t.Fatalf("%s: no error", what)
				}
				msg := err.Error()
				if !errors.Is(err, ErrFetch) || !strings.Contains(msg, url) {
					t.Errorf("%s: %q does not say which repository could not be reached", what, msg)
				}
				for _, s := range tc.said {
					if !strings.Contains(msg, s) {
						t.Errorf("%s: %q does not say %q", what, msg, s)
					}
				}
				if strings.Contains(msg, secret) || strings.Contains(msg, srv.Password) {
					t.Errorf("%s: %q holds a secret", what, msg)
				}
			}
			nothingPushed := func() {
				t.Helper()
				if refs := gitT(t, dir, "for-each-ref"); refs != "" {
					t.Fatalf("the server's repository has refs: %s", refs)
				}
				if n := gitT(t, dir, "count-objects"); n != "0 objects, 0 kilobytes" {
					t.Fatalf("the server's repository received objects: %s", n)
				}
			}

			// The clone cannot be made.
			t.Setenv("GIT_SSH_COMMAND", tc.ssh)
			clone := filepath.Join(t.TempDir(), "clone.git")
			_, err = Open(ctx, clone, Options{Repository: url, Author: Author{Name: "ferry", Email: "ferry@example.org"}})
			refused("Open", err)
			if ents, _ := os.ReadDir(filepath.Dir(clone)); len(ents) != 0 {
				t.Errorf("a refused Open left %v", ents)
			}

			// A stage whose clone was made while ssh was set right.
			t.Setenv("GIT_SSH_COMMAND", good)
			s, st, r := sshStage(t, url)
			retries := 0
			r.test.sleep = func(context.Context, time.Duration) error { retries++; return nil }
			t.Setenv("GIT_SSH_COMMAND", tc.ssh)
			st.ship(t, r, "index.html")
			made, err := s.Drain(ctx)
			refused("Drain", err)
			if len(made) != 1 {
				t.Fatalf("the batch was not committed in the clone: %v", made)
			}
			nothingPushed()
			if retries != 0 {
				t.Errorf("a refusal that trying again cannot change was tried again %d times", retries)
			}
			stt := s.Status()
			if stt.Err == "" || !strings.Contains(stt.Err, url) || !strings.Contains(stt.Err, tc.said[len(tc.said)-1]) {
				t.Errorf("status error %q", stt.Err)
			}
			if stt.Unpushed != 1 || stt.Pushes != 0 || !stt.Stopped {
				t.Errorf("status after the refused push: %+v", stt)
			}
			if tip, _ := r.Tip(ctx); tip != made[0] {
				t.Errorf("the clone's tip is %s, want the batch's commit %s", tip, made[0])
			}

			// ssh set right again: the next drain pushes what waited.
			t.Setenv("GIT_SSH_COMMAND", good)
			if more, err := s.Drain(ctx); err != nil || len(more) != 0 {
				t.Fatalf("drain with ssh set right: made %v, %v", more, err)
			}
			if got := gitT(t, dir, "rev-parse", "main"); got != made[0] {
				t.Fatalf("the server's main is %s, want %s", got, made[0])
			}
			if stt := s.Status(); stt.Err != "" || stt.Unpushed != 0 || stt.Pushes != 1 {
				t.Errorf("status after the push: %+v", stt)
			}
		})
	}
}
