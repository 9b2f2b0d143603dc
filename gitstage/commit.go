package gitstage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

var (
	// ErrNothingToCommit is a batch that leaves the tree as it was: no
	// commit is made (never an empty one).
	ErrNothingToCommit = errors.New("nothing to commit")
	// ErrBadPath is a path that cannot be in a Git tree (a "..", an empty
	// or ".git" component, a leading slash), or one that a batch names
	// twice, or as both a file and a directory.
	ErrBadPath = errors.New("bad path")
	// ErrMissingBlob is a change whose blob is not in the clone.
	ErrMissingBlob = errors.New("blob not in the clone")
)

const (
	zeroOID   = "0000000000000000000000000000000000000000"
	emptyTree = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
)

// Change is one path of a batch: the blob of its shipped bytes, or a
// deletion. Path is slash-separated and relative to the mirrored tree
// (Options.PathPrefix is added).
type Change struct {
	Path string
	Blob string // object id; "" = delete the path (and whatever is under it)
	Exec bool   // mode 100755 instead of 100644
}

// entry is a line of update-index --index-info: a full path in the
// repository with its mode and object ("0", zeroOID = remove).
type entry struct {
	mode, oid, path string
}

// ident is an author or a committer: name, email and a date as git reads
// it ("@<unix> <+hhmm>").
type ident struct {
	name, email, date string
}

func gitDate(t time.Time) string {
	return fmt.Sprintf("@%d %s", t.Unix(), t.Format("-0700"))
}

// Commit writes the commit of a batch: parent's tree (none for "", a root
// commit) with changes applied under the path prefix, authored and
// committed by the configured author at when (now if zero). It moves no
// ref (see Advance). A batch that changes nothing is ErrNothingToCommit;
// deleting a path that is not in the tree is no change. A path that is a
// file in the batch replaces a directory of that name and everything in
// it, and the reverse.
func (r *Repo) Commit(ctx context.Context, parent string, changes []Change, msg string, when time.Time) (string, error) {
	adds, dels, err := r.prepare(changes)
	if err != nil {
		return "", err
	}
	if when.IsZero() {
		when = time.Now()
	}
	id := ident{r.o.Author.Name, r.o.Author.Email, gitDate(when)}
	return r.writeCommit(ctx, parent, adds, dels, msg, id, id)
}

// prepare checks a batch's paths and turns them into full paths in the
// repository: additions, and deletions (to be expanded to what is under
// them).
func (r *Repo) prepare(changes []Change) (adds []entry, dels []string, err error) {
	seen := make(map[string]bool, len(changes))
	added := make(map[string]bool, len(changes))
	for _, c := range changes {
		if why := checkPath(c.Path); why != "" {
			return nil, nil, fmt.Errorf("gitstage: %w %q: %s", ErrBadPath, c.Path, why)
		}
		full := c.Path
		if r.o.PathPrefix != "" {
			full = r.o.PathPrefix + "/" + c.Path
		}
		if seen[full] {
			return nil, nil, fmt.Errorf("gitstage: %w %q: named twice in one batch", ErrBadPath, c.Path)
		}
		seen[full] = true
		if c.Blob == "" {
			dels = append(dels, full)
			continue
		}
		if !isOID(c.Blob) {
			return nil, nil, fmt.Errorf("gitstage: %q: %q is not an object id", c.Path, c.Blob)
		}
		mode := "100644"
		if c.Exec {
			mode = "100755"
		}
		adds = append(adds, entry{mode, c.Blob, full})
		added[full] = true
	}
	for _, a := range adds {
		for d := a.path; ; {
			i := strings.LastIndexByte(d, '/')
			if i < 0 {
				break
			}
			d = d[:i]
			if added[d] {
				return nil, nil, fmt.Errorf("gitstage: %w %q: a file in this batch, and a directory of %q", ErrBadPath, d, a.path)
			}
		}
	}
	sort.Slice(adds, func(i, j int) bool { return adds[i].path < adds[j].path })
	sort.Strings(dels)
	return adds, dels, nil
}

// writeCommit builds parent's tree with dels removed (recursively) and adds
// put in, and commits it unless it is parent's tree. Trees and the commit
// are written in process, as git's write-tree and commit-tree would write
// them; only the trees on the changed paths are read and written, so a
// batch costs the same in a tree of ten files or of a million.
func (r *Repo) writeCommit(ctx context.Context, parent string, adds []entry, dels []string, msg string, author, committer ident) (string, error) {
	if strings.TrimSpace(msg) == "" {
		return "", errors.New("gitstage: empty commit message")
	}
	if !strings.HasSuffix(msg, "\n") {
		msg += "\n"
	}
	for _, a := range adds {
		if why := checkPath(a.path); why != "" {
			return "", fmt.Errorf("gitstage: %w %q: %s", ErrBadPath, a.path, why)
		}
	}
	o, done, err := r.reader(ctx)
	if err != nil {
		return "", err
	}
	defer done()
	if err := r.checkBlobs(o, adds); err != nil {
		return "", err
	}
	parentTree := emptyTree
	if parent != "" {
		if !isOID(parent) {
			return "", fmt.Errorf("gitstage: parent %q is not a commit id", parent)
		}
		_, c, err := o.commit(parent)
		if err != nil || !isOID(c.tree) {
			return "", fmt.Errorf("gitstage: parent %s is not a commit in the clone", parent)
		}
		parentTree = c.tree
	}
	tree, err := r.editTree(o, parentTree, adds, dels)
	if err != nil {
		return "", err
	}
	if tree == parentTree {
		return "", ErrNothingToCommit
	}
	var b strings.Builder
	b.WriteString("tree " + tree + "\n")
	if parent != "" {
		b.WriteString("parent " + parent + "\n")
	}
	b.WriteString("author " + author.line() + "\n")
	b.WriteString("committer " + committer.line() + "\n\n")
	b.WriteString(msg)
	return r.writeObject("commit", []byte(b.String()))
}

