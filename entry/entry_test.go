package entry

import (
	"errors"
	"testing"
)

// TestTransitions: done clears what an attempt left; failed adds the
// attempts and keeps the reason; a deferred action waits in its lane; a
// kept directory is in sync as one ferry made.
func TestTransitions(t *testing.T) {
	e := Entry{Path: "a", State: Pending, Attempts: 2, LastError: "x", DirtySince: 5, Recheck: true, RemoteSize: 3}
	f := e
	f.MarkFailed(3, errors.New("550 denied"))
	if f.State != Failed || f.Attempts != 5 || f.LastError != "550 denied" || f.DirtySince != 5 {
		t.Fatalf("MarkFailed: %+v", f)
	}
	e.MarkDone()
	if e != (Entry{Path: "a", State: Done, RemoteSize: 3}) {
		t.Fatalf("MarkDone: %+v", e)
	}
	d := Entry{Path: "old", IsDir: true, State: Transferring, Action: Delete, Lane: LaneDirDeletes, RemoteSize: -1}
	h := d
	h.Defer()
	if h.State != Pending || h.Action != Delete || h.Lane != LaneDirDeletes {
		t.Fatalf("Defer: %+v", h)
	}
	d.KeepDir()
	if d.State != Done || d.Action != Mkdir || d.Lane != 0 || !d.Shipped() {
		t.Fatalf("KeepDir: %+v", d)
	}
}
