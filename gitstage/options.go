// Package gitstage owns the optional Git stage after the workers: it keeps
// exactly the bytes each upload shipped (as Git blobs written from the same
// read), commits them in batches on a branch of the configured repository,
// with deletions, in the order the paths first went out of sync, and pushes
// without ever forcing.
//
// # Why the git command and not go-git
//
// The stage drives the git command (update-ref with the old value, fetch,
// push without force, cat-file to read objects and refs) rather than
// go-git, although go-git is already linked in for gitignore matching:
//
//   - Credentials. Users reach their repositories with an SSH agent,
//     ~/.ssh/known_hosts and ~/.ssh/config, credential helpers for HTTPS,
//     url.<base>.insteadOf rewrites; the git command honours all of them
//     because they are the user's own configuration. go-git has no
//     credential helpers and its own SSH client, which would make ferry a
//     second place to configure access.
//   - Correctness where it matters most. update-ref REF NEW OLD refuses a
//     ref that moved; push without --force is refused by the server when
//     the branch moved, and that refusal is what triggers a rebuild. go-git
//     has open bugs in push and fetch on large repositories, and is
//     documented as not safe for concurrent use.
//   - Testability. The tests run the same binary the user runs, against
//     real bare repositories and git daemon, and check the result with git
//     fsck --strict.
//
// What is written for each batch is written in process, as loose objects:
// the blobs (blob.go), from the same bytes the upload reads, and the trees
// on the changed paths and the commit (tree.go, commit.go), read through
// one cat-file --batch process (objects.go). Git's plumbing for the same
// (read-tree of the whole tree into a temporary index, update-index,
// write-tree, commit-tree) took ten processes and 80 to 160 ms a batch on
// a tree of ten thousand files; a test checks every tree against the one
// git's index writes for the same changes.
//
// Before a push, the clone's loose objects are packed without a delta
// search (Repo.Maintain), so that the push sends packed data as it is
// rather than compressing each loose object again.
//
// # Isolation
//
// ferry keeps its own bare clone in its state directory; the user's
// working copies are never touched. git runs without a terminal (its own
// session, GIT_TERMINAL_PROMPT=0, no askpass program), so a missing
// credential is an error, never a prompt a daemon would hang on. The
// user's configuration is read, for the credentials above, but the keys
// that would change what ferry writes or make it fail (commit and push
// signing, the commit encoding, hooks, automatic gc, replace refs) are
// overridden on every command line; every GIT_* variable but those that
// select a transport, a proxy or a configuration file is dropped from the
// environment.
//
// # Concurrency
//
// One goroutine, the stage's, owns a Repo: Commit, Advance, Fetch, Push,
// Publish, PushPending, Tip and Maintain must not run concurrently with
// each other. NewBlob and the Blobs it returns are the exception: the
// workers write blobs concurrently with each other and with the owner's
// commands, since a loose object appears in one rename.
package gitstage

import "time"

// Options configure a job's Git stage. The zero value is "off".
type Options struct {
	// Repository is where the commits go: a local path (a bare
	// repository, or one whose Branch is not checked out) or a remote URL
	// (ssh://, git@host:path, https://, git://, file://).
	Repository string
	Branch     string // default "main"
	// BatchFiles and BatchDelay bound a batch: it is committed once it
	// holds BatchFiles paths, or BatchDelay after its oldest path shipped,
	// whichever comes first.
	BatchFiles int           // default 100
	BatchDelay time.Duration // default 10 minutes
	Author     Author
	// Message is a text/template for the commit message; see MessageData.
	Message string
	// Push sends each commit to Repository; off keeps them in ferry's own
	// clone (state directory) until a push is asked for.
	Push bool
	// PathPrefix is where the mirrored tree lives inside the repository
	// ("" = at its root), slash-separated, without leading or trailing
	// slashes.
	PathPrefix string
}

// Author is who the commits name as author and committer.
type Author struct {
	Name, Email string
}

// Defaults for the keys left out.
const (
	DefaultBranch     = "main"
	DefaultBatchFiles = 100
	DefaultBatchDelay = 10 * time.Minute
	DefaultMessage    = "ferry {{.Job}}: {{.Files}} file{{if ne .Files 1}}s{{end}} ({{.Added}} added, {{.Changed}} changed, {{.Deleted}} deleted)\n\n{{range .List}}{{.}}\n{{end}}{{if .More}}… and {{.More}} more\n{{end}}"
	DefaultAuthorName = "ferry"
)

// Enabled reports whether the stage is configured.
func (o Options) Enabled() bool { return o.Repository != "" }

// MessageData is what a commit message template sees.
type MessageData struct {
	Job                            string
	Files, Added, Changed, Deleted int
	List                           []string // the first paths of the batch, one line each ("A path", "M path", "D path")
	More                           int      // the paths not listed
}

// withDefaults fills in the keys left out, for a caller that did not.
func (o Options) withDefaults() Options {
	if o.Branch == "" {
		o.Branch = DefaultBranch
	}
	if o.BatchFiles == 0 {
		o.BatchFiles = DefaultBatchFiles
	}
	if o.BatchDelay == 0 {
		o.BatchDelay = DefaultBatchDelay
	}
	if o.Message == "" {
		o.Message = DefaultMessage
	}
	if o.Author.Name == "" {
		o.Author.Name = DefaultAuthorName
	}
	return o
}
