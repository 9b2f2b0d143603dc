package gitstage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

var (
	// ErrPush is a push that failed: refused by the repository (a hook,
	// a protected branch, a branch checked out there), the network,
	// credentials. ErrRejected errors wrap it too.
	ErrPush = errors.New("cannot push to")
	// ErrRejected is a push refused because the branch moved: it is not
	// a fast-forward. Publish and PushPending rebuild and push again.
	ErrRejected = errors.New("push rejected, the branch moved")
	// ErrRefMoved is an Advance whose ref is no longer where the caller
	// saw it.
	ErrRefMoved = errors.New("the branch moved in the clone")
)

// retryPolicy is how often, and how patiently, a transient failure of a
// fetch or a push is retried: attempts in all, with an exponential,
// capped, jittered delay between them.
type retryPolicy struct {
	attempts  int
	base, max time.Duration
	rebuilds  int // rebuilds after rejections, per Publish
}

var defaultRetry = retryPolicy{attempts: 4, base: time.Second, max: 30 * time.Second, rebuilds: 8}

// delay is the wait before retry n (from 0): between half and all of
// base·2ⁿ, at most max, so that clones that failed together do not retry
// together.
func (p retryPolicy) delay(n int) time.Duration {
	d := p.max
	if n < 30 && p.base<<n > 0 && p.base<<n < p.max {
		d = p.base << n
	}
	return d/2 + rand.N(d/2+1)
}

