package sftp

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"ferry/remote"
)

// hostKeys checks the server's key against known_hosts. There is
// deliberately no way to turn it off: an unknown key is never accepted.
type hostKeys struct {
	file  string
	check ssh.HostKeyCallback
	host  string // as written in known_hosts: "host" or "[host]:port"
	t     *remote.Target
	url   string

	mu  sync.Mutex
	err error // the classified refusal, set when the callback rejects
}

// newHostKeys loads known_hosts. A missing file is an empty one: every
// host is unknown, and the error says how to add it.
func newHostKeys(t *remote.Target, o remote.Options, url string) (*hostKeys, error) {
	file := o.KnownHostsFile
	if file == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, &remote.Error{Op: "login", Path: url, Kind: remote.KindHostKey,
				Err: fmt.Errorf("no known_hosts file: %w", err), Advice: "name a known_hosts file with --known-hosts (or known_hosts = in the config)"}
		}
		file = filepath.Join(home, ".ssh", "known_hosts")
	}
	h := &hostKeys{file: file, host: knownhosts.Normalize(t.Addr()), t: t, url: url}
	cb, err := knownhosts.New(file)
	if errors.Is(err, fs.ErrNotExist) {
		cb, err = knownhosts.New()
	}
	if err != nil {
		return nil, &remote.Error{Op: "login", Path: url, Kind: remote.KindHostKey, Err: err,
			Advice: "fix or delete the line named in " + file}
	}
	h.check = cb
	return h, nil
}

// algorithms returns the key algorithms known_hosts holds for this host.
// Offering only those makes the server present a key we can verify: a
// server with ed25519 and RSA keys, known here by its RSA key, would
// otherwise present ed25519 and look like a changed key.
func (h *hostKeys) algorithms(remoteAddr net.Addr) []string {
	probe, err := ssh.NewPublicKey(ed25519.PublicKey(make([]byte, ed25519.PublicKeySize)))
	if err != nil {
		return nil
	}
	var ke *knownhosts.KeyError
	if err := h.check(h.t.Addr(), remoteAddr, probe); !errors.As(err, &ke) {
		return nil
	}
	var algos []string
	for _, k := range ke.Want {
		for _, a := range algorithmsFor(k.Key.Type()) {
			if !slices.Contains(algos, a) {
				algos = append(algos, a)
			}
		}
	}
	return algos
}

// algorithmsFor maps a key type to the signature algorithms that prove it:
// an RSA key is presented as rsa-sha2-* by modern servers.
func algorithmsFor(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{keyType}
}

// callback is the ssh.HostKeyCallback; it keeps the classified error so
// that login can return it instead of the ssh package's wrapped text.
func (h *hostKeys) callback(hostname string, remoteAddr net.Addr, key ssh.PublicKey) error {
	err := h.check(hostname, remoteAddr, key)
	if err == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.err = h.explain(key, err)
	return h.err
}

// refusal is the classified error from the last callback, or nil.
func (h *hostKeys) refusal() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

func (h *hostKeys) explain(key ssh.PublicKey, err error) error {
	offered := key.Type() + " " + ssh.FingerprintSHA256(key)
	keyscan := fmt.Sprintf("ssh-keyscan -p %d %s >> %s", h.t.Port, h.t.Host, h.file)
	var ke *knownhosts.KeyError
	var re *knownhosts.RevokedError
	switch {
	case errors.As(err, &re):
		return &remote.Error{Op: "login", Path: h.url, Kind: remote.KindHostKey,
			Err:    fmt.Errorf("host key %s of %s is marked @revoked at %s:%d", offered, h.host, re.Revoked.Filename, re.Revoked.Line),
			Advice: "the server presents a key that was revoked; ask its admin what happened before connecting"}
	case errors.As(err, &ke) && len(ke.Want) == 0:
		where := "not in " + h.file
		if _, serr := os.Stat(h.file); errors.Is(serr, fs.ErrNotExist) {
			where = h.file + " does not exist"
		}
		return &remote.Error{Op: "login", Path: h.url, Kind: remote.KindHostKey,
			Err:    fmt.Errorf("unknown host key for %s: %s (%s)", h.host, offered, where),
			Advice: "verify the fingerprint with the server's admin, then add it: " + keyscan}
	case errors.As(err, &ke):
		known := ke.Want[0]
		for _, k := range ke.Want {
			if k.Key.Type() == key.Type() {
				known = k // the line the server's key should have matched
				break
			}
		}
		return &remote.Error{Op: "login", Path: h.url, Kind: remote.KindHostKey,
			Err: fmt.Errorf("HOST KEY CHANGED for %s: the server offered %s, but %s:%d holds %s %s; "+
				"either the server was reinstalled or someone is intercepting the connection",
				h.host, offered, known.Filename, known.Line, known.Key.Type(), ssh.FingerprintSHA256(known.Key)),
			Advice: fmt.Sprintf("check the new fingerprint with the server's admin; only if it is right, remove the old key "+
				"with: ssh-keygen -R '%s' -f %s, then add the new one: %s", h.host, h.file, keyscan)}
	}
	return &remote.Error{Op: "login", Path: h.url, Kind: remote.KindHostKey, Err: err}
}
