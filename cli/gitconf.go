package cli

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"text/template"

	"ferry/config"
	"ferry/gitstage"
)

// checkGit judges a job's [job.git] table the way the Git stage will read
// it, so that a mistake is a config error at its line, not a stage that
// fails hours later. config has already refused a key set without a
// repository, and judged the batch bounds.
func checkGit(g config.Git) []config.FieldError {
	if g.Repository == "" {
		return nil
	}
	var out []config.FieldError
	bad := func(key string, err error) {
		out = append(out, config.FieldError{Key: "git." + key, Err: err})
	}
	if _, err := parseRepository(g.Repository); err != nil {
		bad("repository", err)
	}
	if err := checkBranch(g.Branch); err != nil {
		bad("branch", err)
	}
	if _, err := parseAuthor(g.Author); err != nil {
		bad("author", err)
	}
	if err := checkMessage(g.Message); err != nil {
		bad("message", err)
	}
	if err := checkPathPrefix(g.PathPrefix); err != nil {
		bad("path_prefix", err)
	}
	return out
}

// gitOptions types a checked [job.git] table; off stays the zero value, so
// that the daemon's restart comparison sees no change in a stage that is
// off. warnf hears about a password written in the repository's URL.
func gitOptions(g config.Git, warnf func(string, ...any)) (gitstage.Options, error) {
	if g.Repository == "" {
		return gitstage.Options{}, nil
	}
	u, err := parseRepository(g.Repository)
	if err != nil {
		return gitstage.Options{}, err
	}
	repo := g.Repository
	if u == nil { // a local path: absolute, as the stage may run from anywhere
		if repo, err = filepath.Abs(repo); err != nil {
			return gitstage.Options{}, err
		}
	} else if _, ok := u.User.Password(); ok && warnf != nil {
		warnf("git.repository %s holds a password, which anyone who reads the config (and process lists, while git runs) can see; use a credential helper (git help credentials) instead", u.Redacted())
	}
	author, err := parseAuthor(g.Author)
	if err != nil {
		return gitstage.Options{}, err
	}
	return gitstage.Options{
		Repository: repo, Branch: g.Branch, BatchFiles: g.BatchFiles, BatchDelay: g.BatchDelay.Duration,
		Author: author, Message: g.Message, Push: g.Push, PathPrefix: g.PathPrefix,
	}, nil
}

// repoSchemes are the URL schemes of the transports Git ships with.
var repoSchemes = map[string]bool{"ssh": true, "https": true, "http": true, "git": true, "file": true}

const repoForms = "want a local path, a URL with scheme ssh, https, http, git or file, or user@host:path"

// parseRepository reads the repository key: a local path, which must be a
// repository already (the stage never creates one where a typo pointed),
// or a remote; it returns the URL of a remote (an scp-like address as
// ssh://), nil for a local path.
func parseRepository(s string) (*url.URL, error) {
	if strings.ContainsAny(s, "\x00\r\n") {
		return nil, fmt.Errorf("%q contains a control character", redactURL(s))
	}
	if config.LocalRepository(s) {
		return nil, checkLocalRepository(s)
	}
	if !strings.Contains(s, "://") {
		return parseSCP(s)
	}
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%q: %v", redactURL(s), err)
	}
	if !repoSchemes[strings.ToLower(u.Scheme)] {
		return nil, fmt.Errorf("%s: scheme %q: %s", u.Redacted(), u.Scheme, repoForms)
	}
	if strings.EqualFold(u.Scheme, "file") {
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("%s: a file URL names a path on this machine: file:///path", u.Redacted())
		}
		return u, checkLocalRepository(u.Path)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%s: no host", u.Redacted())
	}
	if u.Path == "" || u.Path == "/" {
		return nil, fmt.Errorf("%s: no repository path after the host", u.Redacted())
	}
	return u, nil
}

// parseSCP reads the scp-like address Git takes for SSH:
// [user@]host:path, or [user@][host]:path for an IPv6 address.
func parseSCP(s string) (*url.URL, error) {
	u := &url.URL{Scheme: "ssh"}
	rest := s
	if at, colon := strings.IndexByte(s, '@'), strings.IndexByte(s, ':'); at >= 0 && at < colon {
		if at == 0 {
			return nil, fmt.Errorf("%q: no user before '@' (%s)", s, repoForms)
		}
		u.User, rest = url.User(s[:at]), s[at+1:]
	}
	var host string
	if strings.HasPrefix(rest, "[") {
		end := strings.Index(rest, "]:")
		if end < 0 {
			return nil, fmt.Errorf("%q: an IPv6 address is written [addr]:path", s)
		}
		host, u.Path = rest[1:end], rest[end+2:]
		u.Host = "[" + host + "]"
	} else {
		host, u.Path, _ = strings.Cut(rest, ":")
		u.Host = host
	}
	if host == "" || u.Path == "" {
		return nil, fmt.Errorf("%q: %s", s, repoForms)
	}
	return u, nil
}

// checkLocalRepository says what is wrong with a local repository path:
// missing, not a directory, or not a Git repository (neither a .git in
// it nor a bare repository's HEAD and objects/).
func checkLocalRepository(p string) error {
	fi, err := os.Stat(p)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s does not exist: create it (git init --bare %s) or correct the path", p, p)
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", p)
	}
	if _, err := os.Stat(filepath.Join(p, ".git")); err == nil {
		return nil
	}
	head, herr := os.Stat(filepath.Join(p, "HEAD"))
	objects, oerr := os.Stat(filepath.Join(p, "objects"))
	if herr != nil || oerr != nil || head.IsDir() || !objects.IsDir() {
		return fmt.Errorf("%s is not a Git repository (git init --bare makes one)", p)
	}
	return nil
}

