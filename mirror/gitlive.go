package mirror

import (
	"context"
	"time"

	"ferry/gitstage"
	"ferry/transfer"
)

// LiveOptions are the daemon's settings of a live session.
type LiveOptions struct {
	// GitRetry is the wait before the first new attempt at opening a Git
	// stage the session could not open; it doubles, jittered, up to
	// GitRetryMax. 0 = 15 s and 5 min.
	GitRetry, GitRetryMax time.Duration
	// GitOpened is called once such a stage opened: what the workers
	// shipped without it has no kept bytes, and a full scan sends those
	// files to the workers again, which keep them (planner KeepBytes).
	GitOpened func()
}

func (o *LiveOptions) defaults() {
	if o.GitRetry <= 0 {
		o.GitRetry = 15 * time.Second
	}
	if o.GitRetryMax <= 0 {
		o.GitRetryMax = 5 * time.Minute
	}
	o.GitRetryMax = max(o.GitRetryMax, o.GitRetry)
}

// openGitLate tries again to open the Git stage the session could not
// open (its repository unreachable when the clone was to be made), with
// capped back-off, until it opens or ctx ends; it returns the stage, nil
// when there is none to open. Meanwhile GitError says why the last attempt
// failed. Once the stage opens, the workers keep the bytes of what they
// ship from then on.
func (l *Live) openGitLate(ctx context.Context) *gitstage.Stage {
	s := l.s
	if _, err := s.gitStage(); err == nil {
		return nil
	}
	for attempt := 1; ; attempt++ {
		if !sleepCtx(ctx, transfer.Backoff(attempt, l.o.GitRetry, l.o.GitRetryMax)) {
			return nil
		}
		g, blobs, err := openGit(ctx, s.o, s.db, s.r.job)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.setGit(nil, err)
			s.o.Logf("%v; mirroring without it, trying again", err)
			continue
		}
		s.r.ship.SetKeep(blobs)
		s.setGit(g, nil)
		return g
	}
}

// rescanUnkept waits until no upload that began before the stage opened
// (keeping no bytes) is under way, then calls GitOpened: the full scan it
// asks for sends every file shipped without its bytes kept to a worker
// again, which keeps them (planner KeepBytes), and none of them can be
// recorded unkept after the scan read it.
func (l *Live) rescanUnkept(ctx context.Context) {
	for l.s.r.ship.Unkept() > 0 {
		if !sleepCtx(ctx, 20*time.Millisecond) {
			return
		}
	}
	if l.o.GitOpened != nil {
		l.o.GitOpened()
	}
}

// sleepCtx waits d, or until ctx ends (false).
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// DrainGit commits and pushes what waits in the job's Git stage, and
// returns the commits made (none without a stage). It is the daemon's
// last act on a stop, once Serve returned: the stage's own loop ended
// with Serve, and what the workers shipped last is committed now rather
// than at the next start. The workers' last records are flushed first:
// until then the registry does not have them as shipped.
func (l *Live) DrainGit(ctx context.Context) ([]string, error) {
	g := l.Git()
	if g == nil {
		return nil, nil
	}
	if err := l.s.r.w.Flush(ctx); err != nil {
		return nil, err
	}
	return g.Drain(ctx)
}
