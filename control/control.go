// Package control owns the daemon's control plane: a small HTTP API on a
// Unix socket in the state directory, readable and writable by its owner
// only, and the client that `ferry status|pause|resume|sync` use. It knows
// nothing of jobs beyond what the Controller it serves reports.
package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// SocketName is the control socket's name in the state directory.
const SocketName = "ferry.sock"

// Status is the daemon's state as `ferry status` shows it.
type Status struct {
	PID     int         `json:"pid"`
	Version string      `json:"version"`
	Started time.Time   `json:"started"`
	Jobs    []JobStatus `json:"jobs"`
}

// JobStatus is one job's state.
type JobStatus struct {
	Name      string `json:"name"`
	State     string `json:"state"` // starting, idle, scanning, syncing, waiting, paused, draining, failed
	Source    string `json:"source"`
	Target    string `json:"target"`
	Paused    bool   `json:"paused"`
	Protected bool   `json:"protected"` // inside protected hours: bulk work waits

	Queue         QueueStatus    `json:"queue"`
	WorkersTarget int            `json:"workers_target"` // the pool's aim; it grows to it only when there is work
	Workers       []WorkerStatus `json:"workers"`
	Scan          ScanStatus     `json:"scan"`
	Totals        Totals         `json:"totals"`

	FailedFiles int64    `json:"failed_files"`
	LastErrors  []string `json:"last_errors,omitempty"`

	// ServerSilentSince is set while the server does not answer: since
	// when no connection made progress with work waiting on it. The job
	// waits (state "waiting") and goes on by itself once it answers.
	ServerSilentSince time.Time `json:"server_silent_since,omitzero"`

	// Git is the job's Git stage; nil when the job has none.
	Git *GitStatus `json:"git,omitempty"`
}

// GitStatus is a job's Git stage: what waits to be committed, what was
// committed and pushed since the daemon started, and what went wrong.
type GitStatus struct {
	Branch       string    `json:"branch,omitempty"`
	Push         bool      `json:"push"`                  // off: commits stay in ferry's own clone
	Waiting      int64     `json:"waiting"`               // paths shipped and not yet committed
	LastCommit   string    `json:"last_commit,omitempty"` // the last commit the stage made
	LastCommitAt time.Time `json:"last_commit_at,omitzero"`
	LastPushAt   time.Time `json:"last_push_at,omitzero"`
	Unpushed     int       `json:"unpushed"` // batches committed and not pushed
	Commits      int64     `json:"commits"`  // since the job's session opened (the daemon's start, or the job's restart)
	Pushes       int64     `json:"pushes"`
	Error        string    `json:"error,omitempty"` // the last failure, "" once a commit or push succeeds
	// Stopped: a push was refused in a way a rebuild cannot fix; the
	// stage waits for `ferry sync --git`, and the mirror goes on.
	Stopped bool `json:"stopped"`
}

// QueueStatus is the depth of each class.
type QueueStatus struct {
	Live     int `json:"live"`      // high class, in memory
	Bulk     int `json:"bulk"`      // low class, claimed from the registry
	Pending  int `json:"pending"`   // out of sync in the registry, not yet claimed
	InFlight int `json:"in_flight"` // being worked on
}

// WorkerStatus is one worker.
type WorkerStatus struct {
	ID    int       `json:"id"`
	State string    `json:"state"` // dialing, ready, working, backoff
	Path  string    `json:"path,omitempty"`
	Since time.Time `json:"since"`
	Done  int       `json:"done"`
}

// ScanStatus is the current or last scan.
type ScanStatus struct {
	Running  bool      `json:"running"`
	Since    time.Time `json:"since,omitzero"`
	Last     time.Time `json:"last,omitzero"`
	LastTook float64   `json:"last_took_s,omitempty"`
	Uploads  int64     `json:"last_uploads"`
	Deletes  int64     `json:"last_deletes"`
	Files    int64     `json:"last_files"`
	Error    string    `json:"last_error,omitempty"`

	// Progress of the current (or last) full scan: what it found to do,
	// and what the job finished since it began, live work included.
	PlannedFiles int64 `json:"planned_files"`
	PlannedBytes int64 `json:"planned_bytes"`
	DoneFiles    int64 `json:"done_files"`
	DoneBytes    int64 `json:"done_bytes"`
}

// Totals count what the job did since the daemon started.
type Totals struct {
	Transferred int64 `json:"transferred"`
	Bytes       int64 `json:"bytes"`
	Touched     int64 `json:"touched"`
	Moved       int64 `json:"moved"`
	Deleted     int64 `json:"deleted"`
	Failed      int64 `json:"failed"`
	Live        int64 `json:"live"` // live changes queued

	SessionsLost int64 `json:"sessions_lost"` // sessions that ended under an item and were redialed
}

// Controller is what the daemon offers the socket.
type Controller interface {
	Status(ctx context.Context) Status
	Pause(job string) error
	Resume(job string) error
	Sync(job string) error
	Retry(ctx context.Context, job string) (int, error)
	// GitSync asks the Git stage of the job (every job that has one, for
	// "") to commit and push what waits now; it returns the jobs asked.
	GitSync(job string) ([]string, error)
}

// ErrNoJob is returned (wrapped) for a job name the daemon does not run.
var ErrNoJob = errors.New("no such job")

// ErrNoGit is returned (wrapped) when a Git command names a job without a
// Git stage, or no job has one.
var ErrNoGit = errors.New("no Git stage")

