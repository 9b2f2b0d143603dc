package ftpfake

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// session is one control connection, served by one goroutine.
type session struct {
	s        *Server
	n        int
	c        net.Conn
	cwd      string // virtual, absolute
	user     string
	loggedIn bool
	pasv     net.Listener // announced by the last EPSV, used once
	rnfr     string       // disk path named by RNFR
	mute     bool         // DropAfter: no final reply
	cur      Command      // the command being answered
}

// lastWords are the replies after which a server hangs up.
var lastWords = map[Fault]string{
	Oops:    "500 OOPS: priv_sock_get_int",
	Closing: "421 Service not available, closing control connection.",
}

func (ss *session) serve() {
	defer ss.closeData()
	r := bufio.NewReader(ss.c)
	ss.reply("220 ftpfake ready")
	for seq := 1; ; seq++ {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
		verb = strings.ToUpper(verb)
		ss.s.o.Logf("ftpfake #%d > %s %s", ss.n, verb, arg)
		ss.cur = Command{Session: ss.n, Seq: seq, Verb: verb, Arg: arg, Queued: r.Buffered() > 0}
		if ss.s.o.Commands != nil {
			ss.s.o.Commands(ss.cur)
		}
		f := NoFault
		if ss.s.o.Fault != nil {
			f = ss.s.o.Fault(ss.cur)
		}
		if f != NoFault {
			ss.s.mu.Lock()
			ss.s.faults[f]++
			ss.s.mu.Unlock()
		}
		switch f {
		case Oops, Closing:
			ss.reply(lastWords[f])
			return
		case Drop, DropInData:
			if f == DropInData && verb == "STOR" {
				ss.stor(arg, true)
			}
			ss.s.o.Logf("ftpfake #%d dropped", ss.n)
			return
		case DropAfter:
			ss.mute = true
		}
		if quit := ss.do(verb, arg); quit || ss.mute {
			return
		}
	}
}

// reply sends one reply line, "226 Transfer complete.". A muted session
// still sends a transfer's preliminary 1xx, so the client moves the data.
func (ss *session) reply(line string) {
	if ss.mute && line[0] != '1' {
		ss.s.o.Logf("ftpfake #%d dropped instead of %s", ss.n, line)
		return
	}
	if ss.s.o.Reply != nil {
		line = ss.s.o.Reply(ss.cur, line)
	}
	ss.s.o.Logf("ftpfake #%d < %s", ss.n, line)
	fmt.Fprintf(ss.c, "%s\r\n", line)
}

// answer replies good when ok, else "550 " and bad; it returns ok.
func (ss *session) answer(ok bool, good, bad string) bool {
	ss.reply(pick(ok, good, "550 "+bad))
	return ok
}

func pick(ok bool, yes, no string) string {
	if ok {
		return yes
	}
	return no
}

// do runs one command; it reports whether the session ends. The replies
// are vsftpd's, which the backend's error classification reads.
func (ss *session) do(verb, arg string) (quit bool) {
	switch verb {
	case "USER":
		ss.user, ss.loggedIn = arg, false
		ss.reply("331 Please specify the password.")
		return false
	case "PASS":
		ss.loggedIn = ss.user == User && arg == Password
		ss.reply(pick(ss.loggedIn, "230 Login successful.", "530 Login incorrect."))
		return false
	case "QUIT":
		ss.reply("221 Goodbye.")
		return true
	case "FEAT": // vsftpd's: no MLST, no MFMT; MDTM has its write form
		mfmt := ""
		if ss.s.o.MFMT {
			mfmt = "\r\n MFMT"
		}
		ss.reply("211-Features:\r\n EPSV\r\n MDTM" + mfmt + "\r\n SIZE\r\n UTF8\r\n211 End")
		return false
	}
	if !ss.loggedIn {
		ss.reply("530 Please login with USER and PASS.")
		return false
	}
	v, p := ss.virt(arg), ss.disk(arg)
	switch verb {
	case "TYPE", "OPTS", "NOOP":
		ss.reply("200 OK.")
	case "PWD":
		ss.reply(fmt.Sprintf("257 %q is the current directory", ss.cwd))
	case "CWD":
		if ss.answer(isDir(p), "250 Directory successfully changed.", "Failed to change directory.") {
			ss.cwd = v
		}
	case "EPSV": // the client's first choice; it falls back on PASV, not served
		ss.passive()
	case "STOR":
		ss.stor(arg, false)
	case "RETR":
		ss.retr(p)
	case "LIST":
		ss.list(arg)
	case "SIZE":
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			ss.reply(fmt.Sprintf("213 %d", fi.Size()))
		} else {
			ss.reply("550 Could not get file size.")
		}
	case "MDTM":
		ss.mdtm(arg)
	case "MFMT":
		if !ss.s.o.MFMT {
			ss.reply("500 Unknown command.")
			break
		}
		ss.mdtm(arg) // the same arguments as MDTM's write form
	case "RNFR":
		_, err := os.Lstat(p)
		if ss.rnfr = ""; ss.answer(err == nil, "350 Ready for RNTO.", "RNFR command failed.") {
			ss.rnfr = p
		}
	case "RNTO":
		if ss.rnfr == "" {
			ss.reply("503 RNFR required first.")
			break
		}
		ss.answer(os.Rename(ss.rnfr, p) == nil, "250 Rename successful.", "Rename failed.")
		ss.rnfr = ""
	case "DELE":
		fi, err := os.Lstat(p)
		ss.answer(err == nil && !fi.IsDir() && os.Remove(p) == nil, "250 Delete operation successful.", "Delete operation failed.")
	case "MKD":
		ss.answer(os.Mkdir(p, 0o755) == nil, fmt.Sprintf("257 %q created", v), "Create directory operation failed.")
	case "RMD":
		ss.answer(isDir(p) && os.Remove(p) == nil, "250 Remove directory operation successful.", "Remove directory operation failed.")
	default:
		ss.reply("500 Unknown command.")
	}
	return false
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// virt resolves a command's path against the working directory; cleaning
// it as an absolute path keeps ".." from climbing out of the root.
func (ss *session) virt(arg string) string {
	if !strings.HasPrefix(arg, "/") {
		arg = path.Join(ss.cwd, arg)
	}
	return path.Clean("/" + arg)
}

