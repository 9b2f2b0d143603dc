package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fake is a daemon of two jobs, "site" with a Git stage and "plain"
// without, that records the git-sync calls.
type fake struct {
	mu    sync.Mutex
	gitOf []string
}

var committed = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func (f *fake) Status(context.Context) Status {
	return Status{PID: 1, Jobs: []JobStatus{
		{Name: "site", Git: &GitStatus{Branch: "main", Push: true, Waiting: 3, LastCommit: "0123456789abcdef0123456789abcdef01234567",
			LastCommitAt: committed, LastPushAt: committed.Add(time.Second), Unpushed: 1, Commits: 2, Pushes: 1,
			Error: "push refused", Stopped: true}},
		{Name: "plain"},
	}}
}

func (f *fake) Pause(string) error                         { return nil }
func (f *fake) Resume(string) error                        { return nil }
func (f *fake) Sync(string) error                          { return nil }
func (f *fake) Retry(context.Context, string) (int, error) { return 0, nil }

func (f *fake) GitSync(job string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch job {
	case "", "site":
		f.gitOf = append(f.gitOf, job)
		return []string{"site"}, nil
	case "plain":
		return nil, fmt.Errorf("job %q has %w", job, ErrNoGit)
	}
	return nil, fmt.Errorf("%w %q", ErrNoJob, job)
}

// serve runs c on a socket in a temporary directory until the test ends.
func serve(t *testing.T, c Controller) (*Client, string) {
	t.Helper()
	l, p, err := Listen(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, c) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return NewClient(p), p
}

// TestGitSync: POST /v1/git-sync reaches the job's stage (or every job's);
// a job without one is a conflict whose message the client keeps and
// recognises, an unknown job a 404.
func TestGitSync(t *testing.T) {
	f := &fake{}
	c, _ := serve(t, f)
	ctx := context.Background()
	for _, job := range []string{"site", ""} {
		asked, err := c.GitSync(ctx, job)
		if err != nil || !slices.Equal(asked, []string{"site"}) {
			t.Fatalf("git-sync %q: asked %v, %v", job, asked, err)
		}
	}
	if !slices.Equal(f.gitOf, []string{"site", ""}) {
		t.Fatalf("the controller was asked for %q, want site then every job", f.gitOf)
	}
	_, err := c.GitSync(ctx, "plain")
	if !errors.Is(err, ErrNoGit) || err.Error() != `job "plain" has no Git stage` {
		t.Errorf("git-sync of a job without a stage: %v", err)
	}
	if _, err := c.GitSync(ctx, "nope"); !errors.Is(err, ErrNoJob) || errors.Is(err, ErrNoGit) {
		t.Errorf("git-sync of an unknown job: %v", err)
	}
}

// TestStatusGit: the status JSON carries a job's stage under "git", with
// every field named, and leaves it out for a job without one.
func TestStatusGit(t *testing.T) {
	c, p := serve(t, &fake{})
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", p)
	}}}
	resp, err := hc.Get("http://ferry/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var raw struct{ Jobs []map[string]json.RawMessage }
	if err := json.Unmarshal(body, &raw); err != nil || len(raw.Jobs) != 2 {
		t.Fatalf("status: %v\n%s", err, body)
	}
	if _, ok := raw.Jobs[1]["git"]; ok {
		t.Errorf("a job without a Git stage has a \"git\" key:\n%s", body)
	}
	var git map[string]any
	if err := json.Unmarshal(raw.Jobs[0]["git"], &git); err != nil {
		t.Fatalf("the job's \"git\": %v\n%s", err, body)
	}
	for _, k := range []string{"branch", "push", "waiting", "last_commit", "last_commit_at", "last_push_at", "unpushed", "commits", "pushes", "error", "stopped"} {
		if _, ok := git[k]; !ok {
			t.Errorf("\"git\" lacks %q: %s", k, raw.Jobs[0]["git"])
		}
	}
	if !strings.Contains(string(body), `"last_commit_at": "2026-12-01T10:00:00Z"`) {
		t.Errorf("last_commit_at is not the commit's time:\n%s", body)
	}

	st, err := c.Status(context.Background(), "site")
	if err != nil || len(st.Jobs) != 1 || st.Jobs[0].Git == nil {
		t.Fatalf("status of site: %+v, %v", st, err)
	}
	if got, want := *st.Jobs[0].Git, *(&fake{}).Status(context.Background()).Jobs[0].Git; got != want {
		t.Errorf("the client read\n%+v\nthe daemon said\n%+v", got, want)
	}
}