// Listen opens the control socket in dir, refusing to take over the socket
// of a daemon that still answers, and removing a dead one's.
func Listen(dir string) (net.Listener, string, error) {
	p := filepath.Join(dir, SocketName)
	if c, err := net.DialTimeout("unix", p, time.Second); err == nil {
		c.Close()
		return nil, p, fmt.Errorf("control socket %s: another ferry daemon answers on it (stop it first, or give this one its own state_dir)", p)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, p, fmt.Errorf("control socket %s: remove the stale one: %w", p, err)
	}
	l, err := net.Listen("unix", p)
	if err != nil {
		return nil, p, fmt.Errorf("control socket %s: %w", p, err)
	}
	// Owner only: the socket steers what is written to the remote.
	if err := os.Chmod(p, 0o600); err != nil {
		l.Close()
		return nil, p, fmt.Errorf("control socket %s: %w", p, err)
	}
	return l, p, nil
}

// Serve answers on l until ctx ends.
func Serve(ctx context.Context, l net.Listener, c Controller) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		st := c.Status(r.Context())
		if job := r.URL.Query().Get("job"); job != "" {
			var keep []JobStatus
			for _, j := range st.Jobs {
				if j.Name == job {
					keep = append(keep, j)
				}
			}
			if keep == nil {
				writeErr(w, fmt.Errorf("%w %q", ErrNoJob, job))
				return
			}
			st.Jobs = keep
		}
		writeJSON(w, http.StatusOK, st)
	})
	act := func(name string, fn func(job string) error) {
		mux.HandleFunc("POST /v1/"+name, func(w http.ResponseWriter, r *http.Request) {
			if err := fn(r.URL.Query().Get("job")); err != nil {
				writeErr(w, err)
				return
			}
			writeJSON(w, http.StatusOK, map[string]string{"result": "ok"})
		})
	}
	act("pause", c.Pause)
	act("resume", c.Resume)
	act("sync", c.Sync)
	mux.HandleFunc("POST /v1/retry", func(w http.ResponseWriter, r *http.Request) {
		n, err := c.Retry(r.Context(), r.URL.Query().Get("job"))
		if err != nil {
			writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"result": "ok", "retried": n})
	})
	mux.HandleFunc("POST /v1/git-sync", func(w http.ResponseWriter, r *http.Request) {
		jobs, err := c.GitSync(r.URL.Query().Get("job"))
		if err != nil {
			writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"result": "ok", "jobs": jobs})
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	defer stop()
	err := srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeErr(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrNoJob):
		code = http.StatusNotFound
	case errors.Is(err, ErrNoGit):
		code = http.StatusConflict
	}
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

// Client talks to a daemon's socket.
type Client struct {
	path string
	http *http.Client
}

// NewClient returns a client of the socket at path.
func NewClient(path string) *Client {
	return &Client{path: path, http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}}
}

// ErrNotRunning says no daemon answers on the socket.
var ErrNotRunning = errors.New("no ferry daemon is running")

func (c *Client) do(ctx context.Context, method, op, job string, out any) error {
	u := "http://ferry/v1/" + op
	if job != "" {
		u += "?job=" + url.QueryEscape(job)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Op == "dial" {
			return fmt.Errorf("%w on %s (%v)", ErrNotRunning, c.path, oe.Err)
		}
		return fmt.Errorf("control socket %s: %w", c.path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("control socket %s: %w", c.path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			switch resp.StatusCode {
			case http.StatusNotFound:
				return fmt.Errorf("%w: %s", ErrNoJob, strings.TrimPrefix(e.Error, ErrNoJob.Error()+" "))
			case http.StatusConflict:
				return wrapped{e.Error, ErrNoGit}
			}
			return errors.New(e.Error)
		}
		return fmt.Errorf("control socket %s: %s", c.path, resp.Status)
	}
	if out != nil {
		return json.Unmarshal(body, out)
	}
	return nil
}

// Status fetches the daemon's status (one job's when job is set).
func (c *Client) Status(ctx context.Context, job string) (Status, error) {
	var st Status
	err := c.do(ctx, http.MethodGet, "status", job, &st)
	return st, err
}

// Pause, Resume, Sync and Retry steer the daemon (job "" = every job).
func (c *Client) Pause(ctx context.Context, job string) error {
	return c.do(ctx, http.MethodPost, "pause", job, nil)
}

// Resume undoes Pause.
func (c *Client) Resume(ctx context.Context, job string) error {
	return c.do(ctx, http.MethodPost, "resume", job, nil)
}

// Sync starts a full scan now.
func (c *Client) Sync(ctx context.Context, job string) error {
	return c.do(ctx, http.MethodPost, "sync", job, nil)
}

// Retry makes the failed files pending again; it returns how many.
func (c *Client) Retry(ctx context.Context, job string) (int, error) {
	var out struct {
		Retried int `json:"retried"`
	}
	err := c.do(ctx, http.MethodPost, "retry", job, &out)
	return out.Retried, err
}

// GitSync asks the Git stage to commit and push what waits now (job "" =
// every job that has one); it returns the jobs asked.
func (c *Client) GitSync(ctx context.Context, job string) ([]string, error) {
	var out struct {
		Jobs []string `json:"jobs"`
	}
	err := c.do(ctx, http.MethodPost, "git-sync", job, &out)
	return out.Jobs, err
}

// wrapped is the server's message as it was, matching the sentinel the
// server wrapped.
type wrapped struct {
	msg string
	is  error
}

func (w wrapped) Error() string { return w.msg }
func (w wrapped) Unwrap() error { return w.is }
