package gitstage

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
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
	zeroOID     = "0000000000000000000000000000000000000000"
	emptyTree   = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
	indexPrefix = "ferry-index-"
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
// put in, in a temporary index, and commits it unless it is parent's tree.
func (r *Repo) writeCommit(ctx context.Context, parent string, adds []entry, dels []string, msg string, author, committer ident) (string, error) {
	if strings.TrimSpace(msg) == "" {
		return "", errors.New("gitstage: empty commit message")
	}
	if !strings.HasSuffix(msg, "\n") {
		msg += "\n"
	}
	if err := r.checkBlobs(ctx, adds); err != nil {
		return "", err
	}
	parentTree := emptyTree
	if parent != "" {
		if !isOID(parent) {
			return "", fmt.Errorf("gitstage: parent %q is not a commit id", parent)
		}
		out, err := r.git(ctx, runOpts{}, "rev-parse", "--verify", "--quiet", parent+"^{tree}")
		if err != nil || !isOID(out) {
			return "", fmt.Errorf("gitstage: parent %s is not a commit in the clone", parent)
		}
		parentTree = out
	}
	var buf [8]byte
	rand.Read(buf[:])
	index := filepath.Join(r.dir, indexPrefix+hex.EncodeToString(buf[:]))
	defer os.Remove(index)
	env := runOpts{env: []string{"GIT_INDEX_FILE=" + index}}
	if _, err := r.git(ctx, env, "read-tree", parentTree); err != nil {
		return "", err
	}
	var in bytes.Buffer
	if len(dels) > 0 && parent != "" {
		// A deletion names a file or a directory; what is under it
		// goes too. ls-tree answers both, and nothing for a path that
		// is not there.
		gone, err := r.lsTree(ctx, parentTree, dels)
		if err != nil {
			return "", err
		}
		for _, p := range gone {
			fmt.Fprintf(&in, "0 %s\t%s\x00", zeroOID, p)
		}
	}
	// --index-info adds, and replaces a directory by a file and a file
	// by a directory, by itself.
	for _, a := range adds {
		fmt.Fprintf(&in, "%s %s\t%s\x00", a.mode, a.oid, a.path)
	}
	if in.Len() > 0 {
		var said string
		if _, err := r.git(ctx, runOpts{env: env.env, stdin: &in, stderr: &said}, "update-index", "-z", "--index-info"); err != nil {
			return "", err
		}
		// update-index skips, with a warning only, a path it refuses;
		// checkPath should have refused it first.
		if strings.Contains(said, "Ignoring path") {
			return "", fmt.Errorf("gitstage: %w: %s", ErrBadPath, trimStderr(said))
		}
	}
	tree, err := r.git(ctx, env, "write-tree")
	if err != nil {
		return "", err
	}
	if tree == parentTree {
		return "", ErrNothingToCommit
	}
	// commit-tree does not read commit.gpgSign (git 2.39); should a
	// later git, --no-gpg-sign keeps a commit from waiting on a key.
	args := []string{"commit-tree", "--no-gpg-sign", tree}
	if parent != "" {
		args = append(args, "-p", parent)
	}
	commit, err := r.git(ctx, runOpts{stdin: strings.NewReader(msg), env: []string{
		"GIT_AUTHOR_NAME=" + author.name, "GIT_AUTHOR_EMAIL=" + author.email, "GIT_AUTHOR_DATE=" + author.date,
		"GIT_COMMITTER_NAME=" + committer.name, "GIT_COMMITTER_EMAIL=" + committer.email, "GIT_COMMITTER_DATE=" + committer.date,
	}}, args...)
	if err != nil {
		return "", err
	}
	return commit, nil
}

// lsTree lists the files of tree at or under paths, in chunks that keep
// the command line short.
func (r *Repo) lsTree(ctx context.Context, tree string, paths []string) ([]string, error) {
	var found []string
	for len(paths) > 0 {
		args := []string{"ls-tree", "-r", "-z", "--full-tree", "--name-only", tree, "--"}
		size := 0
		for len(paths) > 0 && (size == 0 || size+len(paths[0]) < 64<<10) {
			args = append(args, paths[0])
			size += len(paths[0]) + 1
			paths = paths[1:]
		}
		out, err := run(ctx, runOpts{gitDir: r.dir}, args...)
		if err != nil {
			return nil, err
		}
		for _, p := range bytes.Split(out, []byte{0}) {
			if len(p) > 0 {
				found = append(found, string(p))
			}
		}
	}
	return found, nil
}

// checkBlobs makes sure every added blob is in the clone, before a tree
// names it: a blob lost since it was shipped is ErrMissingBlob with its
// paths, so that the stage can ship them again.
func (r *Repo) checkBlobs(ctx context.Context, adds []entry) error {
	if len(adds) == 0 {
		return nil
	}
	var in bytes.Buffer
	for _, a := range adds {
		in.WriteString(a.oid + "\n")
	}
	out, err := run(ctx, runOpts{gitDir: r.dir, stdin: &in}, "cat-file", "--batch-check=%(objectname) %(objecttype)")
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	var missing []string
	for i := 0; sc.Scan(); i++ {
		if i >= len(adds) {
			break
		}
		f := strings.Fields(sc.Text())
		if len(f) != 2 || f[1] != "blob" {
			missing = append(missing, adds[i].path)
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
