// Package ftpfake is an FTP server inside the test process that serves a
// directory on disk to one account, on 127.0.0.1 only, and breaks sessions
// on demand. It speaks what ferry's FTP backend sends, in the vsftpd
// dialect (EPSV, LIST -a, SIZE, MDTM and its write form; no MLST, no MFMT),
// and nothing more.
//
// Its point is the faults a real server will not produce on cue: before any
// command, a hook may have the session answered as vsftpd does when it
// fails inside ("500 OOPS: priv_sock_get_int", then the connection closes),
// answered 421 and closed, dropped without a word before or after the
// command runs, or dropped halfway through a STOR's data. The real-server tests (internal/testrig) remain
// the reference for everything else.
package ftpfake

import (
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"sync"
)

// Fault is how a session is broken.
type Fault int

const (
	NoFault Fault = iota
	// Oops answers "500 OOPS: priv_sock_get_int" and closes the
	// connection, as vsftpd does when a session's processes fail.
	Oops
	// Closing answers 421 and closes the connection.
	Closing
	// Drop closes the connection without a reply, the command not run.
	Drop
	// DropAfter runs the command, then closes without a reply: the
	// client cannot tell whether it took effect.
	DropAfter
	// DropInData, on a STOR, writes the first chunk of data that came to
	// the file and closes both connections; elsewhere it is Drop.
	DropInData
)

// Faults lists every kind, for Random.
var Faults = []Fault{Oops, Closing, Drop, DropAfter, DropInData}

func (f Fault) String() string {
	return [...]string{"none", "oops", "421", "drop", "drop-after", "drop-in-data"}[f]
}

// Command is one command a session received, as shown to the fault hook.
type Command struct {
	Session int    // the control connection's number, from 1 in accept order
	Seq     int    // the command's number within its session, from 1
	Verb    string // upper case, "STOR"
	Arg     string
	// Queued says another command had already arrived behind this one
	// when it was read: the client sent them together.
	Queued bool
}

// The one account.
const (
	User     = "ferry"
	Password = "secret"
)

// Options configure a Server.
type Options struct {
	Root string // the directory served as "/"
	// Fault, when set, is asked before every command whether to break the
	// session there (NoFault to run it). It is called concurrently.
	Fault func(Command) Fault
	// Logf, when set, receives the protocol: commands and replies.
	Logf func(format string, args ...any)
	// Commands, when set, is told of every command as it is read. It is
	// called concurrently.
	Commands func(Command)
	// Reply, when set, may rewrite each reply line before it is sent (a
	// SIZE that disagrees, an extra line out of step); c is the command
	// being answered (the zero Command for the greeting).
	Reply func(c Command, line string) string
	// MFMT lists MFMT in the features and serves it, as pure-ftpd and
	// proftpd do (vsftpd has only MDTM's write form).
	MFMT bool
}

// Random returns a fault hook that breaks a command with probability rate,
// with one of kinds (all of Faults when none are given). The draw depends
// only on seed and the command's session and sequence numbers, so a run
// that opens its sessions in the same order sees the same faults.
func Random(seed uint64, rate float64, kinds ...Fault) func(Command) Fault {
	if len(kinds) == 0 {
		kinds = Faults
	}
	return func(c Command) Fault {
		r := rand.New(rand.NewPCG(seed, uint64(c.Session)<<32|uint64(c.Seq)))
		if r.Float64() >= rate {
			return NoFault
		}
		return kinds[r.IntN(len(kinds))]
	}
}

// Server is a running fake. Close stops it and waits for its sessions.
type Server struct {
	o Options
	l net.Listener
	// wg counts the accept loop and the sessions; open holds every
	// socket and listener, closed by Close to unblock their owners.
	wg       sync.WaitGroup
	mu       sync.Mutex
	open     map[io.Closer]bool
	closed   bool
	sessions int
	faults   map[Fault]int
}

// Start serves o.Root on 127.0.0.1 at a free port.
func Start(o Options) (*Server, error) {
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{o: o, l: l, open: map[io.Closer]bool{}, faults: map[Fault]int{}}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// URL is the ftp:// URL of p (absolute, "/mirror") for the account.
func (s *Server) URL(p string) string { return "ftp://" + User + "@" + s.l.Addr().String() + p }

// Root is the directory served as "/".
func (s *Server) Root() string { return s.o.Root }

// Injected returns how many faults of each kind were made so far.
func (s *Server) Injected() map[Fault]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.faults)
}

// Close stops listening, closes every session and waits for them.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for c := range s.open {
		c.Close()
	}
	s.mu.Unlock()
	err := s.l.Close()
	s.wg.Wait()
	return err
}

// track registers c to be closed by Close; false when closing already.
func (s *Server) track(c io.Closer) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.Close()
		return false
	}
	s.open[c] = true
	return true
}

func (s *Server) untrack(c io.Closer) {
	s.mu.Lock()
	delete(s.open, c)
	s.mu.Unlock()
	c.Close()
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.l.Accept()
		if err != nil {
			return
		}
		if !s.track(c) {
			return
		}
		s.mu.Lock()
		s.sessions++
		ss := &session{s: s, n: s.sessions, c: c, cwd: "/"}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.untrack(c)
			ss.serve()
		}()
	}
}
