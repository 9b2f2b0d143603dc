package sftp

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"ferry/remote"
)

// login holds the client side of one authentication: the methods offered
// and a record of what happened, so that a refusal can be explained in
// terms the user can act on.
type login struct {
	methods []ssh.AuthMethod
	offered []string // human descriptions, in the order they are tried
	agent   net.Conn // open while the handshake may still sign with it

	mu      sync.Mutex
	tried   []string // descriptions of methods actually attempted
	allowed []string // the methods the server said it accepts
}

// newLogin prepares the auth methods from the identity file, the SSH agent
// and the password. The caller must call close once the handshake is over.
func newLogin(o remote.Options, url string) (*login, error) {
	l := &login{}
	var signers []ssh.Signer
	var keyDesc []string

	var encrypted *ssh.PassphraseMissingError
	if o.IdentityFile != "" {
		s, err := readIdentity(o.IdentityFile)
		switch {
		case errors.As(err, &encrypted):
			// Handled below: usable only if the agent holds the key.
		case err != nil:
			return nil, &remote.Error{Op: "login", Path: url, Kind: remote.KindAuth, Err: err,
				Advice: "point identity_file at a readable private key in OpenSSH or PEM format"}
		default:
			signers = append(signers, s)
			keyDesc = append(keyDesc, "identity file "+o.IdentityFile)
		}
	}

	if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" {
		if c, err := net.Dial("unix", sock); err == nil {
			ag := agent.NewClient(c)
			if ss, err := ag.Signers(); err == nil && len(ss) > 0 {
				l.agent = c
				if encrypted != nil && encrypted.PublicKey != nil {
					// The agent already holds the unlocked key: prefer it.
					ss = preferKey(ss, encrypted.PublicKey)
				}
				signers = append(signers, ss...)
				keyDesc = append(keyDesc, fmt.Sprintf("ssh-agent (%d keys)", len(ss)))
			} else {
				_ = c.Close()
			}
		}
	}
	if encrypted != nil && !agentHolds(signers, encrypted.PublicKey) {
		l.close()
		return nil, &remote.Error{Op: "login", Path: url, Kind: remote.KindAuth,
			Err:    fmt.Errorf("identity file %s is protected by a passphrase, which ferry cannot ask for", o.IdentityFile),
			Advice: fmt.Sprintf("load the key into ssh-agent (eval $(ssh-agent); ssh-add %s) and run ferry where SSH_AUTH_SOCK is set", o.IdentityFile)}
	}

	if len(signers) > 0 {
		desc := "publickey (" + strings.Join(keyDesc, ", ") + ")"
		l.offered = append(l.offered, desc)
		l.methods = append(l.methods, ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
			l.note(desc)
			return signers, nil
		}))
	}
	if o.Password != "" {
		pw := o.Password
		l.offered = append(l.offered, "password", "keyboard-interactive")
		l.methods = append(l.methods,
			ssh.PasswordCallback(func() (string, error) {
				l.note("password")
				return pw, nil
			}),
			// Servers that check passwords through PAM often offer only
			// keyboard-interactive, asking one "Password:" question.
			ssh.KeyboardInteractive(func(_, _ string, questions []string, _ []bool) ([]string, error) {
				l.note("keyboard-interactive")
				answers := make([]string, len(questions))
				for i := range answers {
					answers[i] = pw
				}
				return answers, nil
			}))
	}
	return l, nil
}

// readIdentity parses an unencrypted private key file.
func readIdentity(file string) (ssh.Signer, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("identity file: %w", err)
	}
	s, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		var pm *ssh.PassphraseMissingError
		if errors.As(err, &pm) {
			return nil, err
		}
		return nil, fmt.Errorf("identity file %s: %w", file, err)
	}
	return s, nil
}

func agentHolds(signers []ssh.Signer, pub ssh.PublicKey) bool {
	if pub == nil {
		return false
	}
	return slices.IndexFunc(signers, func(s ssh.Signer) bool {
		return bytes.Equal(s.PublicKey().Marshal(), pub.Marshal())
	}) >= 0
}

// preferKey moves the signer for pub to the front: servers cap the number
// of keys tried (MaxAuthTries), so the one the user named goes first.
func preferKey(ss []ssh.Signer, pub ssh.PublicKey) []ssh.Signer {
	i := slices.IndexFunc(ss, func(s ssh.Signer) bool {
		return bytes.Equal(s.PublicKey().Marshal(), pub.Marshal())
	})
	if i <= 0 {
		return ss
	}
	out := append([]ssh.Signer{ss[i]}, ss[:i]...)
	return append(out, ss[i+1:]...)
}

func (l *login) note(method string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !slices.Contains(l.tried, method) {
		l.tried = append(l.tried, method)
	}
}

// callback records which methods the server accepts; returning nil lets
// the ssh package pick the next method from l.methods as usual.
func (l *login) callback(ctx *ssh.ClientAuthContext) (ssh.AuthMethod, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.allowed = slices.Clone(ctx.AllowedMethods)
	return nil, nil
}

// refused explains a failed login: what was tried, what the server takes.
func (l *login) refused(user, url string, cause error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var tried string
	switch {
	case len(l.tried) > 0:
		tried = strings.Join(l.tried, ", ")
	case len(l.offered) > 0:
		tried = "nothing the server accepts (had " + strings.Join(l.offered, ", ") + ")"
	default:
		tried = "nothing (no identity_file, no ssh-agent keys and no password were available)"
	}
	msg := fmt.Sprintf("login as %q refused; tried %s", user, tried)
	if len(l.allowed) > 0 {
		msg += "; the server accepts " + strings.Join(l.allowed, ", ")
	}
	return &remote.Error{Op: "login", Path: url, Kind: remote.KindAuth,
		Err:    fmt.Errorf("%s: %w", msg, cause),
		Advice: "check the user name, then the password (FERRY_PASSWORD or password_file) or the key (identity_file, or a key loaded into ssh-agent) that the server accepts for this user"}
}

func (l *login) close() {
	if l.agent != nil {
		_ = l.agent.Close()
		l.agent = nil
	}
}

// isAuthRefusal recognises the ssh package's "no method worked" error,
// which has no type of its own, and OpenSSH hanging up after MaxAuthTries
// (an agent full of keys): retrying either would only fail again.
func isAuthRefusal(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "unable to authenticate") || strings.Contains(msg, "Too many authentication failures")
}
