package ftp_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"ferry/internal/testrig"
	"ferry/remote"
	"ferry/remote/ftp"
	"ferry/remote/remotetest"
)

// open dials srv as its test account, rooted at rel inside the FTP root.
func open(t testing.TB, srv *testrig.FTPServer, rel string, mutate func(*remote.Options)) (remote.Conn, error) {
	t.Helper()
	tg, err := remote.ParseURL(srv.URL(rel))
	if err != nil {
		t.Fatal(err)
	}
	o := remote.Options{Password: srv.Password, CAFile: srv.CAFile}
	if mutate != nil {
		mutate(&o)
	}
	return ftp.Open(context.Background(), tg, o)
}

func mustOpen(t testing.TB, srv *testrig.FTPServer, rel string) remote.Conn {
	t.Helper()
	c, err := open(t, srv, rel, nil)
	if err != nil {
		t.Fatalf("open %s: %v", srv.URL(rel), err)
	}
	return c
}

func conformance(t *testing.T, tlsOn bool) {
	srv := testrig.FTP(t, testrig.FTPOptions{TLS: tlsOn})
	if err := os.MkdirAll(filepath.Join(srv.Root, "suite"), 0o755); err != nil {
		t.Fatal(err)
	}
	acct, err := testrig.EnsureAccount()
	if err != nil {
		t.Fatal(err)
	}
	if err := acct.Chown(filepath.Join(srv.Root, "suite")); err != nil {
		t.Fatal(err)
	}
	remotetest.Run(t, remotetest.Harness{
		Open: func(t testing.TB) remote.Conn { return mustOpen(t, srv, "suite") },
		ReadFile: func(rel string) ([]byte, error) {
			return os.ReadFile(filepath.Join(srv.Root, "suite", filepath.FromSlash(rel)))
		},
	})
}

func TestConformanceVsftpd(t *testing.T)    { conformance(t, false) }
func TestConformanceVsftpdTLS(t *testing.T) { conformance(t, true) }
