package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
)

// FieldError is a bad value in a job, by key.
type FieldError struct {
	Key string
	Err error
}

// Check validates a job's values; base resolves relative file paths. It
// also makes the paths absolute. Flags of `ferry --once` go through it too,
// so a value is judged the same wherever it was written.
func (j *Job) Check(base string) []FieldError {
	var out []FieldError
	bad := func(key string, format string, args ...any) {
		out = append(out, FieldError{Key: key, Err: fmt.Errorf(format, args...)})
	}
	if j.Name == "" {
		bad("name", "missing: every job needs a name (letters, digits, '.', '_' or '-')")
	} else if !jobName.MatchString(j.Name) {
		bad("name", "%q: use letters, digits, '.', '_' or '-', starting with a letter or digit", j.Name)
	}
	if j.Source == "" {
		bad("source", "missing: the local directory to mirror")
	} else {
		j.Source = absUnder(base, j.Source)
	}
	if j.Target == "" {
		bad("target", "missing: a URL such as sftp://user@host/path, ftp://..., ftps://... or file:///path")
	}
	for _, p := range []struct {
		key string
		v   *string
	}{{"password_file", &j.PasswordFile}, {"identity_file", &j.IdentityFile}, {"known_hosts", &j.KnownHosts}, {"tls_ca_file", &j.TLSCAFile}} {
		if *p.v != "" {
			*p.v = absUnder(base, *p.v)
		}
	}
	if j.Timeout.Duration <= 0 {
		bad("timeout", "%v: want a positive duration such as 30s", j.Timeout.Duration)
	}
	if j.ServerPatience.Duration < 0 {
		bad("server_patience", "%v: want a duration such as 5m, or 0s for four timeouts (at least 1m)", j.ServerPatience.Duration)
	}
	if j.Workers < 1 || j.Workers > 256 {
		bad("workers", "%d: want 1 to 256", j.Workers)
	}
	if _, err := ParseRate(j.BwLimit); err != nil {
		bad("bwlimit", "%v", err)
	}
	if j.DeleteExcluded && !j.Delete {
		bad("delete_excluded", "is on but delete is not: excluded remote paths are only deleted along with the rest (turn delete on too)")
	}
	if j.SettleDelay.Duration < 0 {
		bad("settle_delay", "%v: want zero or more", j.SettleDelay.Duration)
	}
	if j.MaxDelay.Duration < j.SettleDelay.Duration {
		bad("max_delay", "%v is shorter than settle_delay (%v): a changing file would never wait to settle", j.MaxDelay.Duration, j.SettleDelay.Duration)
	}
	if j.ScanInterval.Duration < 0 {
		bad("scan_interval", "%v: want a duration, or 0 for a scan at start only", j.ScanInterval.Duration)
	}
	return append(out, j.Git.check(base)...)
}

// check judges the [job.git] table as far as config can: a key set while
// the stage is off, the batch bounds, and a local repository's path made
// absolute. What a repository, branch, author, message or prefix may be is
// the stage's to judge (cli's Checker).
func (g *Git) check(base string) []FieldError {
	var out []FieldError
	bad := func(key string, format string, args ...any) {
		out = append(out, FieldError{Key: "git." + key, Err: fmt.Errorf(format, args...)})
	}
	if g.Repository == "" {
		// "Set" is "not its default": the table written out with its
		// defaults (as config.example.toml does) is still off, but any
		// value the user chose would be silently ignored.
		got, def := reflect.ValueOf(*g), reflect.ValueOf(Defaults().Git)
		for i := range got.NumField() {
			key := got.Type().Field(i).Tag.Get("toml")
			if key != "repository" && !reflect.DeepEqual(got.Field(i).Interface(), def.Field(i).Interface()) {
				bad(key, "is set but git.repository is not")
			}
		}
		return out
	}
	if LocalRepository(g.Repository) {
		g.Repository = absUnder(base, g.Repository)
	}
	if g.BatchFiles < 1 {
		bad("batch_files", "%d: want 1 or more", g.BatchFiles)
	}
	if g.BatchDelay.Duration <= 0 {
		bad("batch_delay", "%v: want a positive duration such as 10m", g.BatchDelay.Duration)
	}
	return out
}

var urlScheme = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://`)

// LocalRepository tells a repository given as a local path from a URL by
// Git's own rule: a URL has a scheme ("ssh://..."), an scp-like address
// ("user@host:path") has a colon before any slash, and anything else is a
// path ("./a:b" is one).
func LocalRepository(s string) bool {
	if urlScheme.MatchString(s) {
		return false
	}
	colon, slash := strings.IndexByte(s, ':'), strings.IndexByte(s, '/')
	return colon < 0 || (slash >= 0 && slash < colon)
}

func absUnder(base, p string) string {
	if strings.HasPrefix(p, "~/") {
		if h, err := os.UserHomeDir(); err == nil {
			p = filepath.Join(h, p[2:])
		}
	}
	if filepath.IsAbs(p) || base == "" {
		return p
	}
	return filepath.Join(base, p)
}

// ParseRate reads a bandwidth: bytes per second with an optional K, M or G
// suffix (powers of 1024) and an optional "B", "iB" or "/s"; "" or "0" is
// no limit.
func ParseRate(s string) (float64, error) {
	if s == "" || s == "0" {
		return 0, nil
	}
	v := strings.TrimSuffix(strings.TrimSpace(s), "/s")
	v = strings.TrimSuffix(strings.TrimSuffix(v, "iB"), "B")
	mult := 1.0
	if n := len(v); n > 0 {
		switch v[n-1] {
		case 'k', 'K':
			mult, v = 1<<10, v[:n-1]
		case 'm', 'M':
			mult, v = 1<<20, v[:n-1]
		case 'g', 'G':
			mult, v = 1<<30, v[:n-1]
		}
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 {
		return 0, fmt.Errorf("bwlimit %q: want bytes per second, e.g. 512K or 10M", s)
	}
	return f * mult, nil
}
