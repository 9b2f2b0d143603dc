package entry

import (
	"crypto/rand"
	"encoding/hex"
	"path"
	"strings"
	"time"
	"unicode/utf8"
)

// TempPrefix starts the name of every temporary upload. Scanners skip such
// names and the next run removes those a crash left behind: they are never
// part of the mirror.
const TempPrefix = ".ferry-tmp-"

// maxNameBytes is NAME_MAX on the servers we meet; temp names must fit even
// when the final name is already at the limit.
const maxNameBytes = 255

// TempName returns a fresh temporary name in the same directory as p, so the
// final rename never crosses a filesystem. The final name is kept (cut to fit)
// so that an operator who finds a leftover can tell what it was.
func TempName(p string) string {
	dir, base := path.Split(p)
	var rnd [6]byte
	_, _ = rand.Read(rnd[:]) // crypto/rand.Read never fails on Linux
	prefix := TempPrefix + hex.EncodeToString(rnd[:]) + "-"
	room := maxNameBytes - len(prefix)
	if len(base) > room {
		base = base[:room]
		for !utf8.ValidString(base) {
			base = base[:len(base)-1]
		}
	}
	return dir + prefix + base
}

// IsTemp reports whether a base name is one of ferry's temporary uploads.
func IsTemp(name string) bool {
	return strings.HasPrefix(name, TempPrefix)
}

// conflictMark sits in the names of remote copies that a conflict moved
// aside; they belong to whoever changed the remote, so nothing removes them.
const conflictMark = ".ferry-conflict-"

// ConflictName returns the name a conflicting remote file is moved to:
// "report.pdf" becomes "report.ferry-conflict-20261123-051300.pdf".
func ConflictName(p string, at time.Time) string {
	dir, base := path.Split(p)
	ext := path.Ext(base)
	stem := strings.TrimSuffix(base, ext)
	if stem == "" { // ".htaccess": the whole name is the stem
		stem, ext = base, ""
	}
	stamp := at.UTC().Format("20060102-150405")
	room := maxNameBytes - len(conflictMark) - len(stamp) - len(ext)
	if room < 1 {
		ext, room = "", maxNameBytes-len(conflictMark)-len(stamp)
	}
	if len(stem) > room {
		stem = stem[:room]
		for !utf8.ValidString(stem) {
			stem = stem[:len(stem)-1]
		}
	}
	return dir + stem + conflictMark + stamp + ext
}

// IsConflictCopy reports whether a base name is a copy a conflict moved aside.
func IsConflictCopy(name string) bool {
	return strings.Contains(name, conflictMark)
}
