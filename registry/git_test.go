package registry

import (
	"context"
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
