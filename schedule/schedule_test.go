package schedule

import (
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in      string
		days    string // the days the window starts on, Sun first, as 0/1
		from    int
		to      int
		wantErr string
	}{
		{in: "08:00-18:00", days: "1111111", from: 480, to: 1080},
		{in: "Mon-Fri 08:00-18:00", days: "0111110", from: 480, to: 1080},
		{in: "sat,sun 10:30-12:00", days: "1000001", from: 630, to: 720},
		{in: "Fri-Mon 22:00-06:00", days: "1100011", from: 1320, to: 360},
		{in: "00:00-24:00", days: "1111111", from: 0, to: 1440},
		{in: "Mon 8:00-9:00", days: "0100000", from: 480, to: 540},
		{in: "Mon-Fri", wantErr: `time "Mon"`},
		{in: "Mon 08:00", wantErr: "want a span"},
		{in: "Monday 08:00-09:00", wantErr: `unknown day "Monday"`},
		{in: "08:00-08:00", wantErr: "empty"},
		{in: "24:00-08:00", wantErr: `time "24:00"`},
		{in: "08:60-09:00", wantErr: `time "08:60"`},
		{in: "08:0-09:00", wantErr: `time "08:0"`},
		{in: "a b c", wantErr: "want [DAYS ]HH:MM-HH:MM"},
		{in: "", wantErr: "want [DAYS ]HH:MM-HH:MM"},
	} {
		w, err := Parse(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Parse(%q) error %v, want one containing %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		var days strings.Builder
		for _, on := range w.Days {
			days.WriteByte("01"[b2i(on)])
		}
		if days.String() != tc.days || w.Start != tc.from || w.End != tc.to {
			t.Errorf("Parse(%q) = days %s %d-%d, want %s %d-%d", tc.in, days.String(), w.Start, w.End, tc.days, tc.from, tc.to)
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func must(t *testing.T, specs ...string) Windows {
	t.Helper()
	var ws Windows
	for _, s := range specs {
		w, err := Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
	}
	return ws
}

// at is a time in the week of Monday 2026-11-23, in UTC.
func at(day int, hhmm string) time.Time {
	t, err := time.Parse("15:04", hhmm)
	if err != nil {
		panic(err)
	}
	return time.Date(2026, 11, 23+day, t.Hour(), t.Minute(), 0, 0, time.UTC)
}

func TestActiveAndNext(t *testing.T) {
	office := must(t, "Mon-Fri 08:00-18:00")
	night := must(t, "Fri-Sat 22:00-06:00")
	joined := must(t, "Mon 08:00-12:00", "Mon 12:00-14:00")
	for _, tc := range []struct {
		name      string
		ws        Windows
		t         time.Time
		active    bool
		until     time.Time
		nextStart time.Time
	}{
		{"monday before work", office, at(0, "07:59"), false, time.Time{}, at(0, "08:00")},
		{"monday at the start", office, at(0, "08:00"), true, at(0, "18:00"), at(1, "08:00")},
		{"monday at the end", office, at(0, "18:00"), false, time.Time{}, at(1, "08:00")},
		{"friday evening", office, at(4, "19:00"), false, time.Time{}, at(7, "08:00")},
		{"saturday night", night, at(5, "23:30"), true, at(6, "06:00"), at(11, "22:00")},
		{"sunday early, past midnight of saturday's window", night, at(6, "05:00"), true, at(6, "06:00"), at(11, "22:00")},
		{"sunday late", night, at(6, "22:30"), false, time.Time{}, at(11, "22:00")},
		{"adjacent windows join", joined, at(0, "11:00"), true, at(0, "14:00"), at(7, "08:00")},
		{"no windows", nil, at(0, "11:00"), false, time.Time{}, time.Time{}},
	} {
		active, until := tc.ws.Active(tc.t)
		if active != tc.active || (active && !until.Equal(tc.until)) {
			t.Errorf("%s: Active = %v until %v, want %v until %v", tc.name, active, until, tc.active, tc.until)
		}
		if next := tc.ws.NextStart(tc.t); !next.Equal(tc.nextStart) {
			t.Errorf("%s: NextStart = %v, want %v", tc.name, next, tc.nextStart)
		}
	}
}

func TestFits(t *testing.T) {
	office := must(t, "Mon-Fri 08:00-18:00")
	for _, tc := range []struct {
		t    time.Time
		d    time.Duration
		want bool
	}{
		{at(0, "07:00"), 59 * time.Minute, true},
		{at(0, "07:00"), 60 * time.Minute, true}, // ends as the window opens
		{at(0, "07:00"), 61 * time.Minute, false},
		{at(0, "09:00"), time.Second, false}, // inside a window
		{at(4, "18:00"), 60 * time.Hour, true},
		{at(4, "18:00"), 63 * time.Hour, false},
	} {
		if got := office.Fits(tc.t, tc.d); got != tc.want {
			t.Errorf("Fits(%v, %v) = %v, want %v", tc.t, tc.d, got, tc.want)
		}
	}
	if !Windows(nil).Fits(at(0, "09:00"), 1000*time.Hour) {
		t.Error("no windows: everything fits")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"08:00-18:00", "Mon-Fri 08:00-18:00", "sat,sun 22:00-06:00", "24:00-01:00", "Fri-Mon 1:2-3:4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		w, err := Parse(s)
		if err != nil {
			return
		}
		if w.Start < 0 || w.Start >= 24*60 || w.End < 0 || w.End > 24*60 || w.Start == w.End {
			t.Fatalf("Parse(%q) accepted %d-%d", s, w.Start, w.End)
		}
		ws := Windows{w}
		now := at(2, "12:00")
		if in, until := ws.Active(now); in && !until.After(now) {
			t.Fatalf("Parse(%q): active until %v, not after %v", s, until, now)
		}
	})
}
