package mirror

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ferry/internal/ftpfake"
	"ferry/remote"
	"ferry/remote/ftp"
)

// newFakeEnv targets an FTP server inside the test process, whose faults
// the test sets.
func newFakeEnv(t *testing.T, fault func(ftpfake.Command) ftpfake.Fault) (*env, *ftpfake.Server) {
	e := baseEnv(t, "ftpfake")
	root := t.TempDir()
	srv, err := ftpfake.Start(ftpfake.Options{Root: root, Fault: fault})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	if e.target, err = remote.ParseURL(srv.URL("/mirror")); err != nil {
		t.Fatal(err)
	}
	e.ropts = remote.Options{Password: ftpfake.Password, Timeout: 10 * time.Second}
	e.open = ftp.Open
	e.disk = filepath.Join(root, "mirror")
	return e, srv
}

// shipping arms the server's faults while a pass ships its files: from
// the "syncing" phase until the last file was sent or given up on.
type shipping struct {
	nopProgress
	armed atomic.Bool
	left  atomic.Int64 // files still to ship
}

func (p *shipping) Phase(name string) { p.armed.Store(name == "syncing" && p.left.Load() > 0) }

func (p *shipping) Done(_ string, bytes int64) {
	if bytes > 0 {
		p.finished()
	}
}

func (p *shipping) Failed(string, error) { p.finished() }

func (p *shipping) finished() {
	if p.left.Add(-1) <= 0 {
		p.armed.Store(false)
	}
}

// TestOnceSessionsLostAtRandom: while a --once pass ships 500 files with 4
// workers, the server ends ~3% of its sessions' commands at random, logins
// included (vsftpd's "500 OOPS", a 421, a connection dropped before or
// after a command or in the middle of a STOR). Every lost session is
// redialed and its item retried: the pass exits 0 with nothing failed, the
// remote holds exactly the source with no temporary file left, and the
// summary counts the sessions lost, in text and JSON.
//
// The faults are armed only while files ship: a pass does not retry a lost
// session under its first login, the marker's check and write, or a
// listing of the remote (a first pass is given a remote already listed).
func TestOnceSessionsLostAtRandom(t *testing.T) {
	prog := &shipping{}
	random := ftpfake.Random(1, 0.03)
	e, srv := newFakeEnv(t, func(c ftpfake.Command) ftpfake.Fault {
		if !prog.armed.Load() {
			return ftpfake.NoFault
		}
		return random(c)
	})
	if err := os.MkdirAll(e.src, 0o755); err != nil {
		t.Fatal(err)
	}
	e.mustRun(nil) // lists the empty remote and writes the marker
	e.tree(500, 10)
	prog.left.Store(500)
	sum, err := Run(context.Background(), func() Options { o := e.options(); o.Progress = prog; return o }())
	if err != nil {
		t.Fatalf("%v\n%s", err, e.logs)
	}
	injected := srv.Injected()
	t.Logf("faults made: %v; sessions lost and redialed: %d; %.1fs", injected, sum.SessionsLost, sum.Seconds)
	if sum.Failed != 0 || sum.Transferred != 500 || sum.ListedRemote {
		t.Fatalf("%d transferred, %d failed, listed %v; want 500, 0, false\n%s", sum.Transferred, sum.Failed, sum.ListedRemote, e.logs)
	}
	e.sameTree()
	faults := 0
	for _, n := range injected {
		faults += n
	}
	if faults < 20 || len(injected) != len(ftpfake.Faults) {
		t.Fatalf("only %d faults made (%v): the test proves little", faults, injected)
	}
	// Each fault ends one session, under an item or between two (found by
	// the next item): at most one loss each, and most of them counted.
	if sum.SessionsLost > int64(faults) || sum.SessionsLost < int64(faults)/2 {
		t.Fatalf("%d sessions lost reported after %d faults", sum.SessionsLost, faults)
	}

	var text strings.Builder
	sum.WriteText(&text)
	if want := fmt.Sprintf("sessions lost and redialed: %d\n", sum.SessionsLost); !strings.Contains(text.String(), want) {
		t.Errorf("the summary does not say %q:\n%s", want, text.String())
	}
	js, err := json.Marshal(sum)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf(`"sessions_lost":%d`, sum.SessionsLost); !strings.Contains(string(js), want) {
		t.Errorf("the JSON summary does not hold %s: %s", want, js)
	}
}

// TestListingSessionsLost: while a pass lists the remote (the first pass,
// and later ones with --check-remote), the server ends the session on the
// first LIST of each directory with each of the ways a session ends. The
// listing is the session's failure, not the directory's: it is retried on
// a new session, and the pass exits 0 with the remote equal to the source.
func TestListingSessionsLost(t *testing.T) {
	var mu sync.Mutex
	failed := map[string]bool{}
	var kinds atomic.Int64
	e, srv := newFakeEnv(t, func(c ftpfake.Command) ftpfake.Fault {
		if c.Verb != "LIST" {
			return ftpfake.NoFault
		}
		mu.Lock()
		defer mu.Unlock()
		if failed[c.Arg] {
			return ftpfake.NoFault
		}
		failed[c.Arg] = true
		return []ftpfake.Fault{ftpfake.Oops, ftpfake.Closing, ftpfake.Drop, ftpfake.DropAfter}[kinds.Add(1)%4]
	})
	e.tree(60, 6)
	sum := e.mustRun(func(o *Options) { o.CheckRemote = true })
	if !sum.ListedRemote || sum.Transferred != 60 || sum.Failed != 0 {
		t.Fatalf("first pass: listed %v, %d transferred, %d failed\n%s", sum.ListedRemote, sum.Transferred, sum.Failed, e.logs)
	}
	e.sameTree()
	// A second listing pass: the directories exist now, and each one's
	// first LIST fails again.
	clear(failed)
	sum = e.mustRun(func(o *Options) { o.CheckRemote = true })
	lists := 0
	for range failed {
		lists++
	}
	if sum.Transferred != 0 || sum.Unchanged != 60 || sum.SessionsLost < int64(lists) {
		t.Fatalf("second pass: %d transferred, %d unchanged, %d sessions lost for %d listings broken\n%s", sum.Transferred, sum.Unchanged, sum.SessionsLost, lists, e.logs)
	}
	if got := srv.Injected(); len(got) < 4 {
		t.Fatalf("faults made: %v; want each kind", got)
	}
}
