package mirror

import (
	"context"
	"slices"
	"sync"
	"time"

	"ferry/entry"
	"ferry/remote"
	"ferry/scanner"
	"ferry/transfer"
)

// listers serve remote listings for the planner: the first connection, plus
// a few more when listings can run in parallel.
type listers struct {
	o     Options
	pool  chan remote.Conn
	mu    sync.Mutex
	all   []remote.Conn
	limit int
	lost  func() // counts a session lost and redialed
}

// listAttempts bounds the listings of one directory when the server keeps
// ending the session: a lost session is the session's failure, not the
// directory's, so it is retried on a new one (the backend redials).
const listAttempts = 5

func newListers(first remote.Conn, o Options, lost func()) *listers {
	limit := min(max(o.Workers/2, 1), 4)
	l := &listers{o: o, pool: make(chan remote.Conn, limit), limit: limit, all: []remote.Conn{first}, lost: lost}
	l.pool <- first
	return l
}

func (l *listers) parallel() int { return l.limit }

// list lists dir on a free listing connection, dialing another while fewer
// than the limit exist.
func (l *listers) list(ctx context.Context, dir string) ([]entry.FileInfo, error) {
	var c remote.Conn
	select {
	case c = <-l.pool:
	default:
		l.mu.Lock()
		grow := len(l.all) < l.limit
		l.mu.Unlock()
		if grow {
			nc, err := l.o.Open(ctx, l.o.Target, l.o.RemoteOpts)
			if err == nil {
				l.mu.Lock()
				l.all = append(l.all, nc)
				l.mu.Unlock()
				c = nc
			}
		}
		if c == nil {
			select {
			case c = <-l.pool:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	defer func() { l.pool <- c }()
	ents, err := listRetrying(ctx, c, dir, l.lost)
	if dir == "" {
		// The marker is ferry's, not the mirror's: never a remote-only
		// file to delete, never a conflict.
		ents = slices.DeleteFunc(ents, func(fi entry.FileInfo) bool { return fi.Name == l.o.Marker })
	}
	return ents, err
}

func (l *listers) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.all {
		c.Close()
	}
	l.all = nil
}

// listRetrying lists dir on c, and again on a new session (with back-off)
// when the server ended the session by answering with a hang-up (a reset,
// a 421, vsftpd's "500 OOPS"). A server that does not answer at all is not
// retried here: each attempt would wait out a timeout, and the pass's
// patience is the judge of a silent server.
func listRetrying(ctx context.Context, c remote.Conn, dir string, lost func()) ([]entry.FileInfo, error) {
	for attempt := 1; ; attempt++ {
		ents, err := scanner.ListWith(c)(ctx, dir)
		if err == nil || attempt >= listAttempts || !remote.SessionLost(err) || remote.Unreachable(err) || ctx.Err() != nil {
			return ents, err
		}
		if lost != nil {
			lost()
		}
		t := time.NewTimer(transfer.Backoff(attempt, 100*time.Millisecond, 5*time.Second))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
}

// noteLost counts a session the server ended and a listing redialed.
func (r *stages) noteLost() { r.sessionsLost.Add(1) }
