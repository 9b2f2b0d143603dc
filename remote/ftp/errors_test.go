package ftp

import (
	"errors"
	"io"
	"net/textproto"
	"syscall"
	"testing"

	"ferry/remote"
)

func TestClassify(t *testing.T) {
	reply := func(code int, msg string) error { return &textproto.Error{Code: code, Msg: msg} }
	tests := []struct {
		name string
		err  error
		want remote.Kind
	}{
		{"vsftpd max_per_ip", reply(421, "There are too many connections from your internet address."), remote.KindTooMany},
		{"vsftpd max_clients", reply(421, "There are too many connected users, please try later."), remote.KindTooMany},
		{"pure-ftpd per-ip", reply(421, "Too many connections (8) from this IP"), remote.KindTooMany},
		{"proftpd MaxClients at login", reply(530, "Sorry, the maximum number of clients (5) for this user are already connected."), remote.KindTooMany},
		{"filezilla", reply(530, "Connection limit reached"), remote.KindTooMany},
		{"service closing", reply(421, "Timeout."), remote.KindTransport},
		{"service not available", reply(421, "Service not available, closing control connection."), remote.KindTransport},
		{"data conn failed", reply(425, "Failed to establish connection."), remote.KindTransport},
		{"transfer aborted", reply(426, "Failure reading network stream."), remote.KindTransport},
		{"452", reply(452, "Insufficient storage space"), remote.KindDiskFull},
		{"552", reply(552, "Exceeded storage allocation"), remote.KindDiskFull},
		{"vsftpd ENOSPC", reply(451, "Failure writing to local file."), remote.KindDiskFull},
		{"transient 450", reply(450, "File busy"), remote.KindBusy},
		{"missing", reply(550, "No such file or directory"), remote.KindNotExist},
		{"vsftpd size", reply(550, "Could not get file size."), remote.KindNotExist},
		{"denied", reply(550, "Permission denied."), remote.KindPermission},
		{"cannot create", reply(553, "Could not create file."), remote.KindPermission},
		{"not implemented", reply(502, "Command not implemented."), remote.KindUnsupported},
		{"vsftpd priv_sock", reply(500, "OOPS: priv_sock_get_int"), remote.KindTransport},
		{"vsftpd bind", reply(500, "OOPS: vsf_sysutil_bind"), remote.KindTransport},
		{"syntax error", reply(500, "Unknown command."), remote.KindOther},
		{"eof", io.EOF, remote.KindTransport},
		{"reset", syscall.ECONNRESET, remote.KindTransport},
		{"forced 550", notExist(reply(550, "Failed.")), remote.KindNotExist},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := classify("put", "a/b", tc.err)
			if got := remote.KindOf(err); got != tc.want {
				t.Fatalf("classify(%v) = kind %v, want %v", tc.err, got, tc.want)
			}
			if !errors.Is(err, tc.err) {
				t.Fatalf("classified error lost its cause")
			}
		})
	}
	if k := remote.KindOf(classifyDial("login", "ftp://u@h", reply(530, "Login incorrect."))); k != remote.KindAuth {
		t.Fatalf("530 at login: kind %v, want auth", k)
	}
}
