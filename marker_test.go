package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"ferry/internal/testrig"
)

// ftpCommand is one command vsftpd logged with log_ftp_protocol.
var ftpCommand = regexp.MustCompile(`FTP command: Client "[^"]+", "([A-Z]+)[ "]?([^"]*)"?`)

// commandsSince returns the FTP commands vsftpd logged after byte offset
// off of its log, and the new offset.
func commandsSince(t *testing.T, log string, off int) ([]string, int) {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for line := range strings.Lines(string(b[off:])) {
		if m := ftpCommand.FindStringSubmatch(line); m != nil {
			out = append(out, strings.TrimSpace(m[1]+" "+m[2]))
		}
	}
	return out, len(b)
}

// TestMarkerCLI: the marker through the command line against vsftpd. A
// second state directory on the same target is exit 3 naming the first
// and --takeover; --takeover is exit 0 and --json says what happened; the
// first registry (and its daemon) is then refused in turn. A no-op re-run
// costs one round trip less than before the marker: the marker's stamp
// (one MDTM) replaces the check that the target exists (SIZE and CWD), and
// nothing is read, listed or written.
func TestMarkerCLI(t *testing.T) {
	srv := testrig.FTP(t, testrig.FTPOptions{LogProtocol: true})
	dir := t.TempDir()
	src, stateA, stateB := filepath.Join(dir, "src"), filepath.Join(dir, "stateA"), filepath.Join(dir, "stateB")
	writeTree(t, src, 30, 3)
	env := []string{"FERRY_PASSWORD=" + srv.Password}
	url := srv.URL("/mirror")
	if r := ferry(t, env, nil, "--once", "--state", stateA, src, url); r.code != 0 {
		t.Fatalf("first run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	_, off := commandsSince(t, srv.XferLog, 0)
	if r := ferry(t, env, nil, "--once", "--state", stateA, src, url); r.code != 0 || !strings.Contains(r.stdout, "in sync") {
		t.Fatalf("no-op run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	cmds, _ := commandsSince(t, srv.XferLog, off)
	t.Logf("no-op run: %q", cmds)
	var marker, other []string
	for _, c := range cmds {
		switch {
		case strings.HasSuffix(c, "/mirror/.ferry-marker"):
			marker = append(marker, c)
		case strings.HasPrefix(c, "USER"), strings.HasPrefix(c, "PASS"), c == "FEAT", strings.HasPrefix(c, "TYPE"), strings.HasPrefix(c, "OPTS"), c == "QUIT", c == "PWD":
		default:
			other = append(other, c)
		}
	}
	if strings.Join(marker, ",") != "MDTM /mirror/.ferry-marker" || len(other) != 0 {
		t.Fatalf("a no-op run sent %q for the marker and %q besides the login (all: %q)", marker, other, cmds)
	}

	r := ferry(t, env, nil, "--once", "--state", stateB, src, url)
	if r.code != 3 || !strings.Contains(r.stderr, "state directory "+stateA) || !strings.Contains(r.stderr, "--takeover") {
		t.Fatalf("second state directory: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = ferry(t, env, nil, "--once", "--state", stateB, "--takeover", "--json", src, url)
	if r.code != 0 || !strings.Contains(r.stdout, `"marker": "taken-over"`) || !strings.Contains(r.stdout, `"marker_written": true`) {
		t.Fatalf("--takeover: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = ferry(t, env, nil, "--once", "--state", stateA, src, url)
	if r.code != 3 || !strings.Contains(r.stderr, "state directory "+stateB) {
		t.Fatalf("the first registry after the takeover: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	cfg := filepath.Join(dir, "ferry.toml")
	writeFile(t, cfg, "state_dir = \""+stateA+"\"\n[[job]]\nname = \"site\"\nsource = \""+src+"\"\ntarget = \""+url+"\"\n")
	r = ferry(t, env, nil, "--config", cfg)
	if r.code != 3 || !strings.Contains(r.stderr, "state directory "+stateB) {
		t.Fatalf("a daemon on the first registry: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
