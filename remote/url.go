package remote

import (
	"fmt"
	"net"
	"net/url"
	"os/user"
	"path"
	"strconv"
	"strings"
)

// Target is a parsed target URL. It is the only place where URL syntax is
// understood; backends receive a Target, never a string.
type Target struct {
	Scheme   string // "ftp", "ftps", "sftp" or "file"
	User     string // login name; "anonymous" for FTP and the OS user for SFTP when absent
	Password string // password given in the URL (discouraged; see ResolvePassword)
	Host     string // host name or IP, without brackets
	Port     int    // explicit or the scheme's default
	// Path is where the mirror lives. An absolute path ("/srv/www") is
	// absolute on the server; a relative one ("site", from "/~/site") is
	// relative to the login directory; "" is the login directory itself.
	// For file:// it is an absolute local path.
	Path string
}

var defaultPorts = map[string]int{"ftp": 21, "ftps": 21, "sftp": 22}

// ParseURL parses a target URL of the forms
//
//	ftp://[user[:password]@]host[:port]/path
//	ftps://[user[:password]@]host[:port]/path   (explicit TLS)
//	sftp://[user[:password]@]host[:port]/path
//	file:///path
//
// A path starting with "/~/" (or exactly "/~") is relative to the login
// directory; any other path is absolute on the server. Reserved characters in
// names are percent-encoded ("%23" for '#', "%20" for a space). The error
// says what is wrong with the URL and how to write it.
func ParseURL(raw string) (*Target, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("target URL %q: %s", redact(raw), fmt.Sprintf(format, args...))
	}
	if strings.TrimSpace(raw) == "" {
		return nil, bad("empty; expected ftp://, ftps://, sftp:// or file:///path")
	}
	if strings.ContainsAny(raw, "\x00\r\n") {
		return nil, bad("contains a control character")
	}
	if !strings.Contains(raw, "://") {
		return nil, bad("no scheme; expected ftp://, ftps://, sftp:// or file:///path (a local directory is written file:///abs/path)")
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if e, ok := err.(*url.Error); ok {
			ue = e
			return nil, bad("%v", ue.Err)
		}
		return nil, bad("%v", err)
	}
	t := &Target{Scheme: strings.ToLower(u.Scheme)}
	if u.Fragment != "" || strings.HasSuffix(raw, "#") {
		return nil, bad("'#' starts a URL fragment; write %%23 for a '#' in a path")
	}
	if u.RawQuery != "" || u.ForceQuery {
		return nil, bad("query parameters are not supported; write '?' in a path as %%3F, and give options as flags or config keys")
	}
	if u.Opaque != "" {
		return nil, bad("missing '//' after %q:", u.Scheme)
	}
	p := u.Path
	if strings.ContainsAny(p, "\x00\r\n") {
		return nil, bad("path contains a control character")
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			return nil, bad("path must not contain '..' segments")
		}
	}

	switch t.Scheme {
	case "file":
		if u.User != nil {
			return nil, bad("file:// URLs take no user")
		}
		if h := u.Host; h != "" && h != "localhost" {
			return nil, bad("file:// URLs name a local path: write file:///abs/path (three slashes), not host %q", h)
		}
		if p == "" || !strings.HasPrefix(p, "/") {
			return nil, bad("file:// needs an absolute path, e.g. file:///srv/mirror")
		}
		t.Path = path.Clean(p)
		return t, nil
	case "ftp", "ftps", "sftp":
	case "":
		return nil, bad("no scheme; expected ftp://, ftps://, sftp:// or file:///path")
	default:
		return nil, bad("unknown scheme %q; expected ftp, ftps (explicit TLS), sftp or file", u.Scheme)
	}

	host := u.Hostname()
	if host == "" {
		return nil, bad("missing host, e.g. %s://user@example.com/path", t.Scheme)
	}
	if strings.Contains(u.Host, "[") {
		if net.ParseIP(host) == nil {
			return nil, bad("invalid IPv6 literal %q", u.Host)
		}
	} else if strings.ContainsAny(host, ":% \t[]") {
		return nil, bad("invalid host %q (write an IPv6 address in brackets: [::1])", host)
	}
	t.Host = host
	t.Port = defaultPorts[t.Scheme]
	if ps := u.Port(); ps != "" {
		n, err := strconv.Atoi(ps)
		if err != nil || n < 1 || n > 65535 {
			return nil, bad("port %q is not a number between 1 and 65535", ps)
		}
		t.Port = n
	} else if strings.HasSuffix(u.Host, ":") {
		return nil, bad("empty port after ':'")
	}
	if u.User != nil {
		t.User = u.User.Username()
		t.Password, _ = u.User.Password()
	}
	if t.User == "" {
		switch t.Scheme {
		case "sftp":
			if cur, err := user.Current(); err == nil {
				t.User = cur.Username
			}
			if t.User == "" {
				return nil, bad("missing user, e.g. sftp://user@%s/path", host)
			}
		default:
			t.User = "anonymous"
		}
	}
	switch {
	case p == "" || p == "/~" || p == "/~/":
		t.Path = ""
	case strings.HasPrefix(p, "/~/"):
		t.Path = path.Clean(p[3:])
	default:
		t.Path = path.Clean(p)
	}
	return t, nil
}

// Addr is host:port, with brackets for IPv6.
func (t *Target) Addr() string {
	return net.JoinHostPort(t.Host, strconv.Itoa(t.Port))
}

// String renders the target as a URL without its password, for logs.
func (t *Target) String() string {
	if t.Scheme == "file" {
		return (&url.URL{Scheme: "file", Path: t.Path}).String()
	}
	u := url.URL{Scheme: t.Scheme, User: url.User(t.User), Host: t.Addr()}
	switch {
	case t.Path == "":
		u.Path = "/~"
	case strings.HasPrefix(t.Path, "/"):
		u.Path = t.Path
	default:
		u.Path = "/~/" + t.Path
	}
	return u.String()
}

// redact hides a password in a raw URL for error messages, even one that
// does not parse.
func redact(raw string) string {
	at := strings.LastIndex(raw, "@")
	start := strings.Index(raw, "://")
	if at < 0 || start < 0 || at < start {
		return raw
	}
	userinfo := raw[start+3 : at]
	if i := strings.Index(userinfo, ":"); i >= 0 {
		return raw[:start+3] + userinfo[:i] + ":xxxxx" + raw[at:]
	}
	return raw
}
