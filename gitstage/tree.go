package gitstage

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
)

// treeEntry is one line of a tree object: a file, a directory (a tree), a
// symbolic link or a submodule, by its mode as git writes it.
type treeEntry struct {
	mode, name, oid string
}

// isTree says the entry is a directory: mode 40000, or 040000 as some old
// tools wrote it (fsck warns about those; they are directories all the
// same, and what is under them must be kept).
func (e treeEntry) isTree() bool { return e.mode == "40000" || e.mode == "040000" }

// parseTree reads a tree object's content: "<mode> <name>\0<20-byte id>"
// entries, end to end.
func parseTree(data []byte) ([]treeEntry, error) {
	var out []treeEntry
	for len(data) > 0 {
		sp := bytes.IndexByte(data, ' ')
		nul := bytes.IndexByte(data, 0)
		if sp <= 0 || nul < sp+2 || len(data) < nul+21 {
			return nil, fmt.Errorf("%w: a malformed entry", errNotTree)
		}
		out = append(out, treeEntry{
			mode: string(data[:sp]),
			name: string(data[sp+1 : nul]),
			oid:  hex.EncodeToString(data[nul+1 : nul+21]),
		})
		data = data[nul+21:]
	}
	return out, nil
}

// encodeTree writes entries as a tree object's content, in git's order.
func encodeTree(entries []treeEntry) ([]byte, error) {
	sort.Slice(entries, func(i, j int) bool { return lessEntry(entries[i], entries[j]) })
	var b bytes.Buffer
	for _, e := range entries {
		raw, err := hex.DecodeString(e.oid)
		if err != nil || len(raw) != 20 {
			return nil, fmt.Errorf("gitstage: tree entry %q: %q is not an object id", e.name, e.oid)
		}
		b.WriteString(e.mode)
		b.WriteByte(' ')
		b.WriteString(e.name)
		b.WriteByte(0)
		b.Write(raw)
	}
	return b.Bytes(), nil
}

// lessEntry is git's order of tree entries: by name, a directory's name
// compared as if it ended with '/'. fsck refuses a tree in another order.
func lessEntry(a, b treeEntry) bool {
	n := min(len(a.name), len(b.name))
	if c := strings.Compare(a.name[:n], b.name[:n]); c != 0 {
		return c < 0
	}
	return nextByte(a, n) < nextByte(b, n)
}

func nextByte(e treeEntry, n int) byte {
	switch {
	case len(e.name) > n:
		return e.name[n]
	case e.isTree():
		return '/'
	}
	return 0
}

func findEntry(entries []treeEntry, name string) (treeEntry, bool) {
	for _, e := range entries {
		if e.name == name {
			return e, true
		}
	}
	return treeEntry{}, false
}

// edit is what a batch does at one path of the tree: put a file there,
// delete what is there (and under it), or change what is under it.
type edit struct {
	set  *treeEntry // the file put at this path (name unset)
	del  bool       // what was here goes, with what was under it
	adds bool       // a file is put at or under this path
	kids map[string]*edit
}

func (e *edit) child(name string) *edit {
	if e.kids == nil {
		e.kids = map[string]*edit{}
	}
	k := e.kids[name]
	if k == nil {
		k = &edit{}
		e.kids[name] = k
	}
	return k
}

// editTree applies adds and dels (full paths in the repository) to base
// and returns the new tree; only the trees on the changed paths are read
// and written. A deleted path takes what is under it; deleting a path
// that is not there changes nothing; a file put where a directory was
// replaces it, and the reverse.
func (r *Repo) editTree(o *objects, base string, adds []entry, dels []string) (string, error) {
	root := &edit{}
	for _, d := range dels {
		e := root
		for _, c := range strings.Split(d, "/") {
			e = e.child(c)
		}
		e.del = true
	}
	for _, a := range adds {
		e := root
		e.adds = true
		for _, c := range strings.Split(a.path, "/") {
			e = e.child(c)
			e.adds = true
		}
		e.set = &treeEntry{mode: a.mode, oid: a.oid}
	}
	tree, err := r.applyEdit(o, root, base)
	if err != nil || tree != "" {
		return tree, err
	}
	return r.writeObject("tree", nil) // everything went: the empty tree
}

// applyEdit returns base (a tree id, "" for none) with e applied, "" when
// nothing is left in it.
func (r *Repo) applyEdit(o *objects, e *edit, base string) (string, error) {
	var old []treeEntry
	if base != "" {
		var err error
		if old, err = o.tree(base); err != nil {
			return "", err
		}
	}
	m := make(map[string]treeEntry, len(old)+len(e.kids))
	for _, x := range old {
		m[x.name] = x
	}
	changed := false
	for name, k := range e.kids {
		was, had := m[name]
		switch {
		case k.set != nil:
			m[name] = treeEntry{mode: k.set.mode, name: name, oid: k.set.oid}
			changed = changed || !had || was.mode != k.set.mode || was.oid != k.set.oid
			continue
		case !k.adds && k.del:
			if had {
				delete(m, name)
				changed = true
			}
			continue
		case !k.adds && (!had || !was.isTree()):
			continue // deletions under a path that is no directory
		}
		sub := ""
		if had && was.isTree() && !k.del {
			sub = was.oid
		}
		next, err := r.applyEdit(o, k, sub)
		if err != nil {
			return "", err
		}
		switch {
		case next == "" && had:
			delete(m, name)
			changed = true
		case next != "" && (!had || was.oid != next || !was.isTree()):
			m[name] = treeEntry{mode: "40000", name: name, oid: next}
			changed = true
		}
	}
	if !changed && base != "" {
		return base, nil
	}
	if len(m) == 0 {
		return "", nil
	}
	entries := make([]treeEntry, 0, len(m))
	for _, x := range m {
		entries = append(entries, x)
	}
	data, err := encodeTree(entries)
	if err != nil {
		return "", err
	}
	return r.writeObject("tree", data)
}
