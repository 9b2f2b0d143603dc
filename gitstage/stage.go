package gitstage

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"
	"time"
)

// Store is the registry's side of the stage: what waits, the batches and
// what became of them. The registry satisfies it through the session; a
// batch is the same rows until it is committed, so a crash between its
// claim and its commit commits it once, later.
type Store interface {
	// Waiting counts the paths shipped and not yet committed, and says
	// when the oldest of them shipped.
	Waiting(ctx context.Context) (files int64, oldest time.Time, err error)
	// OpenBatch returns the batch begun and not committed, if any, or
	// claims up to max waiting paths, oldest first, into a new one; none
	// (0, nil) when nothing waits.
	OpenBatch(ctx context.Context, max int, now time.Time) (id int64, changes []Change, err error)
	Committed(ctx context.Context, id int64, commit string, at time.Time) error
	// Pushed records that every batch committed up to commit is pushed.
	Pushed(ctx context.Context, commit string, at time.Time) error
	Failed(ctx context.Context, id int64, msg string) error
	// Unpushed counts the batches committed and not pushed.
	Unpushed(ctx context.Context) (int, error)
}

// NoCommit is what a batch records as its commit when its changes changed
// nothing and the branch has no commit yet (deletions of paths it never
// had): never an empty commit. A batch that changed nothing on a branch
// with commits records the tip, which holds its changes already.
const NoCommit = "-"

// trailer names the batch in its commit's message, so that a commit made
// just before a crash is recognised at the next start instead of being
// made twice.
const trailer = "Ferry-Batch: "

// Stage commits and pushes one job's shipped paths; one goroutine runs it.
type Stage struct {
	repo  *Repo
	store Store
	o     Options
	job   string
	key   string // names this job's batches in commit messages: unique per registry and job
	now   func() time.Time
	logf  func(string, ...any)

	kick       chan struct{}
	mu         sync.Mutex
	st         Status
	failures   int       // pushes failed in a row, by a failure that may pass
	pushFailed bool      // st.Err is a push's
	retryAt    time.Time // no push before, but by Drain
}

// Status is what `ferry status` shows of the stage.
type Status struct {
	Waiting      int64
	LastCommit   string
	LastCommitAt time.Time
	LastPushAt   time.Time
	Unpushed     int
	Commits      int64  // commits made by this stage since it started
	Pushes       int64  // pushes that succeeded
	Err          string // the last failure: a commit's until a commit works, a push's until a push works
	// Stopped says a push or its fetch failed in a way that trying again
	// cannot fix (refused credentials, an unknown host key, a missing
	// repository, a hook, a protected branch): the stage commits nothing
	// more and waits for Sync. A failure that may pass (the network, a
	// server that does not answer) is tried again after a back-off, while
	// batches go on being committed in the clone.
	Stopped bool
}

// NewStage returns the stage of job on repo. key names the job's batches
// in commit messages (the registry's id and the job's name).
func NewStage(repo *Repo, store Store, job, key string, now func() time.Time, logf func(string, ...any)) *Stage {
	if now == nil {
		now = time.Now
	}
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return &Stage{repo: repo, store: store, o: repo.Options(), job: job, key: key, now: now, logf: logf, kick: make(chan struct{}, 1)}
}

// Status returns what the stage last did.
func (s *Stage) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st
}

// Sync asks a running stage to commit and push what waits now (the
// button): a stopped stage tries again, and with push off this is how the
// clone's commits are pushed.
func (s *Stage) Sync() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Run commits a batch whenever one is due (BatchFiles paths wait, or the
// oldest waited BatchDelay) and pushes, until ctx ends; Sync makes it
// commit everything now. Failures are in Status and the log: the mirror
// goes on without the stage.
func (s *Stage) Run(ctx context.Context) error {
	poll := min(s.o.BatchDelay/4, 5*time.Second)
	if poll <= 0 {
		poll = time.Second
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.kick:
			_, err := s.Drain(ctx)
			if err == nil && !s.o.Push {
				// With push off, the button is how commits leave the clone.
				err = s.push(ctx)
			}
			if err != nil && ctx.Err() == nil {
				s.logf("git: %v", err)
			}
		case <-t.C:
			var err error
			if s.Status().Stopped {
				_, _, err = s.waiting(ctx) // what waits still shows
			} else {
				_, err = s.step(ctx, false, true)
			}
			if err != nil && ctx.Err() == nil {
				s.logf("git: %v", err)
			}
		}
		t.Reset(poll)
	}
}

