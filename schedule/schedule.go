// Package schedule owns protected hours: weekly windows of local time in
// which a job's bulk work pauses (DESIGN.md, idea 4). It parses the
// config's "Mon-Fri 08:00-18:00" notation and answers two questions: is t
// inside a window, and when does the next window open.
package schedule

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Window is one protected span on some days of the week. A window whose end
// is not after its start runs past midnight into the next day.
type Window struct {
	Days       [7]bool // indexed by time.Weekday: the days the window starts on
	Start, End int     // minutes since midnight
	text       string
}

// String is the window as written in the config.
func (w Window) String() string { return w.text }

var dayNames = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// Parse reads "[DAYS ]HH:MM-HH:MM", where DAYS is a comma-separated list of
// days or day ranges (Mon, Mon-Fri, Sat,Sun); without DAYS the window is
// every day. "22:00-06:00" spans midnight; "00:00-24:00" is the whole day.
func Parse(s string) (Window, error) {
	w := Window{text: s}
	fields := strings.Fields(s)
	var days, span string
	switch len(fields) {
	case 1:
		span = fields[0]
		for d := range w.Days {
			w.Days[d] = true
		}
	case 2:
		days, span = fields[0], fields[1]
		if err := w.parseDays(days); err != nil {
			return Window{}, fmt.Errorf("protected hours %q: %w", s, err)
		}
	default:
		return Window{}, fmt.Errorf("protected hours %q: want [DAYS ]HH:MM-HH:MM, e.g. \"Mon-Fri 08:00-18:00\"", s)
	}
	from, to, ok := strings.Cut(span, "-")
	if !ok {
		return Window{}, fmt.Errorf("protected hours %q: want a span HH:MM-HH:MM", s)
	}
	var err error
	if w.Start, err = clock(from, false); err != nil {
		return Window{}, fmt.Errorf("protected hours %q: %w", s, err)
	}
	if w.End, err = clock(to, true); err != nil {
		return Window{}, fmt.Errorf("protected hours %q: %w", s, err)
	}
	if w.Start == w.End {
		return Window{}, fmt.Errorf("protected hours %q: the window is empty (start equals end)", s)
	}
	return w, nil
}

func (w *Window) parseDays(s string) error {
	for part := range strings.SplitSeq(s, ",") {
		from, to, isRange := strings.Cut(part, "-")
		a, ok := dayNames[strings.ToLower(from)]
		if !ok {
			return fmt.Errorf("unknown day %q (want Mon, Tue, Wed, Thu, Fri, Sat or Sun)", from)
		}
		b := a
		if isRange {
			if b, ok = dayNames[strings.ToLower(to)]; !ok {
				return fmt.Errorf("unknown day %q (want Mon, Tue, Wed, Thu, Fri, Sat or Sun)", to)
			}
		}
		for d := a; ; d = (d + 1) % 7 {
			w.Days[d] = true
			if d == b {
				break
			}
		}
	}
	return nil
}

// clock reads HH:MM as minutes since midnight; 24:00 only as an end.
func clock(s string, end bool) (int, error) {
	hh, mm, ok := strings.Cut(s, ":")
	h, herr := strconv.Atoi(hh)
	m, merr := strconv.Atoi(mm)
	if !ok || herr != nil || merr != nil || len(mm) != 2 || h < 0 || m < 0 || m > 59 || h > 24 || (h == 24 && (m != 0 || !end)) {
		return 0, fmt.Errorf("time %q: want HH:MM between 00:00 and 24:00", s)
	}
	return h*60 + m, nil
}

// Windows is a job's list of protected windows.
type Windows []Window

// ParseWindows reads a list of windows as Parse reads one (a config's
// protected_hours); the first bad one is the error.
func ParseWindows(specs []string) (Windows, error) {
	var ws Windows
	for _, s := range specs {
		w, err := Parse(s)
		if err != nil {
			return nil, err
		}
		ws = append(ws, w)
	}
	return ws, nil
}

// span is one occurrence of a window in absolute time.
type span struct{ from, to time.Time }

// occurrences lists the spans of w that start on the day of t, the day
// before (for windows past midnight) and the next 7 days.
func (ws Windows) occurrences(t time.Time) []span {
	var out []span
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, t.Location())
	for offset := -1; offset <= 7; offset++ {
		d := day.AddDate(0, 0, offset)
		for _, w := range ws {
			if !w.Days[d.Weekday()] {
				continue
			}
			from := d.Add(time.Duration(w.Start) * time.Minute)
			end := w.End
			if end <= w.Start {
				end += 24 * 60
			}
			out = append(out, span{from, d.Add(time.Duration(end) * time.Minute)})
		}
	}
	return out
}

// Active reports whether t is inside a window, and if so when the
// protected time that contains it ends (adjacent windows are joined).
func (ws Windows) Active(t time.Time) (bool, time.Time) {
	occ := ws.occurrences(t)
	in, until := false, t
	for changed := true; changed; {
		changed = false
		for _, s := range occ {
			if !s.from.After(until) && s.to.After(until) {
				in, until, changed = true, s.to, true
			}
		}
	}
	return in, until
}

// NextStart is when protected time next begins after t (t itself
// excluded): the start of a window that does not continue protected time
// already running. The zero time when there are no windows.
func (ws Windows) NextStart(t time.Time) time.Time {
	occ := ws.occurrences(t)
	var next time.Time
	for _, s := range occ {
		if !s.from.After(t) || (!next.IsZero() && !s.from.Before(next)) {
			continue
		}
		continues := false
		for _, o := range occ {
			if o.from.Before(s.from) && !o.to.Before(s.from) {
				continues = true
				break
			}
		}
		if !continues {
			next = s.from
		}
	}
	return next
}

// Fits reports whether work estimated to take d, started at t, ends
// before the next window opens: a transfer that cannot is not started.
func (ws Windows) Fits(t time.Time, d time.Duration) bool {
	if in, _ := ws.Active(t); in {
		return false
	}
	next := ws.NextStart(t)
	return next.IsZero() || !t.Add(d).After(next)
}
