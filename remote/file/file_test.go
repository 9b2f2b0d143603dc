package file_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"ferry/remote"
	"ferry/remote/file"
	"ferry/remote/remotetest"
)

func TestConformance(t *testing.T) {
	root := t.TempDir()
	remotetest.Run(t, remotetest.Harness{
		Open: func(t testing.TB) remote.Conn {
			c, err := file.Open(context.Background(), &remote.Target{Scheme: "file", Path: root}, remote.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
		ReadFile: func(rel string) ([]byte, error) {
			return os.ReadFile(filepath.Join(root, filepath.FromSlash(rel)))
		},
	})
}
