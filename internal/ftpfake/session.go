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

// dataTimeout bounds the wait for the client's data connection.
const dataTimeout = 10 * time.Second

// session is one control connection, served by one goroutine.
type session struct {
	s    *Server
	n    int
	c    net.Conn
	r    *bufio.Reader
	cwd  string // virtual, absolute
	user string
	in   bool         // logged in
	pasv net.Listener // announced by the last EPSV or PASV, used once
	rnfr string       // disk path named by RNFR
	mute bool         // DropAfter: no final reply
}

func (ss *session) serve() {
	ss.reply(220, "ftpfake ready")
	for seq := 1; ; seq++ {
		line, err := ss.r.ReadString('\n')
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
		verb = strings.ToUpper(verb)
		f := NoFault
		if ss.s.o.Fault != nil {
			f = ss.s.o.Fault(Command{Session: ss.n, Seq: seq, Verb: verb, Arg: arg})
		}
		ss.s.mu.Lock()
		ss.s.verbs[verb]++
		if f != NoFault {
			ss.s.faults[f]++
		}
		ss.s.mu.Unlock()
		shown := arg
		if verb == "PASS" {
			shown = "****"
		}
		ss.s.o.Logf("ftpfake #%d > %s %s", ss.n, verb, shown)
		switch f {
		case Oops:
			ss.reply(500, "OOPS: priv_sock_get_int")
			return
		case Closing:
			ss.reply(421, "Service not available, closing control connection.")
			return
		case Drop:
			ss.s.o.Logf("ftpfake #%d dropped", ss.n)
			return
		case DropInData:
			if verb == "STOR" {
				ss.stor(arg, true)
			}
			ss.s.o.Logf("ftpfake #%d dropped", ss.n)
			return
		case DropAfter:
			ss.mute = true
		}
		quit := ss.do(verb, arg)
		if quit || ss.mute {
			return
		}
	}
}

// reply sends one reply line. A muted session still sends the preliminary
// 1xx of a transfer, so the client goes on to send or read the data.
func (ss *session) reply(code int, text string) {
	if ss.mute && code >= 200 {
		ss.s.o.Logf("ftpfake #%d dropped instead of %d %s", ss.n, code, text)
		return
	}
	ss.s.o.Logf("ftpfake #%d < %d %s", ss.n, code, text)
	fmt.Fprintf(ss.c, "%d %s\r\n", code, text)
}

// do runs one command; it reports whether the session ends.
func (ss *session) do(verb, arg string) (quit bool) {
	switch verb {
	case "USER":
		ss.user, ss.in = arg, false
		ss.reply(331, "Please specify the password.")
		return false
	case "PASS":
		if ss.user == ss.s.o.User && arg == ss.s.o.Password {
			ss.in = true
			ss.reply(230, "Login successful.")
		} else {
			ss.reply(530, "Login incorrect.")
		}
		return false
	case "QUIT":
		ss.reply(221, "Goodbye.")
		return true
	case "FEAT":
		// vsftpd's list: no MLST, no MFMT; MDTM has its write form.
		feats := "211-Features:\r\n EPSV\r\n MDTM\r\n PASV\r\n SIZE\r\n UTF8\r\n"
		if !ss.mute {
			fmt.Fprint(ss.c, feats)
		}
		ss.reply(211, "End")
		return false
	}
	if !ss.in {
		ss.reply(530, "Please login with USER and PASS.")
		return false
	}
	v := ss.virt(arg)
	p := ss.disk(v)
	switch verb {
	case "SYST":
		ss.reply(215, "UNIX Type: L8")
	case "TYPE", "OPTS", "NOOP":
		ss.reply(200, "OK.")
	case "PWD":
		ss.reply(257, fmt.Sprintf("%q is the current directory", ss.cwd))
	case "CWD":
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			ss.cwd = v
			ss.reply(250, "Directory successfully changed.")
		} else {
			ss.reply(550, "Failed to change directory.")
		}
	case "EPSV", "PASV":
		ss.passive(verb)
	case "STOR":
		ss.stor(arg, false)
	case "RETR":
		ss.retr(p)
	case "LIST":
		ss.list(arg)
	case "SIZE":
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			ss.reply(213, fmt.Sprint(fi.Size()))
		} else {
			ss.reply(550, "Could not get file size.")
		}
	case "MDTM":
		ss.mdtm(arg)
	case "RNFR":
		ss.rnfr = ""
		if _, err := os.Lstat(p); err == nil {
			ss.rnfr = p
			ss.reply(350, "Ready for RNTO.")
		} else {
			ss.reply(550, "RNFR command failed.")
		}
	case "RNTO":
		from := ss.rnfr
		ss.rnfr = ""
		switch {
		case from == "":
			ss.reply(503, "RNFR required first.")
		case os.Rename(from, p) != nil:
			ss.reply(550, "Rename failed.")
		default:
			ss.reply(250, "Rename successful.")
		}
	case "DELE":
		if fi, err := os.Lstat(p); err != nil || fi.IsDir() || os.Remove(p) != nil {
			ss.reply(550, "Delete operation failed.")
		} else {
			ss.reply(250, "Delete operation successful.")
		}
	case "MKD":
		if os.Mkdir(p, 0o755) != nil {
			ss.reply(550, "Create directory operation failed.")
		} else {
			ss.reply(257, fmt.Sprintf("%q created", v))
		}
	case "RMD":
		if fi, err := os.Lstat(p); err != nil || !fi.IsDir() || os.Remove(p) != nil {
			ss.reply(550, "Remove directory operation failed.")
		} else {
			ss.reply(250, "Remove directory operation successful.")
		}
	default:
		ss.reply(500, "Unknown command.")
	}
	return false
}

