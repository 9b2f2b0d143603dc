package gitstage

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestVersionAtLeast(t *testing.T) {
	for v, ok := range map[string]bool{
		"2.39.5": true, "2.30": true, "2.30.0": true, "3.0": true, "2.100.1": true,
		"2.29.2": false, "2.4.1": false, "1.9": false, "2.39.5.windows.1": true, "x": false,
	} {
		if versionAtLeast(v, MinGitVersion) != ok {
			t.Errorf("versionAtLeast(%q, %q) = %v", v, MinGitVersion, !ok)
		}
	}
}

func TestIsLocalPath(t *testing.T) {
	for repo, local := range map[string]bool{
		"/srv/site.git": true, "site.git": true, "../a:b/site.git": true, "./x:y": true,
		"git@example.org:site.git": false, "example.org:site.git": false,
		"ssh://git@example.org/site.git": false, "https://example.org/site.git": false, "file:///srv/site.git": false,
	} {
		if isLocalPath(repo) != local {
			t.Errorf("isLocalPath(%q) = %v", repo, !local)
		}
	}
}

// What git says is kept in one line without progress meters, but with
// every line ssh wrote: ssh ends its lines with "\r\n".
func TestTrimStderr(t *testing.T) {
	for in, want := range map[string]string{
		"Counting objects: 10% (1/10)\rCounting objects: 100% (10/10), done.\nfatal: bad\n": "Counting objects: 100% (10/10), done.; fatal: bad",
		"No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict checking.\r\nHost key verification failed.\r\nfatal: Could not read from remote repository.\n\nPlease make sure you have the correct access rights\nand the repository exists.\n": "No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict checking.; Host key verification failed.; fatal: Could not read from remote repository.; Please make sure you have the correct access rights; and the repository exists.",
		"remote:\nhint: try again\nerror: refused\n":                   "error: refused",
		"ferry@127.0.0.1: Permission denied (publickey,password).\r\n": "ferry@127.0.0.1: Permission denied (publickey,password).",
	} {
		if got := trimStderr(in); got != want {
			t.Errorf("trimStderr(%q)\n = %q\nwant %q", in, got, want)
		}
	}
	long := "@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@\r\n" + strings.Repeat("é banner line\r\n", 60) +
		"Host key verification failed.\r\nfatal: Could not read from remote repository.\n"
	got := trimStderr(long)
	if len(got) > 600+len(" … ") || !utf8.ValidString(got) || !strings.HasPrefix(got, "@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@; ") ||
		!strings.Contains(got, " … ") || !strings.HasSuffix(got, "; Host key verification failed.; fatal: Could not read from remote repository.") {
		t.Errorf("a long message trimmed to %d bytes: %q", len(got), got)
	}
}
