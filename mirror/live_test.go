package mirror

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"ferry/remote"
	"ferry/remote/mem"
)

// TestLiveSaveDuringUpload: a file saved again while the upload of its
// previous save is under way is planned from a record that the upload then
// makes out of date (the remote copy it describes is replaced). The second
// save must still be shipped: not adopted because the server's one-second
// mtimes cannot tell the two saves apart (same size, same second), and not
// taken for someone else's change and moved aside as a conflict.
func TestLiveSaveDuringUpload(t *testing.T) {
	base := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		third string // the save made while the second one is shipped
	}{
		{"same size in the same second", "save 333.\n"},
		{"another size", "the third save, longer\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			fs := mem.New()
			fs.Caps.ModTimePrecision, fs.Caps.ListModTimePrecision = time.Second, time.Second // as SFTP
			e := baseEnv(t, "mem")
			e.target, e.open = &remote.Target{Scheme: "mem", Path: "/site"}, fs.Open
			p := filepath.Join(e.src, "page.html")
			save := func(body string, mtime time.Time) {
				t.Helper()
				// As editors save: a new file renamed over the old one.
				tmp := p + ".swp"
				if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Chtimes(tmp, mtime, mtime); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(tmp, p); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.MkdirAll(e.src, 0o755); err != nil {
				t.Fatal(err)
			}
			save("save one.\n", base.Add(100*time.Millisecond))
			e.mustRun(nil)

			s, _, err := Open(ctx, e.options())
			if err != nil {
				t.Fatal(err)
			}
			l := s.Live(LiveOptions{})
			var wg sync.WaitGroup
			wg.Go(func() { _ = l.Serve(ctx) })
			defer func() {
				cancel()
				wg.Wait()
				s.Close()
			}()
			changed := func() {
				t.Helper()
				if err := l.Sync(ctx); err != nil {
					t.Fatal(err)
				}
				if _, err := l.Changed(ctx, "page.html", time.Now()); err != nil {
					t.Fatal(err)
				}
			}

			// The upload of the second save is held once it has the file
			// open, before its bytes go.
			held, release := make(chan struct{}), make(chan struct{})
			var once sync.Once
			fs.Update(func() {
				fs.FailPut = func(string) error {
					once.Do(func() {
						close(held)
						<-release
					})
					return nil
				}
			})
			save("save two.\n", base.Add(3*time.Second+100*time.Millisecond))
			changed()
			<-held
			save(tc.third, base.Add(3*time.Second+600*time.Millisecond))
			changed() // planned while the second save is in flight
			close(release)
			if err := l.Queue().WaitIdle(ctx); err != nil {
				t.Fatal(err)
			}
			got, err := fs.ReadFile("site/page.html")
			if err != nil || string(got) != tc.third {
				t.Errorf("the remote holds %q (%v), want the third save %q\nlog:\n%s", got, err, tc.third, e.logs)
			}
			for name := range fs.Tree() {
				if strings.Contains(name, "conflict") {
					t.Errorf("the remote holds %s: ferry's own copy taken for someone else's\nlog:\n%s", name, e.logs)
				}
			}
		})
	}
}

// TestLiveSavesRacingUploads: forty saves of one file, each of the same
// size and each made while the previous one may be on its way, each
// reported as the watcher would. Whatever order the worker's record of an
// upload and the plan of the next save reach the registry in, the remote
// ends with the last save and no conflict copy (a plan written after the
// worker's record used to put the old remote side back, and the next
// upload took ferry's own copy for someone else's).
func TestLiveSavesRacingUploads(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fs := mem.New()
	fs.Caps.ModTimePrecision, fs.Caps.ListModTimePrecision = time.Second, time.Second // as SFTP
	e := baseEnv(t, "mem")
	e.target, e.open = &remote.Target{Scheme: "mem", Path: "/site"}, fs.Open
	if err := os.MkdirAll(e.src, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(e.src, "page.html")
	base := time.Now().Truncate(time.Second)
	save := func(i int) string {
		t.Helper()
		body := fmt.Sprintf("save %03d\n", i)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		// Ten saves per second: neighbours share the server's mtime second.
		m := base.Add(time.Duration(i) * 100 * time.Millisecond)
		if err := os.Chtimes(p, m, m); err != nil {
			t.Fatal(err)
		}
		return body
	}
	save(0)
	e.mustRun(nil)
	fs.Update(func() {
		fs.FailPut = func(string) error { time.Sleep(time.Millisecond); return nil }
	})

	s, _, err := Open(ctx, e.options())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l := s.Live(LiveOptions{})
	var wg sync.WaitGroup
	sctx, stop := context.WithCancel(ctx)
	wg.Go(func() { _ = l.Serve(sctx) })
	defer func() {
		stop()
		wg.Wait()
	}()
	var last string
	for i := 1; i <= 40; i++ {
		last = save(i)
		if err := l.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Changed(ctx, "page.html", time.Now()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(i%3) * time.Millisecond)
	}
	if err := l.Queue().WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := fs.ReadFile("site/page.html")
	if err != nil || string(got) != last {
		t.Errorf("the remote holds %q (%v), want the last save %q\nlog:\n%s", got, err, last, e.logs)
	}
	for name := range fs.Tree() {
		if strings.Contains(name, "conflict") {
			t.Errorf("the remote holds %s: ferry's own copy taken for someone else's\nlog:\n%s", name, e.logs)
		}
	}
}