// disk maps a command's path into the served directory.
func (ss *session) disk(arg string) string {
	return filepath.Join(ss.s.o.Root, filepath.FromSlash(ss.virt(arg)))
}

// passive opens a listener for the next transfer's data connection.
func (ss *session) passive() {
	ss.closeData()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil || !ss.s.track(l) {
		ss.reply("425 Can't open passive connection.")
		return
	}
	ss.pasv = l
	ss.reply(fmt.Sprintf("229 Entering Extended Passive Mode (|||%d|)", l.Addr().(*net.TCPAddr).Port))
}

func (ss *session) closeData() {
	if ss.pasv != nil {
		ss.s.untrack(ss.pasv)
		ss.pasv = nil
	}
}

// data accepts a transfer's data connection (the client dials it before
// sending the command) and sends the preliminary reply; the caller closes
// the connection with untrack. Each EPSV serves one transfer.
func (ss *session) data(prelim string) (net.Conn, bool) {
	defer ss.closeData()
	if ss.pasv == nil {
		ss.reply("425 Use PORT or PASV first.") // vsftpd's words
		return nil, false
	}
	_ = ss.pasv.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
	dc, err := ss.pasv.Accept()
	if err != nil || !ss.s.track(dc) {
		ss.reply("425 Failed to establish connection.")
		return nil, false
	}
	ss.reply(prelim)
	return dc, true
}

// stor receives a file; cut writes the first chunk that came and leaves
// the rest unread, for the caller to drop the session mid-transfer.
func (ss *session) stor(arg string, cut bool) {
	f, err := os.Create(ss.disk(arg))
	if err != nil {
		ss.closeData()
		ss.reply("553 Could not create file.")
		return
	}
	defer f.Close()
	dc, ok := ss.data("150 Ok to send data.")
	if !ok {
		return
	}
	defer ss.s.untrack(dc)
	if cut {
		buf := make([]byte, 4096)
		n, _ := dc.Read(buf)
		_, _ = f.Write(buf[:n])
		return
	}
	switch _, err := io.Copy(f, dc); {
	case err != nil:
		ss.reply("426 Failure reading network stream.")
	case f.Close() != nil:
		ss.reply("451 Failure writing to local file.")
	default:
		ss.reply("226 Transfer complete.")
	}
}

func (ss *session) retr(p string) {
	f, err := os.Open(p)
	if err != nil || isDir(p) {
		ss.closeData()
		ss.reply("550 Failed to open file.")
		return
	}
	defer f.Close()
	if dc, ok := ss.data("150 Opening BINARY mode data connection."); ok {
		_, err = io.Copy(dc, f)
		ss.sent(dc, err)
	}
}

// sent closes a data connection the server wrote (the client reads it to
// EOF before the final reply) and replies.
func (ss *session) sent(dc net.Conn, err error) {
	ss.s.untrack(dc)
	ss.reply(pick(err == nil, "226 Transfer complete.", "426 Failure writing network stream."))
}

// list sends "ls -l" lines as vsftpd does: dot-files with -a (always
// shown here), and nothing for a directory that is not there.
func (ss *session) list(arg string) {
	for strings.HasPrefix(arg, "-") { // options: -a, -la
		_, arg, _ = strings.Cut(arg, " ")
	}
	ents, _ := os.ReadDir(ss.disk(arg))
	dc, ok := ss.data("150 Here comes the directory listing.")
	if !ok {
		return
	}
	w := bufio.NewWriter(dc)
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			continue
		}
		mt, stamp := fi.ModTime().UTC(), "Jan 02 15:04"
		if time.Since(mt) > 180*24*time.Hour || time.Until(mt) > time.Hour {
			stamp = "Jan 02  2006"
		}
		fmt.Fprintf(w, "%s    1 0        0        %8d %s %s\r\n", fi.Mode(), fi.Size(), mt.Format(stamp), e.Name())
	}
	ss.sent(dc, w.Flush())
}

// mdtm answers MDTM path with the mtime, and sets it for vsftpd's write
// form, MDTM YYYYMMDDHHMMSS path.
func (ss *session) mdtm(arg string) {
	const layout = "20060102150405"
	if stamp, name, ok := strings.Cut(arg, " "); ok && len(stamp) == len(layout) {
		if t, err := time.ParseInLocation(layout, stamp, time.UTC); err == nil {
			ss.answer(os.Chtimes(ss.disk(name), t, t) == nil, "213 File modification time set.", "Could not set file modification time.")
			return
		}
	}
	if fi, err := os.Stat(ss.disk(arg)); err == nil && fi.Mode().IsRegular() {
		ss.reply("213 " + fi.ModTime().UTC().Format(layout))
	} else {
		ss.reply("550 Could not get file modification time.")
	}
}
