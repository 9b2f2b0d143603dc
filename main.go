// Command ferry keeps a remote copy of a local directory tree in sync over
// FTP, FTPS and SFTP. main only wires: it maps URL schemes to the remote
// backends, handles signals, and turns the outcome into an exit code.
package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"ferry/remote"
	"ferry/remote/file"
	"ferry/remote/ftp"
	"ferry/remote/sftp"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// openers is the only place that knows which protocols exist; every layer
// above receives this map and stays protocol-blind.
var openers = map[string]remote.Opener{
	"ftp":  ftp.Open,
	"ftps": ftp.Open,
	"sftp": sftp.Open,
	"file": file.Open,
}

// Exit codes of the user-facing contract (DESIGN.md).
const (
	exitOK    = 0
	exitUsage = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "version" || args[0] == "--version") {
		schemes := make([]string, 0, len(openers))
		for s := range openers {
			schemes = append(schemes, s)
		}
		sort.Strings(schemes)
		fmt.Fprintf(stdout, "ferry %s (protocols: %s)\n", version, strings.Join(schemes, ", "))
		return exitOK
	}
	fmt.Fprintln(stderr, "usage: ferry version\n\nThe mirror commands (ferry --once, ferry --config) are not in this build yet; see README.md.")
	return exitUsage
}
