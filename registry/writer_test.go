package registry

import (
	"context"
	"testing"
	"time"
)

// TestFlushWaitsForAFlushUnderWay: Flush returns once everything put before
// it is committed, also when a flush is under way that took its batch
// before (nothing pending, yet nothing committed) or before the latest Put
// (its end is not the end of the wait). The daemon flushes, then reads the
// row a worker has just recorded to plan the next save of that file.
func TestFlushWaitsForAFlushUnderWay(t *testing.T) {
	for _, tc := range []struct {
		name string
		add  bool // "b" is put after the flush of "a" took its batch
	}{
		{"nothing pending while a flush is under way", false},
		{"a change put while a flush is under way", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, j := open(t)
			entered := make(chan []op, 4)
			gate := make(chan struct{})
			w := j.newWriter(time.Hour, 1000, func(b []op) error {
				entered <- b
				select { // held until the test lets it go
				case <-gate:
				case <-ctx.Done():
				}
				return j.apply(b)
			})
			defer func() {
				cancel() // lets a held batch go
				w.Close()
			}()
			batch := func(want string) {
				t.Helper()
				if b := <-entered; len(b) != 1 || b[0].e.Path != want {
					t.Fatalf("batch = %v, want %s alone", b, want)
				}
			}

			w.Put(Entry{Path: "a", State: Done})
			first := make(chan error, 1)
			go func() { first <- w.Flush(ctx) }()
			batch("a") // the flush of "a" is under way, held
			last := "a"
			if tc.add {
				w.Put(Entry{Path: "b", State: Done})
				last = "b"
			}
			second := make(chan error, 1)
			go func() { second <- w.Flush(ctx) }()
			// The second Flush waits once it has poked the loop (the
			// first one's poke was taken when the flush of "a" began).
			for len(w.kick) == 0 {
				select {
				case err := <-second:
					t.Fatalf("Flush returned (%v) while %q was being committed", err, last)
				case <-ctx.Done():
					t.Fatal("the second Flush never poked the writer")
				case <-time.After(time.Millisecond):
				}
			}
			if tc.add {
				gate <- struct{}{} // "a" is committed, "b" not yet
				if err := <-first; err != nil {
					t.Fatal(err)
				}
				batch("b") // held
			}
			// Give the second Flush a moment to return wrongly: a slow
			// machine can hide the fault, never fail a correct writer.
			select {
			case err := <-second:
				t.Fatalf("Flush returned (%v) before %q was committed", err, last)
			case <-time.After(200 * time.Millisecond):
			}
			gate <- struct{}{}
			if err := <-second; err != nil {
				t.Fatal(err)
			}
			if e, ok, err := j.Get(ctx, last); err != nil || !ok || e.State != Done {
				t.Fatalf("after Flush, Get(%s) = %+v %v %v", last, e, ok, err)
			}
			if !tc.add {
				if err := <-first; err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
