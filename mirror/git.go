package mirror

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"ferry/gitstage"
	"ferry/registry"
	"ferry/transfer"
)

// openGit opens the job's Git stage, when it has one: ferry's own clone of
// the repository in the state directory, and the stage that commits what
// the registry says was shipped. The clone is made the first time, which
// needs the repository; an error then leaves the session without a stage.
func openGit(ctx context.Context, o Options, db *registry.DB, job *registry.Job) (*gitstage.Stage, transfer.Blobs, error) {
	if !o.Git.Enabled() || o.DryRun {
		return nil, nil, nil
	}
	dir := filepath.Join(o.StateDir, "git", o.Job+".git")
	repo, err := gitstage.Open(ctx, dir, o.Git)
	if err != nil {
		return nil, nil, fmt.Errorf("the Git stage of job %s: %w", o.Job, err)
	}
	key := db.ID() + "/" + o.Job
	return gitstage.NewStage(repo, gitStore{job}, o.Job, key, o.Now, o.Logf), keep{repo}, nil
}

// commitShipped commits and pushes what the pass shipped, before a --once
// run ends; the run's record keeps the last commit.
func (s *Session) commitShipped(ctx context.Context, sum *Summary, run *registry.Run) error {
	g, gerr := s.gitStage()
	if gerr != nil {
		sum.GitError = gerr.Error()
		return gerr
	}
	if g == nil || ctx.Err() != nil {
		return nil
	}
	made, err := g.Drain(ctx)
	sum.GitCommits = made
	if len(made) > 0 && run != nil {
		run.GitCommit = made[len(made)-1]
	}
	if err != nil {
		sum.GitError = err.Error()
		return err
	}
	return nil
}

// gitStage is the session's Git stage (nil without one) and why it could
// not be opened.
func (s *Session) gitStage() (*gitstage.Stage, error) {
	s.gitMu.Lock()
	defer s.gitMu.Unlock()
	return s.git, s.gitErr
}

func (s *Session) setGit(g *gitstage.Stage, err error) {
	s.gitMu.Lock()
	defer s.gitMu.Unlock()
	s.git, s.gitErr = g, err
}

// gitStore is the registry as the Git stage reads and records it.
type gitStore struct{ job *registry.Job }

func (g gitStore) Waiting(ctx context.Context) (int64, time.Time, error) {
	return g.job.GitWaiting(ctx)
}

func (g gitStore) OpenBatch(ctx context.Context, max int, now time.Time) (int64, []gitstage.Change, error) {
	b, cs, err := g.job.GitOpenBatch(ctx, max, now)
	if err != nil || len(cs) == 0 {
		return 0, nil, err
	}
	out := make([]gitstage.Change, len(cs))
	for i, c := range cs {
		out[i] = gitstage.Change{Path: c.Path, Blob: c.Blob, Exec: c.Exec}
	}
	return b.ID, out, nil
}

func (g gitStore) Committed(ctx context.Context, id int64, commit string, at time.Time) error {
	return g.job.GitCommitted(ctx, id, commit, at)
}

func (g gitStore) Pushed(ctx context.Context, commit string, at time.Time) error {
	return g.job.GitPushedThrough(ctx, commit, at)
}

func (g gitStore) Failed(ctx context.Context, id int64, msg string) error {
	return g.job.GitFailed(ctx, id, msg)
}

func (g gitStore) Unpushed(ctx context.Context) (int, error) {
	bs, err := g.job.GitUnpushed(ctx)
	return len(bs), err
}

// keep hands the workers the clone's blob writer.
type keep struct{ repo *gitstage.Repo }

func (k keep) NewBlob(size int64) (transfer.Blob, error) { return k.repo.NewBlob(size) }
