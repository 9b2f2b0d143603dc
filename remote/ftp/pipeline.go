package ftp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"ferry/remote"
)

// The tail of an upload — the proof of its size, its mtime, and the
// rename into place — is sent in two writes on a plain FTP session
// instead of four commands each awaiting its reply: SIZE and MDTM (or
// MFMT) together, then RNFR and RNTO together. RFC 959 servers read
// commands in order from the control connection, so two commands sent at
// once are answered in order, and the second pair is sent only once the
// first proved the upload complete: nothing reaches the final name before
// its size is checked. An RNFR that fails makes the RNTO after it fail
// (503, bad sequence), so a failed pair renames nothing.
//
// The FTP library reads one reply per command and offers no way to send
// ahead, so the pairs go on the control socket the dialer keeps, between
// two of the library's commands, when its reader holds nothing unread.
// Over FTPS the library wraps that socket in TLS itself, and the tail is
// sent one command at a time.

// tail is the state of the pipelined tail on one session.
type tail struct {
	w    io.Writer     // the control socket
	rd   *bufio.Reader // replies to what the tail sent
	mfmt bool          // the server sets mtimes with MFMT, not MDTM's write form
}

// newTail prepares the pipelined tail of a plain FTP session, asking the
// server's features (FEAT) once for how it sets mtimes. It returns nil
// when the session is not one it can drive.
func (c *Conn) newTail() *tail {
	if c.t.Scheme != "ftp" || c.d == nil || c.d.control == nil || c.noTail {
		return nil
	}
	t := &tail{w: c.d.control, rd: bufio.NewReaderSize(c.d.control, 4096)}
	lines, err := t.send([]string{"FEAT"}, []int{211})
	if err != nil || t.rd.Buffered() > 0 {
		return nil // a server that does not list its features: one at a time
	}
	for _, l := range strings.Split(lines[0], "\n") {
		if strings.EqualFold(strings.TrimSpace(l), "MFMT") {
			t.mfmt = true
		}
	}
	return t
}

// send writes lines in one write and reads one reply each, in order. It
// returns the replies' texts and the first reply that was not the one
// expected (a *textproto.Error, as the library's own); a failure to read
// or a reply left over is a transport error, after which the session
// cannot be trusted.
func (t *tail) send(lines []string, want []int) ([]string, error) {
	if err := t.write(lines...); err != nil {
		return nil, err
	}
	texts, errs, err := t.read(want...)
	if err != nil {
		return nil, err
	}
	return texts, errors.Join(errs...)
}

// write sends lines in one write.
func (t *tail) write(lines ...string) error {
	var b []byte
	for _, l := range lines {
		if strings.ContainsAny(l, "\r\n") {
			return fmt.Errorf("a command with a line break: %q", l)
		}
		b = append(b, l...)
		b = append(b, '\r', '\n')
	}
	_, err := t.w.Write(b)
	return err
}

// read reads one reply for each code in want (a single digit: any reply
// of that class), and returns their texts and, reply by reply, the
// refusals (4xx and 5xx, *textproto.Error). err is a failure to read, or
// a sign that the replies are out of step with the commands: a positive
// reply that is not the one expected, or one left over once all were
// read.
func (t *tail) read(want ...int) (texts []string, errs []error, err error) {
	tp := textproto.NewReader(t.rd)
	texts, errs = make([]string, len(want)), make([]error, len(want))
	for i, w := range want {
		code, msg, err := tp.ReadResponse(w)
		var te *textproto.Error
		switch {
		case err == nil:
			texts[i] = msg
		case errors.As(err, &te) && code < 400:
			// A positive reply, but another command's: the replies
			// are one behind or ahead of the commands.
			return nil, nil, fmt.Errorf("%w: %d %s", errOutOfStep, code, msg)
		case errors.As(err, &te):
			errs[i] = err
		default:
			return nil, nil, err
		}
	}
	if t.rd.Buffered() > 0 {
		return nil, nil, errOutOfStep
	}
	return texts, errs, nil
}

// putTail checks that the server holds n bytes under tmp, sets its mtime
// and renames it to abs, in two round trips. A size that is not n is
// KindBusy (the upload is sent again) and renames nothing. renaming says
// the error is the rename's.
func (c *Conn) putTail(t *tail, rel, tmp, abs string, n int64, mtime time.Time) (renaming bool, err error) {
	lines, want := []string{"SIZE " + tmp}, []int{213}
	if !mtime.IsZero() && c.caps.SetModTime {
		verb := "MDTM"
		if t.mfmt {
			verb = "MFMT"
		}
		lines = append(lines, verb+" "+mtime.UTC().Format("20060102150405")+" "+tmp)
		want = append(want, 213)
	}
	texts, err := c.tailSend(t, lines, want)
	if err != nil {
		return false, err
	}
	if size, perr := strconv.ParseInt(strings.TrimSpace(texts[0]), 10, 64); perr != nil || size != n {
		return false, remote.Errorf(remote.KindBusy, "put", rel, fmt.Errorf("the server stored %q bytes, %d were sent", texts[0], n))
	}
	_, err = c.tailSend(t, []string{"RNFR " + tmp, "RNTO " + abs}, []int{350, 250})
	return true, err
}

// tailSend is send, with what a reply that cannot be accounted for means
// for the session: it is dropped, and this Conn sends one command at a
// time from then on. A failure of the socket (a cancellation, a server
// gone) is the library's kind of transport error, and changes nothing.
func (c *Conn) tailSend(t *tail, lines []string, want []int) ([]string, error) {
	texts, err := t.send(lines, want)
	var pe textproto.ProtocolError
	if errors.Is(err, errOutOfStep) || errors.As(err, &pe) {
		c.noTail = true
		return nil, &remote.Error{Op: "put", Kind: remote.KindTransport, Err: err}
	}
	return texts, err
}

// errOutOfStep is a server whose replies do not match the commands sent
// together; the session is dropped, and the Conn no longer sends ahead.
var errOutOfStep = errors.New("the server's replies are out of step with the commands sent together")