// virt resolves a command's path against the working directory; Clean of
// an absolute path keeps ".." from climbing out of the root.
func (ss *session) virt(arg string) string {
	if !strings.HasPrefix(arg, "/") {
		arg = path.Join(ss.cwd, arg)
	}
	return path.Clean("/" + arg)
}

// disk maps a virtual path to the served directory.
func (ss *session) disk(v string) string {
	return filepath.Join(ss.s.o.Root, filepath.FromSlash(v))
}

// passive opens a listener for the next transfer's data connection.
func (ss *session) passive(verb string) {
	ss.closeData()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil || !ss.s.track(l) {
		ss.reply(425, "Can't open passive connection.")
		return
	}
	ss.pasv = l
	port := l.Addr().(*net.TCPAddr).Port
	if verb == "EPSV" {
		ss.reply(229, fmt.Sprintf("Entering Extended Passive Mode (|||%d|)", port))
	} else {
		ss.reply(227, fmt.Sprintf("Entering Passive Mode (127,0,0,1,%d,%d).", port/256, port%256))
	}
}

func (ss *session) closeData() {
	if ss.pasv != nil {
		ss.s.untrack(ss.pasv)
		ss.pasv = nil
	}
}

// data accepts the transfer's data connection and sends the preliminary
// reply; the caller closes the connection with untrack.
func (ss *session) data(prelim string) (net.Conn, bool) {
	defer ss.closeData() // one transfer per EPSV or PASV
	if ss.pasv == nil {
		ss.reply(425, "Use PORT or PASV first.")
		return nil, false
	}
	_ = ss.pasv.(*net.TCPListener).SetDeadline(time.Now().Add(dataTimeout))
	dc, err := ss.pasv.Accept()
	if err != nil || !ss.s.track(dc) {
		ss.reply(425, "Failed to establish connection.")
		return nil, false
	}
	ss.reply(150, prelim)
	return dc, true
}

// stor receives a file; cut writes the first chunk that came and leaves
// the rest unread, for the caller to drop the session mid-transfer.
func (ss *session) stor(arg string, cut bool) {
	f, err := os.Create(ss.disk(ss.virt(arg)))
	if err != nil {
		ss.closeData()
		ss.reply(553, "Could not create file.")
		return
	}
	defer f.Close()
	dc, ok := ss.data("Ok to send data.")
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
	if _, err := io.Copy(f, dc); err != nil {
		ss.reply(426, "Failure reading network stream.")
		return
	}
	if err := f.Close(); err != nil {
		ss.reply(451, "Failure writing to local file.")
		return
	}
	ss.reply(226, "Transfer complete.")
}

func (ss *session) retr(p string) {
	f, err := os.Open(p)
	if fi, serr := os.Stat(p); err != nil || serr != nil || !fi.Mode().IsRegular() {
		if f != nil {
			f.Close()
		}
		ss.closeData()
		ss.reply(550, "Failed to open file.")
		return
	}
	defer f.Close()
	dc, ok := ss.data("Opening BINARY mode data connection.")
	if !ok {
		return
	}
	_, err = io.Copy(dc, f)
	ss.s.untrack(dc) // the client reads to EOF before the final reply
	if err != nil {
		ss.reply(426, "Failure writing network stream.")
		return
	}
	ss.reply(226, "Transfer complete.")
}

// list sends an ls -l listing as vsftpd does: dot-files with -a (always
// shown here), and an empty listing for a directory that is not there.
func (ss *session) list(arg string) {
	dir := arg
	for strings.HasPrefix(dir, "-") { // options: -a, -la
		_, dir, _ = strings.Cut(dir, " ")
	}
	ents, _ := os.ReadDir(ss.disk(ss.virt(dir)))
	dc, ok := ss.data("Here comes the directory listing.")
	if !ok {
		return
	}
	w := bufio.NewWriter(dc)
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			continue
		}
		mt := fi.ModTime().UTC()
		stamp := mt.Format("Jan 02 15:04")
		if time.Since(mt) > 180*24*time.Hour || time.Until(mt) > time.Hour {
			stamp = mt.Format("Jan 02  2006")
		}
		fmt.Fprintf(w, "%s    1 0        0        %8d %s %s\r\n", fi.Mode().String(), fi.Size(), stamp, e.Name())
	}
	err := w.Flush()
	ss.s.untrack(dc)
	if err != nil {
		ss.reply(426, "Failure writing network stream.")
		return
	}
	ss.reply(226, "Directory send OK.")
}

// mdtm answers MDTM path with the mtime, and sets it for vsftpd's write
// form, MDTM YYYYMMDDHHMMSS path.
func (ss *session) mdtm(arg string) {
	const layout = "20060102150405"
	if stamp, name, ok := strings.Cut(arg, " "); ok && len(stamp) == len(layout) {
		if t, err := time.ParseInLocation(layout, stamp, time.UTC); err == nil {
			if os.Chtimes(ss.disk(ss.virt(name)), t, t) != nil {
				ss.reply(550, "Could not set file modification time.")
			} else {
				ss.reply(213, "File modification time set.")
			}
			return
		}
	}
	fi, err := os.Stat(ss.disk(ss.virt(arg)))
	if err != nil || !fi.Mode().IsRegular() {
		ss.reply(550, "Could not get file modification time.")
		return
	}
	ss.reply(213, fi.ModTime().UTC().Format(layout))
}
