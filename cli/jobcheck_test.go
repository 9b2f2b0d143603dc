package cli

import (
	"errors"
	"strings"
	"testing"

	"ferry/config"
	"ferry/mirror"
)

// TestStageValuesInConfig: a value only a stage can judge, written in a
// config file, is refused with the file, the line and the key, as config
// reports its own mistakes.
func TestStageValuesInConfig(t *testing.T) {
	job := "[[job]]\nname = \"site\"\nsource = \"/src\"\ntarget = \"sftp://u@127.0.0.1/x\"\n"
	for _, tc := range []struct {
		name, src string
		line      int
		key, msg  string
	}{
		{"bad policy", job + "conflict = \"ours\"\n", 5, `job "site": conflict`, "keep-both, overwrite or skip"},
		{"bad url", "[[job]]\nname = \"a\"\nsource = \"/s\"\ntarget = \"gopher://h/x\"\n", 4, `job "a": target`, "gopher"},
		{"bad protected hours", job + "protected_hours = [\"Mon-Fry 08:00-18:00\"]\n", 5, `job "site": protected_hours`, `unknown day "Fry"`},
		{"bad max_delete", job + "max_delete = \"lots\"\n", 5, `job "site": max_delete`, "lots"},
		{"bad links", job + "links = \"maybe\"\n", 5, `job "site": links`, "skip or follow"},
		{"bad marker", job + "marker = \"a/b\"\n", 5, `job "site": marker`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse("ferry.toml", []byte(tc.src), checkJob)
			if err == nil {
				t.Fatal("accepted")
			}
			var e *config.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T) is not a config.Error", err, err)
			}
			if e.File != "ferry.toml" || e.Line != tc.line || e.Key != tc.key || !strings.Contains(e.Error(), tc.msg) {
				t.Errorf("got %q (line %d, key %q), want line %d, key %q, message containing %q", e.Error(), e.Line, e.Key, tc.line, tc.key, tc.msg)
			}
		})
	}
}

// TestBadConfigReportsAll: the Checker's mistakes are reported with
// config's own, each at its line.
func TestBadConfigReportsAll(t *testing.T) {
	src := "[[job]]\nname = \"a\"\nsource = \"/s\"\ntarget = \"file:///x\"\nworkers = 0\nconflict = \"x\"\nfoo = 1\n"
	_, err := config.Parse("f.toml", []byte(src), checkJob)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"f.toml:5: ", "f.toml:6: ", "f.toml:7: "} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// TestExampleChecks: the example file passes the stages' checks too, and
// config's default marker name is the mirror's.
func TestExampleChecks(t *testing.T) {
	if _, err := config.Load("../config.example.toml", checkJob); err != nil {
		t.Fatal(err)
	}
	if config.DefaultMarker != mirror.DefaultMarker {
		t.Fatalf("config's default marker %q, the mirror's %q", config.DefaultMarker, mirror.DefaultMarker)
	}
}
