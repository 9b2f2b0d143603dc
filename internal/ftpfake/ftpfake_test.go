package ftpfake_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"ferry/internal/ftpfake"
	"ferry/remote"
	"ferry/remote/ftp"
	"ferry/remote/remotetest"
)

// start serves a temporary directory, closed with the test.
func start(t *testing.T, o ftpfake.Options) *ftpfake.Server {
	t.Helper()
	if o.Root == "" {
		o.Root = t.TempDir()
	}
	if testing.Verbose() && o.Logf == nil {
		o.Logf = t.Logf
	}
	s, err := ftpfake.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func dial(t testing.TB, s *ftpfake.Server, p string) remote.Conn {
	t.Helper()
	tg, err := remote.ParseURL(s.URL(p))
	if err != nil {
		t.Fatal(err)
	}
	c, err := ftp.Open(context.Background(), tg, remote.Options{Password: ftpfake.Password})
	if err != nil {
		t.Fatalf("open %s: %v", s.URL(p), err)
	}
	return c
}

// TestConformance: without faults, the fake passes the suite every backend
// passes against its real server, so what goes wrong under faults is the
// faults' doing.
func TestConformance(t *testing.T) {
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "suite"), 0o755); err != nil {
		t.Fatal(err)
	}
	s := start(t, ftpfake.Options{Root: root})
	remotetest.Run(t, remotetest.Harness{
		Open: func(t testing.TB) remote.Conn { return dial(t, s, "/suite") },
		ReadFile: func(rel string) ([]byte, error) {
			return os.ReadFile(filepath.Join(root, "suite", filepath.FromSlash(rel)))
		},
		LargeSize: 8 << 20,
	})
}

// TestCloseEndsSessions: Close returns with a session open, and the
// client sees its session gone.
func TestCloseEndsSessions(t *testing.T) {
	s := start(t, ftpfake.Options{})
	c := dial(t, s, "/")
	defer c.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Stat(context.Background(), "x"); !remote.SessionLost(err) {
		t.Fatalf("stat after Close: %v; want a lost session", err)
	}
}

// TestRandomIsSeeded: the same seed breaks the same commands.
func TestRandomIsSeeded(t *testing.T) {
	a, b := ftpfake.Random(7, 0.1), ftpfake.Random(7, 0.1)
	n := 0
	for i := 1; i <= 2000; i++ {
		c := ftpfake.Command{Session: 1 + i%5, Seq: i, Verb: "NOOP"}
		fa := a(c)
		if fa != b(c) {
			t.Fatalf("command %+v: %v, then %v", c, fa, b(c))
		}
		if fa != ftpfake.NoFault {
			n++
		}
	}
	if n < 150 || n > 250 {
		t.Fatalf("%d of 2000 commands broken at rate 0.1", n)
	}
}
