package gitstage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

var (
	// ErrFetch is a repository that could not be read: a wrong URL, a
	// missing repository, refused credentials, a network failure.
	ErrFetch = errors.New("cannot fetch from")
	// ErrOtherRepository is a clone in ferry's state directory that was
	// made for another repository than the one configured now.
	ErrOtherRepository = errors.New("the clone belongs to another repository")
)

// Repo is ferry's own bare clone of the configured repository, kept in
// its state directory. The branch ferry commits to is refs/heads/<branch>
// in the clone; refs/remotes/origin/<branch> is the branch as last fetched.
// See the package comment for which methods may run concurrently.
type Repo struct {
	dir      string // absolute path of the bare clone
	o        Options
	url      string // o.Repository, made absolute when it is a local path
	secret   string // a password in the URL, scrubbed from messages
	local    string // refs/heads/<branch>
	tracking string // refs/remotes/origin/<branch>

	// OnRebuild, when set, is told of each unpushed commit that a
	// rebuild onto a moved branch replaced (old) by another (new), or
	// folded into an existing commit because the branch already held its
	// changes, so that whoever recorded old can record new. It is called
	// on the owner's goroutine, after the branch moved.
	OnRebuild func(old, new string)

	objs *objects // the cat-file process a hold keeps, nil outside one

	retry         retryPolicy
	maintainLoose int // see Maintain
	looseLeft     int // loose objects the last packing left (no commit names them)
	test          testHooks
}

// testHooks let tests act at the moments that are otherwise races.
type testHooks struct {
	beforePush func(attempt int) // before each push attempt, from 0
	sleep      func(ctx context.Context, d time.Duration) error
}

// Open opens ferry's clone of o.Repository in dir, making it when dir does
// not exist yet (or is empty): a bare repository whose remote origin is
// o.Repository, with the branch fetched if the repository has it (an
// empty repository, or one without the branch, is fine: the first commit
// is then a root commit). Making the clone is the moment a wrong URL, a
// missing repository or refused credentials show, as an error wrapping
// ErrFetch that names the repository and quotes git. Re-opening does not
// touch the network; it fails with ErrOtherRepository when the clone was
// made for another repository.
//
// A relative local path is taken relative to the working directory.
func Open(ctx context.Context, dir string, o Options) (*Repo, error) {
	o = o.withDefaults()
	if o.Repository == "" {
		return nil, errors.New("gitstage: no repository configured")
	}
	if strings.HasPrefix(o.Repository, "-") {
		return nil, fmt.Errorf("gitstage: repository %q: a repository cannot start with '-'", o.Repository)
	}
	if o.PathPrefix != "" {
		if why := checkPath(o.PathPrefix); why != "" {
			return nil, fmt.Errorf("gitstage: path_prefix %q: %s", o.PathPrefix, why)
		}
	}
	if err := checkAuthor(o.Author); err != nil {
		return nil, err
	}
	if err := checkGitVersion(ctx); err != nil {
		return nil, err
	}
	if _, err := run(ctx, runOpts{}, "check-ref-format", "refs/heads/"+o.Branch); err != nil || strings.HasPrefix(o.Branch, "-") {
		return nil, fmt.Errorf("gitstage: branch %q is not a valid branch name", o.Branch)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	u := o.Repository
	if isLocalPath(u) {
		if u, err = filepath.Abs(u); err != nil {
			return nil, err
		}
	}
	r := &Repo{
		dir:      abs,
		o:        o,
		url:      u,
		secret:   secretOf(u),
		local:    "refs/heads/" + o.Branch,
		tracking: "refs/remotes/origin/" + o.Branch,
		retry:    defaultRetry,

		maintainLoose: 6700, // git's gc.auto
	}
	if _, err := os.Stat(filepath.Join(abs, "HEAD")); err == nil {
		return r, r.reopen(ctx)
	}
	return r, r.create(ctx)
}

// Dir is the clone's directory.
func (r *Repo) Dir() string { return r.dir }

// Options are the options the Repo was opened with, defaults filled in.
func (r *Repo) Options() Options { return r.o }

// git runs a git command in the clone.
func (r *Repo) git(ctx context.Context, o runOpts, args ...string) (string, error) {
	o.gitDir = r.dir
	out, err := run(ctx, o, args...)
	return strings.TrimSpace(string(out)), err
}

func (r *Repo) create(ctx context.Context) error {
	parent := filepath.Dir(r.dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	if ents, err := os.ReadDir(r.dir); err == nil && len(ents) > 0 {
		return fmt.Errorf("gitstage: %s exists and is not a git clone; move it away", r.dir)
	}
	// The clone is made aside and renamed into place once the first
	// fetch worked: a clone that exists is one that reached the
	// repository, and a failed attempt leaves nothing to trip on.
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(r.dir)+".new-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if _, err := run(ctx, runOpts{}, "init", "--quiet", "--bare", "--template=", "--object-format=sha1",
		"--initial-branch="+r.o.Branch, tmp); err != nil {
		return err
	}
	if err := os.Mkdir(filepath.Join(tmp, "hooks"), 0o755); err != nil {
		return err
	}
	final := r.dir
	r.dir = tmp
	defer func() { r.dir = final }()
	if _, err := r.git(ctx, runOpts{}, "remote", "add", "--no-tags", "-t", r.o.Branch, "--", "origin", r.url); err != nil {
		return err
	}
	if _, err := r.Fetch(ctx); err != nil {
		return err
	}
	if err := os.Remove(final); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.Rename(tmp, final)
}

func (r *Repo) reopen(ctx context.Context) error {
	have, err := r.git(ctx, runOpts{}, "config", "--get", "remote.origin.url")
	if err != nil {
		return fmt.Errorf("gitstage: %s: reading its remote: %w", r.dir, err)
	}
	if have != r.url {
		return fmt.Errorf("gitstage: %w: %s is a clone of %s, but the job's repository is now %s (move the clone away to start from the new one; commits it did not push stay in it)",
			ErrOtherRepository, r.dir, redact(have), redact(r.url))
	}
	// The branch may have changed since the clone was made.
	if _, err := r.git(ctx, runOpts{}, "config", "--replace-all", "remote.origin.fetch", "+"+r.local+":"+r.tracking); err != nil {
		return err
	}
	if _, err := r.git(ctx, runOpts{}, "symbolic-ref", "HEAD", r.local); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(r.dir, "hooks"), 0o755); err != nil {
		return err
	}
	r.removeStale(time.Now().Add(-time.Hour))
	return nil
}

