package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestKillDaemon SIGKILLs `ferry --config` while a burst of saves ships
// live, three times per server, restarting it each time, on vsftpd and on
// OpenSSH. Counted from the server's log: after a restart, no file the
// remote held complete at the kill is uploaded again, and every file
// arrives, byte for byte, and no daemon uploads one file twice in its life
// (each file is written once: a live change and the scan of its new
// directory both planning it must still ship it once).
func TestKillDaemon(t *testing.T) {
	const rounds, perRound = 3, 150
	for _, k := range killTargets(t) {
		t.Run(k.name, func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, "src")
			writeFile(t, filepath.Join(src, "seed.txt"), "seed")
			cfg := writeConfig(t, dir, liveServer{target: k.target, keys: k.keys}, "")
			stage := t.TempDir() // saves are written here and renamed in, whole
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
			env := k.env

			d := startDaemon(t, cfg, env)
			life := map[string]int{} // uploads per path in this daemon's life
			var was map[string]bool  // complete on the remote at the last kill
			files, resent, twice := 1, 0, 0
			count := func(ups []string) {
				for _, p := range ups {
					life[p]++
					if life[p] == 2 {
						twice++
						t.Errorf("%s was uploaded twice by one daemon", p)
					}
					if was[p] {
						resent++
						t.Errorf("%s was complete on the remote when the daemon was killed, and uploaded again after the restart", p)
					}
				}
			}
			k.next(t) // the seed's upload
			for r := 0; r < rounds; r++ {
				// The burst: perRound new files, each written whole.
				for i := 0; i < perRound; i++ {
					rel := fmt.Sprintf("r%d/d%d/f%03d.dat", r, i%5, i)
					tmp := filepath.Join(stage, fmt.Sprintf("%d-%d", r, i))
					writeFile(t, tmp, string(make([]byte, 1+rng.IntN(8<<10))))
					if err := os.MkdirAll(filepath.Dir(filepath.Join(src, rel)), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.Rename(tmp, filepath.Join(src, rel)); err != nil {
						t.Fatal(err)
					}
				}
				files += perRound
				// Killed once some of it has shipped, most of it not.
				n := 1 + rng.IntN(perRound/2)
				var ups []string
				deadline := time.Now().Add(2 * time.Minute)
				for len(ups) < n {
					if time.Now().After(deadline) {
						t.Fatalf("round %d: %d of %d uploads after 2 minutes\n%s", r, len(ups), n, d.log)
					}
					time.Sleep(2 * time.Millisecond)
					ups = append(ups, k.next(t)...)
				}
				d.cmd.Process.Signal(syscall.SIGKILL)
				<-d.done
				d.code = 128 + int(syscall.SIGKILL) // not -1, which means "running" to its cleanup
				if err := k.idle(30 * time.Second); err != nil {
					t.Fatal(err)
				}
				count(append(ups, k.next(t)...))
				was = complete(t, src, k.disk)
				t.Logf("round %d: killed after %d uploads; %d of %d files complete on the remote", r, len(ups), len(was), files)

				life = map[string]int{}
				d = startDaemon(t, cfg, env) // its first scan settles what the dead one left
				waitComplete(t, src, k.disk, files, 2*time.Minute)
				count(k.next(t))
				was = nil
			}
			if code := d.stop(t, 30*time.Second); code != 0 {
				t.Fatalf("SIGTERM: exit %d\n%s", code, d.log)
			}
			if err := k.idle(30 * time.Second); err != nil {
				t.Fatal(err)
			}
			count(k.next(t))
			t.Logf("%s: %d kills; files uploaded twice by one daemon: %d; complete at the kill and uploaded again: %d", k.name, rounds, twice, resent)
			if got := complete(t, src, k.disk); len(got) != files {
				t.Fatalf("the remote holds %d of the %d files byte for byte", len(got), files)
			}
			noTemps(t, k.disk)
		})
	}
}

// waitComplete waits until the remote holds all n files of src.
func waitComplete(t *testing.T, src, disk string, n int, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for len(complete(t, src, disk)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d files on the remote after %v", len(complete(t, src, disk)), n, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
