package entry

import (
	"errors"
	"testing"
)

// TestTransitions: done clears what an attempt left; failed adds the
// attempts and keeps the reason.
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
}