// Drain commits everything waiting, in batches of BatchFiles, then pushes
// them at once (with push on): the end of a `--once` run, and the button.
// One push for all the batches, not one each: a push costs a fetch and a
// round trip to the repository, a commit a few local git commands. It
// returns the commits made.
func (s *Stage) Drain(ctx context.Context) ([]string, error) {
	// Asked for now: a stopped stage, or one waiting out a back-off,
	// tries again.
	s.mu.Lock()
	s.st.Stopped, s.retryAt = false, time.Time{}
	s.mu.Unlock()
	release, err := s.repo.hold(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	var made []string
	for {
		commit, err := s.step(ctx, true, false)
		if commit != "" && commit != NoCommit {
			made = append(made, commit)
		}
		if err != nil {
			return made, err
		}
		if commit == "" {
			if _, _, err := s.waiting(ctx); err != nil {
				return made, err
			}
			return made, s.pushPending(ctx, true)
		}
	}
}

// step commits one batch if one is due (any waiting path, with force);
// with push, it first pushes what an earlier step left unpushed, and then
// the batch. It returns the batch's commit, "" when nothing was due.
func (s *Stage) step(ctx context.Context, force, push bool) (string, error) {
	var perr error
	if push {
		// A repository that cannot be reached keeps nothing from its
		// commit: batches go on being committed in the clone, and are
		// pushed once it answers.
		perr = s.pushPending(ctx, false)
	}
	now := s.now()
	if !force {
		n, oldest, err := s.waiting(ctx)
		if err != nil || n == 0 || (n < int64(s.o.BatchFiles) && now.Sub(oldest) < s.o.BatchDelay) {
			return "", errors.Join(perr, err)
		}
	}
	id, changes, err := s.store.OpenBatch(ctx, s.o.BatchFiles, now)
	if err != nil || len(changes) == 0 {
		return "", errors.Join(perr, err)
	}
	release, err := s.repo.hold(ctx)
	if err != nil {
		return "", err
	}
	defer release()
	commit, made, err := s.commit(ctx, id, changes, now)
	if err != nil {
		s.fail(ctx, id, err)
		return "", err
	}
	if err := s.store.Committed(ctx, id, commit, now); err != nil {
		return "", err
	}
	s.mu.Lock()
	if made {
		s.st.LastCommit, s.st.LastCommitAt = commit, now
		s.st.Commits++
		s.st.Unpushed++
	}
	// Until the next count: what this batch took no longer waits.
	s.st.Waiting = max(0, s.st.Waiting-int64(len(changes)))
	if !s.pushFailed {
		s.st.Err = "" // a push's failure stays until a push works
	}
	s.mu.Unlock()
	if made {
		s.logf("git: committed %d paths as %s", len(changes), short(commit))
		if !s.o.Push {
			s.maintain(ctx) // with push on, before the push
		}
	} else {
		commit = NoCommit // nothing new: Drain lists what it made
	}
	if !push || perr != nil {
		return commit, perr
	}
	return commit, s.pushPending(ctx, false)
}

// waiting counts the paths that wait for a commit, for the status too.
func (s *Stage) waiting(ctx context.Context) (int64, time.Time, error) {
	n, oldest, err := s.store.Waiting(ctx)
	if err != nil {
		return 0, oldest, fmt.Errorf("git stage of %s: %w", s.job, err)
	}
	s.mu.Lock()
	s.st.Waiting = n
	s.mu.Unlock()
	return n, oldest, nil
}

// commit makes the batch's commit on the clone's branch, or finds the one
// a run made before it died.
func (s *Stage) commit(ctx context.Context, id int64, changes []Change, now time.Time) (commit string, made bool, err error) {
	mark := fmt.Sprintf("%s%s#%d", trailer, s.key, id)
	tip, err := s.repo.Tip(ctx)
	if err != nil {
		return "", false, err
	}
	if tip != "" {
		msg, _, _, err := s.repo.readCommit(ctx, tip)
		if err != nil {
			return "", false, err
		}
		if hasLine(msg, mark) {
			return tip, true, nil // made before a crash; recorded now
		}
	}
	msg, err := s.message(ctx, tip, changes)
	if err != nil {
		return "", false, err
	}
	commit, err = s.repo.Publish(ctx, changes, strings.TrimRight(msg, "\n")+"\n\n"+mark+"\n", now, false)
	if errors.Is(err, ErrNothingToCommit) {
		// The tree already holds these changes: the batch is in the
		// commit at the tip, or in none when there is none yet.
		if tip != "" {
			return tip, false, nil
		}
		return NoCommit, false, nil
	}
	return commit, err == nil, err
}

// message renders the commit message of a batch whose parent is tip.
func (s *Stage) message(ctx context.Context, tip string, changes []Change) (string, error) {
	d := MessageData{Job: s.job, Files: len(changes)}
	var kept []string
	for _, c := range changes {
		if c.Blob != "" {
			kept = append(kept, path.Join(s.o.PathPrefix, c.Path))
		}
	}
	existed := map[string]bool{}
	if tip != "" && len(kept) > 0 {
		o, done, err := s.repo.reader(ctx)
		if err != nil {
			return "", err
		}
		defer done()
		_, c, err := o.commit(tip)
		if err != nil {
			return "", err
		}
		for _, p := range kept {
			e, ok, err := o.lookup(c.tree, p)
			if err != nil {
				return "", err
			}
			existed[p] = ok && !e.isTree()
		}
	}
	const listed = 20
	for _, c := range changes {
		op := "D"
		switch {
		case c.Blob == "":
			d.Deleted++
		case existed[path.Join(s.o.PathPrefix, c.Path)]:
			op = "M"
			d.Changed++
		default:
			op = "A"
			d.Added++
		}
		if len(d.List) < listed {
			d.List = append(d.List, op+" "+c.Path)
		}
	}
	d.More = len(changes) - len(d.List)
	return Render(s.o.Message, d)
}

// pushPending pushes what the clone holds and the repository does not,
// with push on and the stage not stopped; after a failure that may pass,
// not before its back-off has run out, unless now.
func (s *Stage) pushPending(ctx context.Context, now bool) error {
	st := s.Status()
	if !s.o.Push || st.Stopped {
		return nil
	}
	s.mu.Lock()
	wait := !now && time.Now().Before(s.retryAt)
	s.mu.Unlock()
	if wait {
		return nil
	}
	return s.push(ctx)
}

// pushRetry spaces the pushes of a stage whose repository does not answer
// (after the retries of one push): a daemon does not knock every few
// seconds, nor log each time, through an outage of hours.
var pushRetry = retryPolicy{base: 30 * time.Second, max: 10 * time.Minute}

// push pushes what the clone holds and the repository does not.
func (s *Stage) push(ctx context.Context) error {
	n, err := s.store.Unpushed(ctx)
	// Before the push: a push that fails leaves them unpushed, and the
	// status says how many.
	s.setUnpushed(n)
	if err != nil || n == 0 {
		return err
	}
	s.maintain(ctx) // first: the push then sends packed data as it is
	tip, err := s.repo.PushPending(ctx)
	if err != nil {
		s.mu.Lock()
		s.st.Err, s.pushFailed = err.Error(), true
		if isTransient(err) || errors.Is(err, ErrRejected) {
			s.retryAt = time.Now().Add(pushRetry.delay(s.failures))
			s.failures++
		} else {
			// Refused credentials, an unknown host key, a missing
			// repository, a hook or a protected branch: trying again
			// cannot help until someone acts.
			s.st.Stopped = true
		}
		s.mu.Unlock()
		return fmt.Errorf("git stage of %s: %w", s.job, err)
	}
	if tip == "" {
		// Nothing ahead of the repository: what was committed is there
		// already (pushed before a crash, or a batch that changed nothing).
		if tip, err = s.repo.Tip(ctx); err != nil {
			return err
		}
	}
	at := s.now()
	if err := s.store.Pushed(ctx, tip, at); err != nil {
		return err
	}
	s.mu.Lock()
	s.st.LastPushAt, s.st.Err, s.st.Unpushed, s.pushFailed = at, "", 0, false
	s.failures, s.retryAt = 0, time.Time{}
	s.st.Pushes++
	s.mu.Unlock()
	s.logf("git: pushed %s to %s", short(tip), s.o.Branch)
	return nil
}

// maintain packs the clone's loose objects once there are many (one
// count-objects until then): automatic gc is off in the clone.
func (s *Stage) maintain(ctx context.Context) {
	if err := s.repo.Maintain(ctx); err != nil && ctx.Err() == nil {
		s.logf("git: pack the clone %s: %v", s.repo.Dir(), err)
	}
}

func (s *Stage) fail(ctx context.Context, id int64, err error) {
	s.mu.Lock()
	s.st.Err, s.pushFailed = err.Error(), false
	s.mu.Unlock()
	if ferr := s.store.Failed(context.WithoutCancel(ctx), id, err.Error()); ferr != nil {
		s.logf("git: record the failure of batch %d: %v", id, ferr)
	}
}

func (s *Stage) setUnpushed(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.Unpushed = n
}

func hasLine(msg, line string) bool {
	for _, l := range strings.Split(msg, "\n") {
		if strings.TrimSpace(l) == line {
			return true
		}
	}
	return false
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}
