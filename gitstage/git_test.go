package gitstage

import "testing"

func TestVersionAtLeast(t *testing.T) {
	for v, ok := range map[string]bool{
		"2.39.5": true, "2.30": true, "2.30.0": true, "3.0": true, "2.100.1": true,
		"2.29.2": false, "2.4.1": false, "1.9": false, "2.39.5.windows.1": true, "x": false,
	} {
		if versionAtLeast(v, MinGitVersion) != ok {
			t.Errorf("versionAtLeast(%q, %q) = %v", v, MinGitVersion, !ok)
		}
	}
}

func TestIsLocalPath(t *testing.T) {
	for repo, local := range map[string]bool{
		"/srv/site.git": true, "site.git": true, "../a:b/site.git": true, "./x:y": true,
		"git@example.org:site.git": false, "example.org:site.git": false,
		"ssh://git@example.org/site.git": false, "https://example.org/site.git": false, "file:///srv/site.git": false,
	} {
		if isLocalPath(repo) != local {
			t.Errorf("isLocalPath(%q) = %v", repo, !local)
		}
	}
}
