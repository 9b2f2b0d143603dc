package gitstage

import (
	"strings"
	"testing"
)

func TestRender(t *testing.T) {
	got, err := Render(DefaultMessage, MessageData{Job: "site", Files: 3, Added: 1, Changed: 1, Deleted: 1,
		List: []string{"A a.html", "M b.html"}, More: 1})
	want := "ferry site: 3 files (1 added, 1 changed, 1 deleted)\n\nA a.html\nM b.html\n… and 1 more\n"
	if err != nil || got != want {
		t.Errorf("default message:\n%q, %v\nwant\n%q", got, err, want)
	}
	if got, _ := Render(DefaultMessage, MessageData{Job: "site", Files: 1, Added: 1, List: []string{"A a"}}); !strings.HasPrefix(got, "ferry site: 1 file (") {
		t.Errorf("one file: %q", got)
	}
	for _, bad := range []string{"{{.Job", "{{.Jbo}}", "{{range .Files}}x{{end}}", "  {{/* nothing */}}\n"} {
		_, err := Render(bad, MessageData{Job: "site"})
		if err == nil || !strings.Contains(err.Error(), "commit message template") || !strings.Contains(err.Error(), strings.TrimSpace(bad)) {
			t.Errorf("template %q: %v, want an error naming it", bad, err)
		}
	}
}
