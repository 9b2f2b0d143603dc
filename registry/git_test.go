package registry

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"ferry/entry"
)

// pendingRow is one git_pending row as the tests compare it.
type pendingRow struct {
	Path  string
	Blob  string
	Dirty int64
	Batch int64
}

func pendingRows(t *testing.T, j *Job) []pendingRow {
	t.Helper()
	rows, err := j.db.sql.Query(`SELECT path, blob, dirty_since, batch FROM git_pending WHERE job = ? ORDER BY batch, path`, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []pendingRow
	for rows.Next() {
		var r pendingRow
		if err := rows.Scan(&r.Path, &r.Blob, &r.Dirty, &r.Batch); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// gitJob opens a job whose clock reads *now (unix ns).
func gitJob(t *testing.T) (*DB, *Job, *int64) {
	t.Helper()
	db, j := open(t)
	now := int64(1000)
	j.now = func() time.Time { return time.Unix(0, now) }
	return db, j, &now
}

func put(e entry.Entry) op   { return op{kind: opPut, e: e} }
func plan(e entry.Entry) op  { return op{kind: opPlan, e: e} }
func forget(p string) op     { return op{kind: opDelete, e: entry.Entry{Path: p}} }
func done(p, blob string) op { return put(file(p, entry.Done, blob, 0)) }
func apply(t *testing.T, j *Job, ops ...op) {
	t.Helper()
	if err := j.apply(ops); err != nil {
		t.Fatal(err)
	}
}

func file(p string, s entry.State, blob string, dirty int64) entry.Entry {
	return entry.Entry{Path: p, LocalSize: 1, RemoteSize: 1, Hash: "h", State: s, GitBlob: blob, DirtySince: dirty}
}

// opClearGit, a test-only step, drops the pending rows the earlier steps
// made, so a case shows only what its last writes record.
const opClearGit opKind = 100

var (
	clearGit   = op{kind: opClearGit}
	tempA      = entry.TempPrefix + "0123456789ab-a"
	forgetTemp = forget(tempA)
)

// TestGitPendingWithTheEntry: what each write records for the Git stage,
// in the writer's transaction, and what it leaves in the entry's blob.
// Each step is one writer batch; the clock reads 1000 + 100 per step.
func TestGitPendingWithTheEntry(t *testing.T) {
	pendingA := put(file("a", entry.Pending, "", 50)) // planned at 50, never shipped
	shippedA := done("a", "b1")
	tests := []struct {
		name  string
		steps [][]op
		want  []pendingRow
		blob  string // a's git_blob after the steps ("-" = no row)
	}{
		{"a shipped version, dated when first out of sync",
			[][]op{{pendingA}, {shippedA}}, []pendingRow{{"a", "b1", 50, 0}}, "b1"},
		{"shipped with no out-of-sync date: the ship's",
			[][]op{{shippedA}}, []pendingRow{{"a", "b1", 1000, 0}}, "b1"},
		{"a touch (same blob) is not a change",
			[][]op{{shippedA}, {clearGit}, {done("a", "b1")}}, nil, "b1"},
		{"shipped again before a batch: one row, latest blob, first date",
			[][]op{{pendingA}, {shippedA}, {put(file("a", entry.Pending, "b1", 900))}, {done("a", "b2")}},
			[]pendingRow{{"a", "b2", 50, 0}}, "b2"},
		{"shipped back to the first blob is a change again",
			[][]op{{shippedA}, {done("a", "b2")}, {done("a", "b1")}}, []pendingRow{{"a", "b1", 1000, 0}}, "b1"},
		{"a plan from a fresh struct keeps the shipped blob",
			[][]op{{shippedA}, {clearGit}, {plan(file("a", entry.Pending, "", 1200))}, {forget("a")}},
			[]pendingRow{{"a", "", 1200, 0}}, "-"},
		{"a failure keeps the shipped blob",
			[][]op{{shippedA}, {clearGit}, {put(file("a", entry.Failed, "", 1200))}}, nil, "b1"},
		{"a Done write without a blob (no stage, an adoption) keeps it",
			[][]op{{shippedA}, {clearGit}, {done("a", "")}}, nil, "b1"},
		{"a pending row carrying a blob does not pre-empt the ship",
			[][]op{{put(file("a", entry.Pending, "b1", 50))}, {shippedA}}, []pendingRow{{"a", "b1", 50, 0}}, "b1"},
		{"forgetting a shipped path is a deletion",
			[][]op{{shippedA}, {clearGit}, {put(file("a", entry.Pending, "b1", 1150))}, {forget("a")}},
			[]pendingRow{{"a", "", 1150, 0}}, "-"},
		{"forgetting a shipped Done path: dated now",
			[][]op{{shippedA}, {clearGit}, {forget("a")}}, []pendingRow{{"a", "", 1200, 0}}, "-"},
		{"forgetting a never-shipped path or a temporary file records nothing",
			[][]op{{pendingA, put(entry.Entry{Path: tempA, LocalSize: -1, RemoteSize: 3, State: entry.Pending, Action: entry.Cleanup})},
				{forget("a"), forget("nothing"), forgetTemp}}, nil, "-"},
		{"shipped again after a deletion replaces the deletion",
			[][]op{{shippedA}, {clearGit}, {forget("a")}, {done("a", "b2")}}, []pendingRow{{"a", "b2", 1200, 0}}, "b2"},
		{"forget and ship in one batch",
			[][]op{{shippedA}, {clearGit}, {forget("a"), done("a", "b2")}}, []pendingRow{{"a", "b2", 1200, 0}}, "b2"},
		{"a file replaced by a directory: deleted once the directory is made",
			[][]op{{shippedA}, {clearGit},
				{put(entry.Entry{Path: "a", IsDir: true, LocalSize: -1, RemoteSize: 1, State: entry.Pending, Action: entry.Mkdir, DirtySince: 1150})},
				{put(entry.Entry{Path: "a", IsDir: true, LocalSize: -1, RemoteSize: -1, State: entry.Done, Action: entry.Mkdir})}},
			[]pendingRow{{"a", "", 1150, 0}}, ""},
		{"a directory made is no change",
			[][]op{{put(entry.Entry{Path: "a", IsDir: true, LocalSize: -1, RemoteSize: -1, State: entry.Done, GitBlob: "x"})}}, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			_, j, now := gitJob(t)
			for i, step := range tc.steps {
				*now = int64(1000 + 100*i)
				if len(step) == 1 && step[0].kind == opClearGit {
					if _, err := j.db.sql.Exec(`DELETE FROM git_pending`); err != nil {
						t.Fatal(err)
					}
					continue
				}
				apply(t, j, step...)
			}
			if got := pendingRows(t, j); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("pending = %+v, want %+v", got, tc.want)
			}
			e, ok, err := j.Get(ctx, "a")
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.blob == "-" && ok:
				t.Errorf("a is recorded: %+v", e)
			case tc.blob != "-" && (!ok || e.GitBlob != tc.blob):
				t.Errorf("a = %+v (recorded %v), want git blob %q", e, ok, tc.blob)
			}
		})
	}
}