func (r *Repo) sleep(ctx context.Context, d time.Duration) error {
	if r.test.sleep != nil {
		return r.test.sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// transient marks a failure that a later attempt may not meet.
type transient struct{ error }

func (t transient) Unwrap() error { return t.error }

func isTransient(err error) bool {
	var t transient
	return errors.As(err, &t)
}

// permanent are what git says when trying again cannot help: the
// repository is not there, the credentials are refused, the host is not
// known. Any other transport failure is taken as transient.
var permanent = []string{
	"does not appear to be a git repository",
	"not found",
	"permission denied",
	"authentication failed",
	"host key verification failed",
	"could not read username",
	"could not read password",
	"terminal prompts disabled",
	"access denied",
	"returned error: 4",
	"is not supported",
	"unable to find remote helper",
	"mismatched algorithms",
	"object format",
	"not a valid",
}

func isPermanent(stderr string) bool {
	s := strings.ToLower(stderr)
	for _, p := range permanent {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}

// Tip is the commit the clone's branch holds, "" before the first one.
func (r *Repo) Tip(ctx context.Context) (string, error) {
	return r.resolve(ctx, r.local)
}

// trackingTip is the branch as last fetched, "" if it was not there.
func (r *Repo) trackingTip(ctx context.Context) (string, error) {
	return r.resolve(ctx, r.tracking)
}

func (r *Repo) resolve(ctx context.Context, ref string) (string, error) {
	if r.objs != nil {
		oid, _, err := r.objs.commit(ref)
		return oid, err
	}
	out, err := r.git(ctx, runOpts{}, "rev-parse", "--verify", "--quiet", ref+"^{commit}")
	if err != nil {
		var ge *Error
		if errors.As(err, &ge) && exitCode(ge.Err) == 1 && ge.Stderr == "" {
			return "", nil
		}
		return "", err
	}
	return out, nil
}

// Advance moves the clone's branch from old ("" = it does not exist yet)
// to commit, and refuses with ErrRefMoved if it is not at old.
func (r *Repo) Advance(ctx context.Context, commit, old string) error {
	if !isOID(commit) {
		return fmt.Errorf("gitstage: advance to %q: not a commit id", commit)
	}
	was := old
	if was == "" {
		was = zeroOID
	}
	if _, err := r.git(ctx, runOpts{}, "update-ref", r.local, commit, was); err != nil {
		if now, terr := r.Tip(ctx); terr == nil && now != old {
			return fmt.Errorf("gitstage: %w: %s is at %q, not at %q", ErrRefMoved, r.local, now, old)
		}
		return err
	}
	return nil
}

// Fetch fetches the branch from the repository into the clone and
// returns its tip, "" if the repository does not have the branch (or
// anything). A failure wraps ErrFetch and names the repository.
func (r *Repo) Fetch(ctx context.Context) (string, error) {
	_, err := r.git(ctx, runOpts{}, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head",
		"origin", "+"+r.local+":"+r.tracking)
	if err != nil {
		var ge *Error
		if !errors.As(err, &ge) {
			return "", err
		}
		if strings.Contains(ge.Stderr, "couldn't find remote ref") {
			// The branch is not there (or was deleted): forget it.
			if _, err := r.git(ctx, runOpts{}, "update-ref", "-d", r.tracking); err != nil {
				return "", err
			}
			return "", nil
		}
		err = fmt.Errorf("gitstage: %w %s: %s", ErrFetch, redact(r.url), r.scrub(ge.Stderr))
		if !isPermanent(ge.Stderr) {
			err = transient{err}
		}
		return "", err
	}
	return r.trackingTip(ctx)
}

// Push pushes commit to the repository's branch, never forcing. A push
// refused because the branch moved wraps ErrRejected (and ErrPush); any
// other failure wraps ErrPush, with what git said.
func (r *Repo) Push(ctx context.Context, commit string) error {
	if !isOID(commit) {
		return fmt.Errorf("gitstage: push %q: not a commit id", commit)
	}
	out, err := r.git(ctx, runOpts{}, "push", "--porcelain", "--no-verify", "origin", commit+":"+r.local)
	status, summary := "", ""
	for _, line := range strings.Split(out, "\n") {
		f := strings.SplitN(line, "\t", 3)
		if len(f) == 3 && strings.HasSuffix(f[1], ":"+r.local) {
			status, summary = f[0], f[2]
		}
	}
	if err == nil && status != "!" {
		// The tracking ref follows what the repository now holds.
		_, err := r.git(ctx, runOpts{}, "update-ref", r.tracking, commit)
		return err
	}
	var ge *Error
	if err != nil && !errors.As(err, &ge) {
		return err // cancelled, or git could not run
	}
	said := ""
	if ge != nil {
		said = r.scrub(ge.Stderr)
	}
	where := redact(r.url)
	switch {
	case status == "!" && strings.HasPrefix(summary, "[rejected]"):
		return fmt.Errorf("gitstage: %w: %w %s: %s", ErrRejected, ErrPush, where, summary)
	case status == "!" && strings.HasPrefix(summary, "[remote failure]"):
		return transient{fmt.Errorf("gitstage: %w %s: %s: %s", ErrPush, where, summary, said)}
	case status == "!":
		// Refused on the other side: a hook, a protected branch, a
		// branch checked out there. Trying again cannot help.
		return fmt.Errorf("gitstage: %w %s: %s: %s", ErrPush, where, summary, said)
	}
	err = fmt.Errorf("gitstage: %w %s: %s", ErrPush, where, said)
	if !isPermanent(said) {
		err = transient{err}
	}
	return err
}

// fetchRetry is Fetch, with transient failures retried.
func (r *Repo) fetchRetry(ctx context.Context) (string, error) {
	for n := 0; ; n++ {
		tip, err := r.Fetch(ctx)
		if err == nil || !isTransient(err) || n+1 >= r.retry.attempts {
			return tip, err
		}
		if err := r.sleep(ctx, r.retry.delay(n)); err != nil {
			return "", err
		}
	}
}

// Publish commits a batch on the branch and, with push, pushes it: the
// parent is the branch as the repository has it now (fetched first) or
// the clone's own tip if that is newer (commits not pushed yet); a push
// rejected because the branch moved meanwhile is fetched and rebuilt on
// the new tip (the batch's paths win, every other path keeps the
// repository's content) and pushed again; transient failures are retried
// with back-off. Never a force push.
//
// A non-empty commit is the batch's commit, on the clone's branch; with a
// non-nil error it is committed but not pushed (PushPending pushes it
// later). A batch that changes nothing returns ErrNothingToCommit (after
// pushing what was pending, with push).
func (r *Repo) Publish(ctx context.Context, changes []Change, msg string, when time.Time, push bool) (string, error) {
	var fetchErr error
	remote, err := r.trackingTip(ctx)
	if err != nil {
		return "", err
	}
	if push {
		// Not being able to fetch does not keep the batch from its
		// commit; it is pushed later.
		if tip, err := r.fetchRetry(ctx); err == nil {
			remote = tip
		} else if ctx.Err() != nil {
			return "", err
		} else {
			fetchErr, push = err, false
		}
	}
	parent, err := r.rebase(ctx, remote)
	if err != nil {
		return "", err
	}
	commit, err := r.Commit(ctx, parent, changes, msg, when)
	if errors.Is(err, ErrNothingToCommit) {
		if push && parent != remote {
			if _, perr := r.pushLoop(ctx, parent); perr != nil {
				return "", perr
			}
		}
		return "", err
	}
	if err != nil {
		return "", err
	}
	if err := r.Advance(ctx, commit, parent); err != nil {
		return "", err
	}
	if !push {
		return commit, fetchErr
	}
	return r.pushLoop(ctx, commit)
}

// PushPending pushes the commits the clone holds and the repository does
// not (a crash or a failure between a commit and its push, or a stage
// with push off), rebuilt on the repository's branch if it moved. It
// returns the tip pushed, "" when there was nothing to push.
func (r *Repo) PushPending(ctx context.Context) (string, error) {
	remote, err := r.fetchRetry(ctx)
	if err != nil {
		return "", err
	}
	tip, err := r.rebase(ctx, remote)
	if err != nil || tip == "" || tip == remote {
		return "", err
	}
	return r.pushLoop(ctx, tip)
}

// pushLoop pushes tip, rebuilding it on the repository's branch when the
// push is rejected, and retrying transient failures. It returns the tip
// that was pushed, or the clone's tip and the error that stopped it.
func (r *Repo) pushLoop(ctx context.Context, tip string) (string, error) {
	rebuilds, failures := 0, 0
	for attempt := 0; ; attempt++ {
		if r.test.beforePush != nil {
			r.test.beforePush(attempt)
		}
		err := r.Push(ctx, tip)
		switch {
		case err == nil:
			return tip, nil
		case errors.Is(err, ErrRejected) && rebuilds < r.retry.rebuilds:
			rebuilds++
			remote, ferr := r.fetchRetry(ctx)
			if ferr != nil {
				return tip, ferr
			}
			if tip, err = r.rebase(ctx, remote); err != nil {
				return tip, err
			}
			if tip == remote {
				return tip, nil // the repository already had it all
			}
		case isTransient(err) && failures+1 < r.retry.attempts:
			if serr := r.sleep(ctx, r.retry.delay(failures)); serr != nil {
				return tip, err
			}
			failures++
		default:
			return tip, err
		}
	}
}

// rebase brings the clone's branch onto the repository's tip remote, and
// returns where it is then: remote itself when the clone has nothing of
// its own, the clone's tip when it is ahead, and otherwise the clone's
// own commits replayed on remote.
func (r *Repo) rebase(ctx context.Context, remote string) (string, error) {
	local, err := r.Tip(ctx)
	if err != nil {
		return "", err
	}
	switch {
	case remote == "" || local == remote:
		return local, nil
	case local == "":
		return remote, r.Advance(ctx, remote, "")
	}
	if ok, err := r.isAncestor(ctx, local, remote); err != nil {
		return "", err
	} else if ok {
		return remote, r.Advance(ctx, remote, local)
	}
	if ok, err := r.isAncestor(ctx, remote, local); err != nil || ok {
		return local, err
	}
	return r.replay(ctx, remote, local)
}

func (r *Repo) isAncestor(ctx context.Context, a, b string) (bool, error) {
	_, err := r.git(ctx, runOpts{}, "merge-base", "--is-ancestor", a, b)
	var ge *Error
	if errors.As(err, &ge) && exitCode(ge.Err) == 1 {
		return false, nil
	}
	return err == nil, err
}

// replay rebuilds the clone's commits that onto does not have, oldest
// first, each as its own changes (its diff to its parent) on top of the
// previous one, starting at onto, keeping messages, authors and dates;
// then moves the branch from local to the last one. A commit whose
// changes onto already holds folds away.
func (r *Repo) replay(ctx context.Context, onto, local string) (string, error) {
	out, err := r.git(ctx, runOpts{}, "rev-list", "--reverse", "--topo-order", "--no-merges", local, "--not", onto)
	if err != nil {
		return "", err
	}
	type rebuilt struct{ old, new string }
	var done []rebuilt
	parent := onto
	for _, c := range strings.Fields(out) {
		adds, dels, err := r.changesOf(ctx, c)
		if err != nil {
			return "", err
		}
		msg, author, committer, err := r.readCommit(ctx, c)
		if err != nil {
			return "", err
		}
		n, err := r.writeCommit(ctx, parent, adds, dels, msg, author, committer)
		switch {
		case errors.Is(err, ErrNothingToCommit):
		case err != nil:
			return "", fmt.Errorf("gitstage: rebuilding %s on %s: %w", c, onto, err)
		default:
			parent = n
		}
		done = append(done, rebuilt{c, parent})
	}
	if err := r.Advance(ctx, parent, local); err != nil {
		return "", err
	}
	if r.OnRebuild != nil {
		for _, d := range done {
			r.OnRebuild(d.old, d.new)
		}
	}
	return parent, nil
}

// changesOf is what commit c changed against its first parent (all of
// its tree for a root commit).
func (r *Repo) changesOf(ctx context.Context, c string) (adds []entry, dels []string, err error) {
	out, err := run(ctx, runOpts{gitDir: r.dir}, "diff-tree", "-r", "-z", "--no-renames", "--no-commit-id", "--root", c)
	if err != nil {
		return nil, nil, err
	}
	f := bytes.Split(bytes.TrimSuffix(out, []byte{0}), []byte{0})
	for i := 0; i+1 < len(f); i += 2 {
		// ":<old mode> <new mode> <old oid> <new oid> <status>", path
		meta := strings.Fields(strings.TrimPrefix(string(f[i]), ":"))
		if len(meta) != 5 {
			return nil, nil, fmt.Errorf("gitstage: diff-tree %s: unexpected %q", c, f[i])
		}
		path := string(f[i+1])
		if meta[4] == "D" {
			dels = append(dels, path)
		} else {
			adds = append(adds, entry{meta[1], meta[3], path})
		}
	}
	return adds, dels, nil
}

// readCommit is a commit's message, author and committer, as written.
func (r *Repo) readCommit(ctx context.Context, c string) (msg string, author, committer ident, err error) {
	o, done, err := r.reader(ctx)
	if err != nil {
		return "", author, committer, err
	}
	defer done()
	oid, info, err := o.commit(c)
	if err == nil && oid == "" {
		err = fmt.Errorf("gitstage: commit %s is not in the clone", c)
	}
	return info.msg, info.author, info.committer, err
}

// parseIdent splits "Name <email> 1700000000 +0100".
func parseIdent(s string) ident {
	name, rest, _ := strings.Cut(s, " <")
	if !strings.Contains(s, " <") {
		name, rest, _ = strings.Cut(s, "<")
	}
	email, date, _ := strings.Cut(rest, "> ")
	return ident{name, email, "@" + date}
}
