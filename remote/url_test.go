package remote

import (
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		in      string
		want    Target
		wantErr string // substring of the error; "" means success
	}{
		{in: "ftp://bob@example.com/www", want: Target{Scheme: "ftp", User: "bob", Host: "example.com", Port: 21, Path: "/www"}},
		{in: "ftps://bob:s3cret@example.com:2121/www/", want: Target{Scheme: "ftps", User: "bob", Password: "s3cret", Host: "example.com", Port: 2121, Path: "/www"}},
		{in: "ftp://example.com", want: Target{Scheme: "ftp", User: "anonymous", Host: "example.com", Port: 21, Path: ""}},
		{in: "FTP://bob@example.com/", want: Target{Scheme: "ftp", User: "bob", Host: "example.com", Port: 21, Path: "/"}},
		{in: "sftp://deploy@[::1]:2222/srv/site", want: Target{Scheme: "sftp", User: "deploy", Host: "::1", Port: 2222, Path: "/srv/site"}},
		{in: "sftp://deploy@127.0.0.1/~/site/a", want: Target{Scheme: "sftp", User: "deploy", Host: "127.0.0.1", Port: 22, Path: "site/a"}},
		{in: "sftp://deploy@127.0.0.1/~", want: Target{Scheme: "sftp", User: "deploy", Host: "127.0.0.1", Port: 22, Path: ""}},
		{in: "ftp://u@h/a%20b/%23c/%25d", want: Target{Scheme: "ftp", User: "u", Host: "h", Port: 21, Path: "/a b/#c/%d"}},
		{in: "ftp://u%40corp@h/x", want: Target{Scheme: "ftp", User: "u@corp", Host: "h", Port: 21, Path: "/x"}},
		{in: "file:///srv/mirror/", want: Target{Scheme: "file", Path: "/srv/mirror"}},
		{in: "file://localhost/srv/m", want: Target{Scheme: "file", Path: "/srv/m"}},

		{in: "", wantErr: "empty"},
		{in: "/srv/www", wantErr: "no scheme"},
		{in: "example.com/www", wantErr: "no scheme"},
		{in: "http://h/x", wantErr: `unknown scheme "http"`},
		{in: "ftp:///x", wantErr: "missing host"},
		{in: "ftp://h:0/x", wantErr: "port"},
		{in: "ftp://h:70000/x", wantErr: "port"},
		{in: "ftp://h:/x", wantErr: "empty port"},
		{in: "ftp://h/a#b", wantErr: "%23"},
		{in: "ftp://h/a?b=1", wantErr: "query"},
		{in: "ftp://h/a/../b", wantErr: "'..'"},
		{in: "ftp://h/a%0d%0aDELE%20x", wantErr: "control character"},
		{in: "file://server/share", wantErr: "three slashes"},
		{in: "file://relative", wantErr: "three slashes"},
		{in: "file:relative", wantErr: "no scheme"},
		{in: "ftp://h:abc/x", wantErr: "port"},
		{in: "ftp://[::1/x", wantErr: ""}, // replaced below: url.Parse error
	}
	for _, tc := range tests {
		if tc.in == "ftp://[::1/x" {
			tc.wantErr = "target URL"
		}
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseURL(tc.in)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseURL(%q) = %+v, want error containing %q", tc.in, got, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseURL(%q) error %q, want it to contain %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseURL(%q): %v", tc.in, err)
			}
			if *got != tc.want {
				t.Fatalf("ParseURL(%q) = %+v, want %+v", tc.in, *got, tc.want)
			}
		})
	}
}

func TestParseURLRedactsPassword(t *testing.T) {
	_, err := ParseURL("gopher://bob:hunter2@h/x")
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error %v leaks the password", err)
	}
}

func TestTargetStringRoundTrip(t *testing.T) {
	for _, in := range []string{"ftp://bob@h:21/www", "sftp://bob@h:22/~/site", "sftp://bob@h:22/~", "file:///srv/m", "ftps://bob@[::1]:990/a%20b"} {
		tg, err := ParseURL(in)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseURL(tg.String())
		if err != nil {
			t.Fatalf("String() of %q = %q does not parse: %v", in, tg.String(), err)
		}
		if *again != *tg {
			t.Fatalf("round trip of %q: %+v != %+v", in, *again, *tg)
		}
	}
}

func TestJoin(t *testing.T) {
	tests := []struct{ root, rel, want, err string }{
		{"/srv", "a/b", "/srv/a/b", ""},
		{"/srv", "", "/srv", ""},
		{"/srv", "a/./b/", "/srv/a/b", ""},
		{"", "a", "a", ""},
		{"/srv", "../etc", "", "escapes"},
		{"/srv", "a/../../etc", "", "escapes"},
		{"/srv", "/etc", "", "relative"},
	}
	for _, tc := range tests {
		got, err := Join(tc.root, tc.rel)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Join(%q,%q) err=%v, want %q", tc.root, tc.rel, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Join(%q,%q) = %q,%v want %q", tc.root, tc.rel, got, err, tc.want)
		}
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"ftp://u@h/p", "ftps://u:p@h:2121/a%20b", "sftp://u@[::1]:22/~/x", "file:///x", "ftp://h/a#b", "::", "ftp://%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := ParseURL(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "target URL ") {
				t.Fatalf("error without context: %v", err)
			}
			return
		}
		if strings.ContainsAny(tg.Path, "\x00\r\n") {
			t.Fatalf("control character accepted in path %q", tg.Path)
		}
		for _, seg := range strings.Split(tg.Path, "/") {
			if seg == ".." {
				t.Fatalf("'..' accepted in %q", tg.Path)
			}
		}
		if tg.Scheme != "file" && (tg.Port < 1 || tg.Port > 65535 || tg.Host == "") {
			t.Fatalf("bad host/port accepted: %+v", tg)
		}
		if _, err := ParseURL(tg.String()); err != nil {
			t.Fatalf("String() %q of accepted %q does not parse: %v", tg.String(), s, err)
		}
	})
}