// line is the ident as a commit header holds it, "Name <email> 1700000000
// +0100", the name and email trimmed as git trims them.
func (id ident) line() string {
	return crudTrim(id.name) + " <" + crudTrim(id.email) + "> " + strings.TrimPrefix(id.date, "@")
}

// crudTrim drops what git drops around a name or an email: spaces,
// control characters and . , : ; < > " \ '.
func crudTrim(s string) string {
	return strings.TrimFunc(s, func(c rune) bool {
		return c <= ' ' || strings.ContainsRune(".,:;<>\"\\'", c)
	})
}

// checkBlobs makes sure every added blob is in the clone, before a tree
// names it: a blob lost since it was shipped is ErrMissingBlob with its
// paths, so that the stage can ship them again.
func (r *Repo) checkBlobs(o *objects, adds []entry) error {
	var missing []string
	for _, a := range adds {
		// Shipped blobs are loose: a stat answers for nearly all.
		if _, err := os.Stat(filepath.Join(r.dir, "objects", a.oid[:2], a.oid[2:])); err == nil {
			continue
		}
		typ, _, _, err := o.read(a.oid)
		if err != nil {
			return err
		}
		if typ != "blob" {
			missing = append(missing, a.path)
		}
	}
	if len(missing) > 0 {
		more := ""
		if len(missing) > 5 {
			more = fmt.Sprintf(" and %d more", len(missing)-5)
			missing = missing[:5]
		}
		return fmt.Errorf("gitstage: %w: %s%s", ErrMissingBlob, strings.Join(missing, ", "), more)
	}
	return nil
}

// checkPath says why a path cannot be in a Git tree, "" if it can: git's
// own rules (update-index with core.protectHFS and core.protectNTFS,
// which fsck --strict applies too), so that a refused path is an error
// here rather than a file silently left out of the tree.
func checkPath(p string) string {
	switch {
	case p == "":
		return "empty"
	case strings.HasPrefix(p, "/"):
		return "absolute"
	case strings.HasSuffix(p, "/"):
		return "ends with '/'"
	case strings.IndexByte(p, 0) >= 0:
		return "holds a NUL byte"
	}
	for _, c := range strings.Split(p, "/") {
		switch {
		case c == "":
			return "has an empty component"
		case c == ".", c == "..":
			return "has a '" + c + "' component"
		case isNTFSDotGit(c), isHFSDotGit(c):
			return "has a '.git' component"
		}
		// NTFS reads a backslash as a separator.
		for i := 0; i < len(c); i++ {
			if c[i] == '\\' && isNTFSDotGit(c[i+1:]) {
				return "has a '.git' component"
			}
		}
	}
	return ""
}

// isNTFSDotGit is ".git" or "git~1", in any case, followed by nothing but
// dots and spaces, up to the end or a ':' or '\'.
func isNTFSDotGit(c string) bool {
	var rest string
	switch {
	case hasFoldPrefix(c, ".git"):
		rest = c[4:]
	case hasFoldPrefix(c, "git~1"):
		rest = c[5:]
	default:
		return false
	}
	for i := 0; i < len(rest); i++ {
		switch rest[i] {
		case ':', '\\':
			return true
		case '.', ' ':
		default:
			return false
		}
	}
	return true
}

// hasFoldPrefix is strings.HasPrefix with ASCII letters in any case.
func hasFoldPrefix(s, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		a, b := s[i], prefix[i]
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}

// isHFSDotGit is ".git" in any case once the code points HFS+ ignores are
// dropped.
func isHFSDotGit(c string) bool {
	var b strings.Builder
	for _, r := range c {
		if r == utf8.RuneError {
			return false
		}
		switch {
		case r >= 0x200c && r <= 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x206a && r <= 0x206f, r == 0xfeff:
			continue
		}
		if r >= utf8.RuneSelf {
			return false
		}
		b.WriteRune(r)
		if b.Len() > 4 {
			return false
		}
	}
	return b.Len() == 4 && hasFoldPrefix(b.String(), ".git")
}

func isOID(s string) bool {
	if len(s) != 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !(s[i] >= '0' && s[i] <= '9' || s[i] >= 'a' && s[i] <= 'f') {
			return false
		}
	}
	return true
}
