package registry

import (
	"context"
	"database/sql"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"ferry/entry"
)

// execRows is each git_pending row as "path blob exec".
func execRows(t *testing.T, j *Job) []string {
	t.Helper()
	rows, err := j.db.sql.Query(`SELECT path, blob, exec FROM git_pending WHERE job = ? ORDER BY batch, path`, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var p, b string
		var x bool
		if err := rows.Scan(&p, &b, &x); err != nil {
			t.Fatal(err)
		}
		out = append(out, p+" "+b+" "+map[bool]string{true: "x", false: "-"}[x])
	}
	return out
}

func shipExec(p, blob string, exec bool) op {
	e := file(p, entry.Done, blob, 0)
	e.GitExec = exec
	return put(e)
}

// TestGitExecWithTheEntry: the execute bit a worker saw when it read the
// bytes is recorded with the blob, in the entry and in its pending row,
// read back with every read of the entry and with the batch, kept by the
// writes that keep the blob, carried by a directory rename, and a change
// of it alone (the same bytes shipped again) is a change for Git. It
// survives a restart.
func TestGitExecWithTheEntry(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	j, err := db.Job(ctx, "site", "/src", "ftp://h/x")
	if err != nil {
		t.Fatal(err)
	}
	apply(t, j, shipExec("bin/run", "br", true), shipExec("index", "bi", false))
	if got, want := execRows(t, j), []string{"bin/run br x", "index bi -"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("pending = %q, want %q", got, want)
	}
	execOf := func(p string) bool {
		t.Helper()
		e, ok, err := j.Get(ctx, p)
		if err != nil || !ok {
			t.Fatalf("%s: %v, %v", p, ok, err)
		}
		return e.GitExec
	}
	if !execOf("bin/run") || execOf("index") {
		t.Fatal("the entries lost their execute bits")
	}
	b, cs, err := j.GitOpenBatch(ctx, 10, time.Unix(0, 5000))
	if err != nil || len(cs) != 2 || !cs[0].Exec || cs[1].Exec || cs[0].Path != "bin/run" {
		t.Fatalf("batch %+v, %v", cs, err)
	}
	if err := j.GitCommitted(ctx, b.ID, "c1", time.Unix(0, 5000)); err != nil {
		t.Fatal(err)
	}
	if err := j.GitPushed(ctx, b.ID, time.Unix(0, 5000)); err != nil {
		t.Fatal(err)
	}

	// A touch (no bytes read), a failure, a plan: the bit stays.
	apply(t, j, put(file("bin/run", entry.Pending, "", 10)))
	apply(t, j, put(file("bin/run", entry.Failed, "", 10)))
	apply(t, j, put(file("bin/run", entry.Done, "", 0)))
	if !execOf("bin/run") {
		t.Fatal("a write that keeps the blob dropped the bit")
	}
	// The same bytes again with the same bit: nothing for Git. The same
	// bytes with the bit cleared, and set: each a change.
	apply(t, j, shipExec("bin/run", "br", true))
	if got := execRows(t, j); got != nil {
		t.Fatalf("the same version again made a row: %q", got)
	}
	apply(t, j, shipExec("bin/run", "br", false), shipExec("index", "bi", true))
	if got, want := execRows(t, j), []string{"bin/run br -", "index bi x"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("pending = %q, want %q", got, want)
	}
	if execOf("bin/run") || !execOf("index") {
		t.Fatal("the entries do not have the bits last shipped")
	}

	// Claimed rows carry it (a worker's write of one must not lose it).
	apply(t, j, shipExec("bin/tool", "bt", true))
	apply(t, j, put(file("bin/tool", entry.Pending, "", 20)))
	claimed, err := j.Claim(ctx, 0, 10)
	if err != nil || len(claimed) != 1 || !claimed[0].GitExec {
		t.Fatalf("claimed %+v, %v", claimed, err)
	}
	var inDir []string
	if err := j.Dir(ctx, "bin", func(e entry.Entry) error {
		if e.GitExec {
			inDir = append(inDir, e.Path)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(inDir, []string{"bin/tool"}) {
		t.Fatalf("executables read by Dir: %q", inDir)
	}

	// A directory rename: the deletion is not executable, the new path
	// is what the old one was.
	if _, err := db.sql.Exec(`DELETE FROM git_pending`); err != nil {
		t.Fatal(err)
	}
	apply(t, j, put(entry.Entry{Path: "bin", IsDir: true, LocalSize: -1, RemoteSize: -1, State: entry.Done}),
		shipExec("bin/tool", "bt", true))
	if _, err := db.sql.Exec(`DELETE FROM git_pending`); err != nil {
		t.Fatal(err)
	}
	if _, err := j.MovePrefix(ctx, "bin", "sbin"); err != nil {
		t.Fatal(err)
	}
	if got, want := execRows(t, j), []string{"bin/run  -", "bin/tool  -", "sbin/run br -", "sbin/tool bt x"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after the rename: pending = %q, want %q", got, want)
	}
	db.Close()

	db, err = Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	j, _ = db.Job(ctx, "site", "/src", "ftp://h/x")
	if !execOf("sbin/tool") || execOf("sbin/run") {
		t.Fatal("the bits did not survive a restart")
	}
	_, cs, err = j.GitOpenBatch(ctx, 10, time.Unix(0, 9000))
	if err != nil || len(cs) != 4 || cs[3].Path != "sbin/tool" || !cs[3].Exec || cs[2].Exec {
		t.Fatalf("batch after a restart %+v, %v", cs, err)
	}
}

// TestGitExecMigration: a registry written before the bit was recorded
// opens with every entry and pending row not executable.
func TestGitExecMigration(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	j, _ := db.Job(ctx, "site", "/src", "ftp://h/x")
	ship(t, j, "a", "ba", 10)
	db.Close()
	// Back to schema 3: the columns gone, the version with them.
	raw, err := sql.Open("sqlite", filepath.Join(dir, DBFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`ALTER TABLE entry DROP COLUMN git_exec`, `ALTER TABLE git_pending DROP COLUMN exec`, `DELETE FROM schema_version WHERE version >= 4`} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	raw.Close()

	db, err = Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	j, _ = db.Job(ctx, "site", "/src", "ftp://h/x")
	if e, ok, err := j.Get(ctx, "a"); err != nil || !ok || e.GitBlob != "ba" || e.GitExec {
		t.Fatalf("a after the migration: %+v %v %v", e, ok, err)
	}
	if _, cs, err := j.GitOpenBatch(ctx, 10, time.Unix(0, 100)); err != nil || len(cs) != 1 || cs[0].Blob != "ba" || cs[0].Exec {
		t.Fatalf("batch after the migration: %+v, %v", cs, err)
	}
}
