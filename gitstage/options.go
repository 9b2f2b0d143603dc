// Package gitstage owns the optional Git stage after the workers: it keeps
// exactly the bytes each upload shipped (as Git blobs written from the same
// read), commits them in batches on a branch of the configured repository,
// with deletions, in the order the paths first went out of sync, and pushes
// without ever forcing.
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