// TestGitBlobReadWithTheEntry: every read of an entry carries its blob
// (a worker's write of a claimed row must not lose it).
func TestGitBlobReadWithTheEntry(t *testing.T) {
	ctx := context.Background()
	_, j, _ := gitJob(t)
	apply(t, j, done("d/a", "ba"), done("d/b", "bb"))
	apply(t, j, put(file("d/a", entry.Pending, "", 10)), put(file("d/b", entry.Failed, "", 10)))
	got := map[string]string{}
	if err := j.Dir(ctx, "d", func(e entry.Entry) error { got["dir "+e.Path] = e.GitBlob; return nil }); err != nil {
		t.Fatal(err)
	}
	claimed, err := j.Claim(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	failed, err := j.Failures(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range append(claimed, failed...) {
		got[e.State.String()+" "+e.Path] = e.GitBlob
	}
	want := map[string]string{"dir d/a": "ba", "dir d/b": "bb", "transferring d/a": "ba", "failed d/b": "bb"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("blobs read = %v, want %v", got, want)
	}
}

// TestGitSameTransaction: a writer batch whose last write fails records
// neither its entries nor their pending rows, and one that commits
// records exactly one row per shipped version. A crash can lose a batch,
// never split one.
func TestGitSameTransaction(t *testing.T) {
	ctx := context.Background()
	_, j, _ := gitJob(t)
	// The registry has one connection: the temporary trigger is on it.
	if _, err := j.db.sql.Exec(`CREATE TEMP TRIGGER refuse BEFORE INSERT ON main.entry WHEN NEW.name = 'refused'
		BEGIN SELECT RAISE(ABORT, 'refused'); END`); err != nil {
		t.Fatal(err)
	}
	w := j.NewWriter(time.Hour, 1000)
	w.Put(file("a", entry.Done, "b1", 10))
	w.Put(file("refused", entry.Done, "b2", 10))
	if err := w.Close(); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("the batch committed: %v", err)
	}
	if _, ok, _ := j.Get(ctx, "a"); ok {
		t.Fatal("a is recorded from a batch that failed")
	}
	if got := pendingRows(t, j); got != nil {
		t.Fatalf("pending rows from a batch that failed: %+v", got)
	}

	w = j.NewWriter(time.Hour, 1000)
	w.Put(file("a", entry.Done, "b1", 10))
	w.Put(file("b", entry.Done, "b1", 20)) // same bytes, another path
	w.Put(file("c", entry.Pending, "", 30))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	want := []pendingRow{{"a", "b1", 10, 0}, {"b", "b1", 20, 0}}
	if got := pendingRows(t, j); !reflect.DeepEqual(got, want) {
		t.Fatalf("pending = %+v, want %+v", got, want)
	}
}

// ship records p shipped as blob, out of sync since dirty.
func ship(t *testing.T, j *Job, p, blob string, dirty int64) {
	t.Helper()
	apply(t, j, put(file(p, entry.Pending, "", dirty)), done(p, blob))
}

func paths(cs []GitChange) string {
	var s []string
	for _, c := range cs {
		s = append(s, fmt.Sprintf("%s=%s@%d", c.Path, c.Blob, c.DirtySince))
	}
	return strings.Join(s, " ")
}

// TestGitBatchOrder: batches take paths by the date they first went out of
// sync, so a path that keeps changing keeps its first date while it waits,
// and goes back in line (with its new date) once a batch took it: it
// neither jumps the queue nor starves the others.
func TestGitBatchOrder(t *testing.T) {
	ctx := context.Background()
	_, j, _ := gitJob(t)
	ship(t, j, "hot", "h1", 100)
	ship(t, j, "b", "b1", 150)
	ship(t, j, "c", "c1", 200)
	ship(t, j, "hot", "h2", 250) // changed again: still out of sync since 100
	ship(t, j, "hot", "h3", 300)
	at := time.Unix(0, 5000)
	for i, want := range []string{
		"hot=h3@100 b=b1@150",
		"c=c1@200 hot=h4@260", // shipped again after the first batch
	} {
		b, cs, err := j.GitOpenBatch(ctx, 2, at)
		if err != nil {
			t.Fatal(err)
		}
		if got := paths(cs); got != want || b.Files != len(cs) {
			t.Fatalf("batch %d (%d files) = %s, want %s", i+1, b.Files, got, want)
		}
		if i == 0 {
			ship(t, j, "hot", "h4", 260)
		}
		if err := j.GitCommitted(ctx, b.ID, fmt.Sprintf("commit%d", i+1), at); err != nil {
			t.Fatal(err)
		}
	}
	if b, cs, err := j.GitOpenBatch(ctx, 2, at); err != nil || b.ID != 0 || cs != nil {
		t.Fatalf("with nothing waiting: %+v %v %v", b, cs, err)
	}
	var n int
	j.db.sql.QueryRow(`SELECT COUNT(*) FROM git_batch`).Scan(&n)
	if n != 2 {
		t.Fatalf("%d batches recorded, want 2 (never an empty one)", n)
	}
}

// TestGitShippedAgainWhileBatched: a path shipped again while its batch is
// being committed gets a second, unbatched row; the batch keeps the bytes
// it took, and the next batch commits the newer ones.
func TestGitShippedAgainWhileBatched(t *testing.T) {
	ctx := context.Background()
	_, j, now := gitJob(t)
	ship(t, j, "a", "b1", 10)
	b, cs, err := j.GitOpenBatch(ctx, 100, time.Unix(0, 2000))
	if err != nil || paths(cs) != "a=b1@10" {
		t.Fatalf("first batch: %s, %v", paths(cs), err)
	}
	*now = 1100
	ship(t, j, "a", "b2", 20)
	*now = 1200
	apply(t, j, forget("a")) // gone since: the unbatched row becomes a deletion
	*now = 1300
	ship(t, j, "a", "b3", 30) // and back
	ship(t, j, "a", "b4", 40) // edited again
	want := []pendingRow{{"a", "b4", 20, 0}, {"a", "b1", 10, b.ID}}
	if got := pendingRows(t, j); !reflect.DeepEqual(got, want) {
		t.Fatalf("pending = %+v, want %+v", got, want)
	}
	if n, oldest, err := j.GitWaiting(ctx); err != nil || n != 1 || oldest.UnixNano() != 1000 {
		t.Fatalf("waiting = %d since %v, %v; want 1 path since 1000 (the batch's)", n, oldest.UnixNano(), err)
	}
	again, cs, err := j.GitOpenBatch(ctx, 100, time.Unix(0, 3000))
	if err != nil || again != b || paths(cs) != "a=b1@10" {
		t.Fatalf("uncommitted batch again = %+v %s, %v; want %+v a=b1@10", again, paths(cs), err, b)
	}
	if err := j.GitCommitted(ctx, b.ID, "c1", time.Unix(0, 3000)); err != nil {
		t.Fatal(err)
	}
	if n, oldest, err := j.GitWaiting(ctx); err != nil || n != 1 || oldest.UnixNano() != 1100 {
		t.Fatalf("waiting = %d since %v, %v; want 1 path since 1100 (its first ship after the batch)", n, oldest.UnixNano(), err)
	}
	next, cs, err := j.GitOpenBatch(ctx, 100, time.Unix(0, 4000))
	if err != nil || next.ID == b.ID || paths(cs) != "a=b4@20" {
		t.Fatalf("next batch = %+v %s, %v; want a=b4@20", next, paths(cs), err)
	}
}

// TestGitMovePrefix: a directory rename is, for Git, each file's deletion
// at its old path and the same blob at the new one, in the move's
// transaction; files never shipped to Git and rows already in a batch are
// left alone.
func TestGitMovePrefix(t *testing.T) {
	ctx := context.Background()
	_, j, now := gitJob(t)
	apply(t, j,
		put(entry.Entry{Path: "docs", IsDir: true, LocalSize: -1, RemoteSize: -1, State: entry.Done}),
		put(entry.Entry{Path: "docs/sub", IsDir: true, LocalSize: -1, RemoteSize: -1, State: entry.Done}),
		put(file("docs/a", entry.Pending, "", 10)), done("docs/a", "ba"),
		done("docs/sub/b", "bb"),
		put(file("docs/sub/c", entry.Pending, "", 30)), // never shipped
		done("docsx/d", "bd"),
	)
	b, _, err := j.GitOpenBatch(ctx, 1, time.Unix(0, 1500)) // takes docs/a
	if err != nil {
		t.Fatal(err)
	}
	*now = 2000
	if n, err := j.MovePrefix(ctx, "docs", "manual"); err != nil || n != 3 {
		t.Fatalf("MovePrefix = %d, %v", n, err)
	}
	want := []pendingRow{
		{"docs/a", "", 2000, 0},     // a Done row: dated by the move
		{"docs/sub/b", "", 1000, 0}, // its unbatched addition is now a deletion
		{"docsx/d", "bd", 1000, 0},
		{"manual/a", "ba", 2000, 0},
		{"manual/sub/b", "bb", 2000, 0},
		{"docs/a", "ba", 10, b.ID},
	}
	if got := pendingRows(t, j); !reflect.DeepEqual(got, want) {
		t.Fatalf("pending = %+v\nwant      %+v", got, want)
	}
	if e, _, _ := j.Get(ctx, "manual/sub/b"); e.GitBlob != "bb" {
		t.Fatalf("moved entry = %+v", e)
	}
}

// TestGitBatchSurvivesACrash: a batch taken and not committed when the
// process dies is the batch the next start commits, with the same rows.
func TestGitBatchSurvivesACrash(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	j, _ := db.Job(ctx, "site", "/src", "ftp://h/x")
	for i, p := range []string{"a", "b", "c"} {
		ship(t, j, p, "b-"+p, int64(10*(i+1)))
	}
	b, cs, err := j.GitOpenBatch(ctx, 2, time.Unix(0, 5000))
	if err != nil || len(cs) != 2 {
		t.Fatalf("batch %+v %s, %v", b, paths(cs), err)
	}
	ship(t, j, "a", "b-a2", 40)
	db.Close()

	db, err = Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	j, _ = db.Job(ctx, "site", "/src", "ftp://h/x")
	again, cs2, err := j.GitOpenBatch(ctx, 100, time.Unix(0, 9000))
	if err != nil || again != b || !reflect.DeepEqual(cs2, cs) {
		t.Fatalf("after reopen: %+v %s, %v; want %+v %s", again, paths(cs2), err, b, paths(cs))
	}
	if n, _, _ := j.GitWaiting(ctx); n != 3 {
		t.Fatalf("waiting = %d, want 3 (a twice, b, c)", n)
	}
}

// TestGitCommittedPushedAndStatus: batches committed and not pushed are
// listed for the next push; a push marks the batch and the earlier ones;
// status gives the figures.
func TestGitCommittedPushedAndStatus(t *testing.T) {
	ctx := context.Background()
	_, j, _ := gitJob(t)
	if s, err := j.GitStatus(ctx); err != nil || s != (GitStatus{}) {
		t.Fatalf("status of a new job = %+v, %v", s, err)
	}
	var ids []int64
	for i := range 3 {
		ship(t, j, fmt.Sprintf("f%d", i), "b", int64(i+1))
		b, _, err := j.GitOpenBatch(ctx, 10, time.Unix(0, 100))
		if err != nil {
			t.Fatal(err)
		}
		if err := j.GitCommitted(ctx, b.ID, fmt.Sprintf("c%d", i), time.Unix(0, int64(200+i))); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, b.ID)
	}
	ship(t, j, "w", "b", 7) // waiting, shipped at 1000
	if err := j.GitFailed(ctx, ids[1], "push: rejected"); err != nil {
		t.Fatal(err)
	}
	un, err := j.GitUnpushed(ctx)
	if err != nil || len(un) != 3 || un[0].ID != ids[0] || un[2].Commit != "c2" || un[1].Error != "push: rejected" || un[2].CommittedAt.UnixNano() != 202 {
		t.Fatalf("unpushed = %+v, %v", un, err)
	}
	want := GitStatus{Waiting: 1, WaitingSince: time.Unix(0, 1000), LastCommit: "c2", LastCommitAt: time.Unix(0, 202), LastError: "push: rejected", Unpushed: 3}
	if s, err := j.GitStatus(ctx); err != nil || s != want {
		t.Fatalf("status = %+v, %v\nwant %+v", s, err, want)
	}

	if err := j.GitPushed(ctx, ids[1], time.Unix(0, 300)); err != nil {
		t.Fatal(err)
	}
	if un, _ := j.GitUnpushed(ctx); len(un) != 1 || un[0].ID != ids[2] {
		t.Fatalf("unpushed after pushing the second = %+v", un)
	}
	want.LastPushAt, want.LastError, want.Unpushed = time.Unix(0, 300), "", 1
	if s, err := j.GitStatus(ctx); err != nil || s != want {
		t.Fatalf("status = %+v, %v\nwant %+v", s, err, want)
	}
	if got := pendingRows(t, j); len(got) != 2 || got[0].Path != "w" || got[1].Path != "f2" {
		t.Fatalf("pending after the push = %+v; want w and the unpushed f2", got)
	}
	if cs, err := j.GitChanges(ctx, ids[2]); err != nil || paths(cs) != "f2=b@3" {
		t.Fatalf("changes of the unpushed batch = %s, %v", paths(cs), err)
	}
	if err := j.GitCommitted(ctx, ids[0], "again", time.Unix(0, 400)); err == nil {
		t.Fatal("a pushed batch was committed again")
	}
	if err := j.GitCommitted(ctx, ids[2], "c2-rebuilt", time.Unix(0, 400)); err != nil {
		t.Fatalf("rebuilding an unpushed batch: %v", err)
	}
	if err := j.GitPushedThrough(ctx, "c2", time.Unix(0, 500)); err == nil {
		t.Fatal("a replaced commit was marked pushed")
	}
	if err := j.GitPushedThrough(ctx, "c2-rebuilt", time.Unix(0, 500)); err != nil {
		t.Fatal(err)
	}
	if un, _ := j.GitUnpushed(ctx); len(un) != 0 {
		t.Fatalf("unpushed = %+v", un)
	}
	open, _, err := j.GitOpenBatch(ctx, 10, time.Unix(0, 600))
	if err != nil {
		t.Fatal(err)
	}
	if err := j.GitPushed(ctx, open.ID, time.Unix(0, 700)); err == nil {
		t.Fatal("a batch not committed was marked pushed")
	}
}
