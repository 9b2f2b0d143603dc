package gitstage

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// objects reads the clone's objects and refs through one git cat-file
// --batch process: a batch's commit reads its parent, a few trees and
// the tip's message, and a process for each of those cost more than the
// rest of the commit. It sees objects written after it started (loose
// ones are opened by name, and git looks for new packs when an object is
// not found) and reads a ref afresh at each request. One goroutine uses
// it: the repository's owner.
type objects struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Reader
	trees map[string][]treeEntry // trees are immutable: read once per hold
	err   error                  // a broken pipe ends the process for good
}

// hold gives the owner one cat-file process for what it does next, until
// the returned func is called; reads in between share it. A hold inside
// a hold is the outer one.
func (r *Repo) hold(ctx context.Context) (func(), error) {
	if r.objs != nil {
		return func() {}, nil
	}
	o, err := openObjects(ctx, r.dir)
	if err != nil {
		return nil, err
	}
	r.objs = o
	return func() { r.objs = nil; o.close() }, nil
}

// reader is the held cat-file process, or a new one for this call alone.
func (r *Repo) reader(ctx context.Context) (*objects, func(), error) {
	if r.objs != nil {
		return r.objs, func() {}, nil
	}
	o, err := openObjects(ctx, r.dir)
	if err != nil {
		return nil, nil, err
	}
	return o, o.close, nil
}

func openObjects(ctx context.Context, dir string) (*objects, error) {
	args := []string{"--git-dir=" + dir}
	for _, kv := range overrides {
		args = append(args, "-c", kv)
	}
	cmd := exec.CommandContext(ctx, "git", append(args, "cat-file", "--batch")...)
	cmd.Env = environ()
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, &Error{Args: []string{"cat-file", "--batch"}, Err: err}
	}
	return &objects{cmd: cmd, in: in, out: bufio.NewReaderSize(out, 64<<10), trees: map[string][]treeEntry{}}, nil
}

func (o *objects) close() {
	o.in.Close()
	o.cmd.Wait()
}

// read returns what name (an object id or a full ref name) is: its type,
// id and content; typ is "" when there is no such object or ref.
func (o *objects) read(name string) (typ, oid string, data []byte, err error) {
	if o.err != nil {
		return "", "", nil, o.err
	}
	if strings.ContainsAny(name, " \t\n") || name == "" {
		return "", "", nil, fmt.Errorf("gitstage: cannot read object %q", name)
	}
	defer func() {
		if err != nil {
			o.err = err
		}
	}()
	if _, err := io.WriteString(o.in, name+"\n"); err != nil {
		return "", "", nil, fmt.Errorf("gitstage: cat-file: %w", err)
	}
	line, err := o.out.ReadString('\n')
	if err != nil {
		return "", "", nil, fmt.Errorf("gitstage: cat-file: %w", err)
	}
	f := strings.Fields(line)
	switch {
	case len(f) == 2 && (f[1] == "missing" || f[1] == "ambiguous"):
		return "", "", nil, nil
	case len(f) != 3:
		return "", "", nil, fmt.Errorf("gitstage: cat-file answered %q for %s", strings.TrimSpace(line), name)
	}
	size, perr := strconv.Atoi(f[2])
	if perr != nil || size < 0 {
		return "", "", nil, fmt.Errorf("gitstage: cat-file answered %q for %s", strings.TrimSpace(line), name)
	}
	data = make([]byte, size+1)
	if _, err := io.ReadFull(o.out, data); err != nil {
		return "", "", nil, fmt.Errorf("gitstage: cat-file: reading %s: %w", name, err)
	}
	return f[1], f[0], data[:size], nil
}

// commit reads a commit by id or ref; "" when there is none.
func (o *objects) commit(name string) (oid string, c commitInfo, err error) {
	typ, oid, data, err := o.read(name)
	switch {
	case err != nil:
		return "", c, err
	case typ == "":
		return "", c, nil
	case typ != "commit":
		return "", c, fmt.Errorf("gitstage: %s is a %s, not a commit", name, typ)
	}
	return oid, parseCommit(data), nil
}

// tree reads a tree's entries.
func (o *objects) tree(oid string) ([]treeEntry, error) {
	if oid == emptyTree {
		return nil, nil
	}
	if t, ok := o.trees[oid]; ok {
		return t, nil
	}
	typ, _, data, err := o.read(oid)
	switch {
	case err != nil:
		return nil, err
	case typ != "tree":
		return nil, fmt.Errorf("gitstage: tree %s is not in the clone", oid)
	}
	t, err := parseTree(data)
	if err != nil {
		return nil, fmt.Errorf("gitstage: tree %s: %w", oid, err)
	}
	if len(o.trees) >= maxCachedTrees {
		// A drain of a first mirror reads a new root and new parents
		// each batch; the old ones are not read again.
		clear(o.trees)
	}
	o.trees[oid] = t
	return t, nil
}

// lookup finds the entry at a slash-separated path under tree; ok is
// false when there is none.
func (o *objects) lookup(tree, path string) (e treeEntry, ok bool, err error) {
	for {
		name, rest, more := strings.Cut(path, "/")
		entries, err := o.tree(tree)
		if err != nil {
			return e, false, err
		}
		e, ok = findEntry(entries, name)
		if !ok || !more {
			return e, ok, nil
		}
		if !e.isTree() {
			return e, false, nil
		}
		tree, path = e.oid, rest
	}
}

// commitInfo is what the stage reads of a commit.
type commitInfo struct {
	tree              string
	msg               string
	author, committer ident
}

func parseCommit(data []byte) commitInfo {
	var c commitInfo
	head, body, _ := strings.Cut(string(data), "\n\n")
	c.msg = body
	for _, line := range strings.Split(head, "\n") {
		k, v, _ := strings.Cut(line, " ")
		switch k {
		case "tree":
			if c.tree == "" {
				c.tree = v
			}
		case "author":
			c.author = parseIdent(v)
		case "committer":
			c.committer = parseIdent(v)
		}
	}
	return c
}

// writeObject writes an object of the clone as a loose object, as git
// hash-object -w does, and returns its id; an object already there is not
// written again.
func (r *Repo) writeObject(typ string, data []byte) (string, error) {
	h := sha1.New()
	hdr := append(strconv.AppendInt([]byte(typ+" "), int64(len(data)), 10), 0)
	h.Write(hdr)
	h.Write(data)
	oid := hex.EncodeToString(h.Sum(nil))
	dir := filepath.Join(r.dir, "objects")
	if _, err := os.Stat(filepath.Join(dir, oid[:2], oid[2:])); err == nil {
		return oid, nil
	}
	b, err := r.newObject(typ, int64(len(data)))
	if err != nil {
		return "", err
	}
	b.Write(data)
	got, err := b.Close()
	if err == nil && got != oid {
		err = fmt.Errorf("gitstage: %s %s written as %s", typ, oid, got)
	}
	return oid, err
}

var errNotTree = errors.New("not a tree")

// maxCachedTrees bounds what a hold remembers of the trees it read.
const maxCachedTrees = 1024