// removeStale removes what a killed ferry left: temporary objects older
// than before (younger ones may belong to a writer that is
// still going, should one run).
func (r *Repo) removeStale(before time.Time) {
	for _, pat := range []string{
		filepath.Join(r.dir, "objects", blobTempPrefix+"*"),
	} {
		names, _ := filepath.Glob(pat)
		for _, n := range names {
			if fi, err := os.Lstat(n); err == nil && fi.ModTime().Before(before) {
				os.Remove(n)
			}
		}
	}
}

// checkAuthor refuses what git would silently strip from an identity.
func checkAuthor(a Author) error {
	for _, s := range []string{a.Name, a.Email} {
		if strings.ContainsAny(s, "<>\n\x00") {
			return fmt.Errorf("gitstage: author %q <%s>: a name or an email cannot hold '<', '>' or a line break", a.Name, a.Email)
		}
	}
	return nil
}

// scrub removes a URL's password from what git printed.
func (r *Repo) scrub(s string) string {
	if r.secret == "" {
		return s
	}
	return strings.ReplaceAll(s, r.secret, "xxxxx")
}

// Maintain packs the clone's loose objects once there are many, in the
// foreground. Automatic gc is off for every other command because it
// prunes unreachable loose objects after two weeks, and a blob shipped but
// not yet committed is one of those; here nothing unreachable is pruned.
// Call it from the owner before a push (the push then sends packed data
// as it is, instead of compressing every loose object itself) and after
// a commit with push off: it costs one count-objects until the clone holds
// maintainLoose more loose objects than the last packing left.
//
// The packing of loose objects looks for no deltas: on a first mirror of
// ten thousand files that search is most of the time, and finds little
// between different files. Once the clone holds many packs, they are
// made one, with deltas, and what no commit names stays loose.
func (r *Repo) Maintain(ctx context.Context) error {
	out, err := r.git(ctx, runOpts{}, "count-objects", "-v")
	if err != nil {
		return err
	}
	var loose, packs int
	for _, line := range strings.Split(out, "\n") {
		k, v, _ := strings.Cut(line, ": ")
		switch k {
		case "count":
			loose, _ = strconv.Atoi(v)
		case "packs":
			packs, _ = strconv.Atoi(v)
		}
	}
	switch {
	case packs >= maxPacks:
		_, err = r.git(ctx, runOpts{}, "repack", "-A", "-d", "-q")
	case loose >= r.looseLeft+r.maintainLoose:
		_, err = r.git(ctx, runOpts{config: []string{"pack.window=0"}}, "repack", "-d", "-q")
	default:
		return nil
	}
	if err != nil {
		return err
	}
	// What is still loose is what no commit names: blobs waiting for
	// their batch. They do not count towards the next packing.
	if out, err = r.git(ctx, runOpts{}, "count-objects"); err == nil {
		r.looseLeft, _ = strconv.Atoi(strings.Fields(out + " 0")[0])
	}
	return err
}

// maxPacks is how many packs the clone holds before they are made one.
const maxPacks = 30