// redactURL hides a password in a URL that did not parse.
func redactURL(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return s
	}
	auth, tail, ok := strings.Cut(rest, "@")
	if !ok || strings.Contains(auth, "/") {
		return s
	}
	if user, _, hasPw := strings.Cut(auth, ":"); hasPw {
		return scheme + "://" + user + ":xxxxx@" + tail
	}
	return s
}

// checkBranch applies the rules of `git check-ref-format --branch` (see
// git-check-ref-format(1)) to refs/heads/<name>, without running git: the
// config is judged where git may not be installed yet.
func checkBranch(name string) error {
	bad := func(why string) error { return fmt.Errorf("%q is not a valid branch name: %s", name, why) }
	switch {
	case name == "":
		return bad("empty")
	case name == "HEAD":
		return bad("HEAD names the current commit, not a branch")
	case strings.HasPrefix(name, "-"):
		return bad("it starts with '-'")
	case strings.HasPrefix(name, "refs/"):
		return bad("give the branch's short name (main, not refs/heads/main)")
	case name == "@":
		return bad("'@' alone stands for HEAD")
	case strings.HasSuffix(name, "."):
		return bad("it ends with '.'")
	case strings.Contains(name, ".."):
		return bad("it contains '..'")
	case strings.Contains(name, "@{"):
		return bad("it contains '@{'")
	}
	for _, c := range []byte(name) {
		if c < 0x20 || c == 0x7f {
			return bad("it contains a control character")
		}
		if strings.IndexByte(" ~^:?*[\\", c) >= 0 {
			return bad(fmt.Sprintf("it contains %q", c))
		}
	}
	for comp := range strings.SplitSeq(name, "/") {
		switch {
		case comp == "":
			return bad("it has an empty part (a leading, trailing or double '/')")
		case strings.HasPrefix(comp, "."):
			return bad(fmt.Sprintf("the part %q starts with '.'", comp))
		case strings.HasSuffix(comp, ".lock"):
			return bad(fmt.Sprintf("the part %q ends with .lock", comp))
		}
	}
	return nil
}

// parseAuthor reads "Name <email>", or "" for ferry@ this host, which
// names the machine that made the commits.
func parseAuthor(s string) (gitstage.Author, error) {
	if s == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "localhost"
		}
		return gitstage.Author{Name: gitstage.DefaultAuthorName, Email: gitstage.DefaultAuthorName + "@" + host}, nil
	}
	want := fmt.Errorf("%q: want \"Name <email>\", e.g. \"Deploy Bot <deploy@example.com>\"", s)
	t := strings.TrimSpace(s)
	lt := strings.IndexByte(t, '<')
	if lt < 0 || !strings.HasSuffix(t, ">") {
		return gitstage.Author{}, want
	}
	name, email := strings.TrimSpace(t[:lt]), t[lt+1:len(t)-1]
	switch {
	case name == "":
		return gitstage.Author{}, fmt.Errorf("%q: no name before <email>", s)
	case email == "":
		return gitstage.Author{}, fmt.Errorf("%q: no email between < and >", s)
	case strings.ContainsAny(name, "<>\x00\n") || strings.ContainsAny(email, "<> \t\x00\n"):
		return gitstage.Author{}, want
	}
	return gitstage.Author{Name: name, Email: email}, nil
}

// sampleMessages are what checkMessage executes a template against: a
// batch with every count and a list cut short, and one of a single file,
// so both sides of the usual {{if}} run.
var sampleMessages = []gitstage.MessageData{
	{Job: "site", Files: 5, Added: 2, Changed: 2, Deleted: 1, List: []string{"A index.html", "M css/site.css", "D old.html"}, More: 2},
	{Job: "site", Files: 1, Changed: 1, List: []string{"M index.html"}},
}

// checkMessage parses the message template and executes it against
// sample batches: a field that MessageData lacks is an error now rather
// than a stage that cannot commit.
func checkMessage(msg string) error {
	t, err := template.New("message").Parse(msg)
	if err != nil {
		return err
	}
	for _, d := range sampleMessages {
		var b strings.Builder
		if err := t.Execute(&b, d); err != nil {
			return fmt.Errorf("%w (a message sees .Job, .Files, .Added, .Changed, .Deleted, .List and .More)", err)
		}
		if strings.TrimSpace(b.String()) == "" {
			return errors.New("the template writes an empty message, and a commit needs one")
		}
	}
	return nil
}

// checkPathPrefix keeps the prefix a path inside the repository's tree
// that Git accepts: relative, slash-separated and clean, never climbing
// out with ".." and never writing into a .git.
func checkPathPrefix(p string) error {
	if p == "" {
		return nil
	}
	if strings.HasPrefix(p, "/") {
		return fmt.Errorf("%q: want a path inside the repository, relative to its root, e.g. \"site\"", p)
	}
	if strings.IndexByte(p, 0) >= 0 {
		return fmt.Errorf("%q contains a NUL byte", p)
	}
	for comp := range strings.SplitSeq(p, "/") {
		if comp == ".." {
			return fmt.Errorf("%q climbs out of the repository with '..'", p)
		}
		if strings.EqualFold(comp, ".git") {
			return fmt.Errorf("%q writes into .git, which Git refuses in a tree", p)
		}
	}
	if p == "." {
		return fmt.Errorf(`%q: write "" for the repository's root`, p)
	}
	if c := path.Clean(p); c != p {
		return fmt.Errorf("%q is not clean: write %q", p, c)
	}
	return nil
}
