package ftp

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/textproto"
	"regexp"

	"ferry/remote"
)

// tooManyText matches the replies servers use to turn away one connection too
// many; some send it as 421 at connect, others as 530 at login.
var tooManyText = regexp.MustCompile(`(?i)too many|maximum (number|amount)|connection limit|max(imum)? ?(clients|connections|users)|limit reached`)

// noSpaceText matches disk-full replies that come with a generic code (vsftpd
// answers 451 "Failure writing to local file" on ENOSPC and EDQUOT).
var noSpaceText = regexp.MustCompile(`(?i)no space|disk full|quota|failure writing|insufficient storage|not enough space`)

// notExistText matches 550 texts that mean the path is missing.
var notExistText = regexp.MustCompile(`(?i)no such|not found|does not exist|doesn't exist|can't find|cannot find|failed to open|could not get file`)

// oopsText matches vsftpd's "500 OOPS: ..." replies: its report of an
// internal failure (priv_sock_get_int, vsf_sysutil_bind under load), after
// which it ends the session. The fault is the session's, not the file's.
var oopsText = regexp.MustCompile(`^OOPS`)

// classifyDial maps errors of connecting and logging in.
func classifyDial(op, target string, err error) error {
	var tp *textproto.Error
	if errors.As(err, &tp) && tp.Code == 530 && !tooManyText.MatchString(tp.Msg) {
		return &remote.Error{Op: op, Path: target, Kind: remote.KindAuth, Err: err}
	}
	var ce *tls.CertificateVerificationError
	var ue x509.UnknownAuthorityError
	var he x509.HostnameError
	if errors.As(err, &ce) || errors.As(err, &ue) || errors.As(err, &he) {
		return &remote.Error{Op: op, Path: target, Kind: remote.KindHostKey, Err: err,
			Advice: "the server's TLS certificate is not trusted: if it is self-signed, give its CA certificate with tls_ca_file"}
	}
	return classify(op, target, err)
}

// classify maps an error of the FTP library onto remote's kinds. Replies
// that are not errors of the protocol (resets, timeouts, EOF, TLS alerts) are
// transport failures: the session is dropped and the next call redials.
func classify(op, rel string, err error) error {
	var re *remote.Error
	if errors.As(err, &re) {
		return err // classified already
	}
	var ne *notExistErr
	if errors.As(err, &ne) {
		return &remote.Error{Op: op, Path: rel, Kind: remote.KindNotExist, Err: err}
	}
	var tp *textproto.Error
	if !errors.As(err, &tp) {
		return &remote.Error{Op: op, Path: rel, Kind: remote.KindTransport, Err: err}
	}
	kind := remote.KindOther
	switch c := tp.Code; {
	case c == 421 && tooManyText.MatchString(tp.Msg), c == 530 && tooManyText.MatchString(tp.Msg):
		kind = remote.KindTooMany
	case c == 421, c == 425, c == 426:
		kind = remote.KindTransport
	case c == 500 && oopsText.MatchString(tp.Msg):
		kind = remote.KindTransport
	case c == 452, c == 552:
		kind = remote.KindDiskFull
	case c == 451 && noSpaceText.MatchString(tp.Msg):
		kind = remote.KindDiskFull
	case c == 530:
		kind = remote.KindPermission
	case c >= 400 && c < 500:
		kind = remote.KindBusy
	case c == 502, c == 504:
		kind = remote.KindUnsupported
	case c == 550 && notExistText.MatchString(tp.Msg):
		kind = remote.KindNotExist
	case c == 550, c == 553:
		kind = remote.KindPermission
	}
	return &remote.Error{Op: op, Path: rel, Kind: kind, Err: err}
}

// is550 reports a "file unavailable" reply, the answer to SIZE, MDTM, CWD,
// DELE or RNFR on a path that is not there (or not allowed).
func is550(err error) bool {
	var tp *textproto.Error
	return errors.As(err, &tp) && (tp.Code == 550 || tp.Code == 553)
}
