package gitstage

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The user's configuration is read for credentials and transports only:
// signing, hooks, templates, a commit encoding, automatic gc or a stray
// GIT_DIR in the environment change nothing ferry writes.
func TestHostileUserConfig(t *testing.T) {
	ctx := ctxT(t)
	// A git daemon, which runs with the tests' neutral configuration:
	// a local repository would run the user's hooks on its side, as
	// it should.
	target, url, _ := served(t)
	home := t.TempDir()
	failing := "#!/bin/sh\necho hook ran >> " + filepath.Join(home, "hooks-ran") + "\nexit 1\n"
	for _, d := range []string{"hooks", "template/hooks"} {
		if err := os.MkdirAll(filepath.Join(home, d), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, h := range []string{"pre-push", "reference-transaction", "post-update", "pre-commit", "post-commit"} {
			if err := os.WriteFile(filepath.Join(home, d, h), []byte(failing), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	config := filepath.Join(home, "gitconfig")
	if err := os.WriteFile(config, []byte(`[commit]
	gpgSign = true
[push]
	gpgSign = true
	followTags = true
[gpg]
	program = /bin/false
[core]
	hooksPath = `+filepath.Join(home, "hooks")+`
	askPass = /bin/false
[init]
	templateDir = `+filepath.Join(home, "template")+`
	defaultBranch = trunk
[i18n]
	commitEncoding = ISO-8859-1
[gc]
	auto = 1
	autoDetach = false
[user]
	useConfigOnly = true
`), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GIT_CONFIG_GLOBAL", config)
	for k, v := range map[string]string{
		"GIT_DIR": filepath.Join(home, "nope"), "GIT_INDEX_FILE": filepath.Join(home, "index"),
		"GIT_OBJECT_DIRECTORY": filepath.Join(home, "objects"), "GIT_AUTHOR_NAME": "intruder",
		"GIT_COMMITTER_DATE": "@1 +0000", "GIT_ASKPASS": "/bin/false", "LC_ALL": "de_DE.UTF-8",
	} {
		t.Setenv(k, v)
	}
	r := openT(t, url, nil)
	c1, err := r.Publish(ctx, []Change{{Path: "a", Blob: blobT(t, r, "a\n")}}, "one", when, true)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := r.Publish(ctx, []Change{{Path: "b", Blob: blobT(t, r, "b\n")}, {Path: "a"}}, "two", when, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := gitT(t, target, "rev-parse", "main"); got != c2 {
		t.Errorf("target main %s, want %s", got, c2)
	}
	for _, c := range []string{c1, c2} {
		raw := gitT(t, target, "cat-file", "commit", c)
		if strings.Contains(raw, "gpgsig") || strings.Contains(raw, "encoding") || strings.Contains(raw, "intruder") || !strings.Contains(raw, "committer ferry <ferry@example.org> 1796288400 +0100") {
			t.Errorf("commit written under the user's configuration:\n%s", raw)
		}
	}
	if b, err := os.ReadFile(filepath.Join(home, "hooks-ran")); err == nil {
		t.Errorf("the user's hooks ran in ferry's clone: %s", b)
	}
	if tags := gitT(t, target, "tag"); tags != "" {
		t.Errorf("tags pushed: %s", tags)
	}
}
