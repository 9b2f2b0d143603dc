// Command ferry keeps a remote copy of a local directory tree in sync over
// FTP, FTPS and SFTP. main only wires: it maps URL schemes to the remote
// backends, turns the first SIGINT/SIGTERM into a cancellation (a second one
// exits at once), and hands over to the command line.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"

	"ferry/cli"
	"ferry/remote"
	"ferry/remote/file"
	"ferry/remote/ftp"
	"ferry/remote/sftp"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		cancel() // drain: in-flight work stops, the registry is saved
		<-sigs
		fmt.Fprintln(os.Stderr, "ferry: second signal, aborting")
		os.Exit(130)
	}()
	app := &cli.App{
		Version: version,
		// The only place that knows which protocols exist; every layer
		// above receives this map and stays protocol-blind.
		Openers: map[string]remote.Opener{
			"ftp":  ftp.Open,
			"ftps": ftp.Open,
			"sftp": sftp.Open,
			"file": file.Open,
		},
		Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv,
	}
	// FERRY_CPUPROFILE=file writes a CPU profile of the run, for the speed
	// work the benchmark drives (go tool pprof ferry file); "%p" in the
	// name becomes the process id, so each run of a bench keeps its own.
	if p := os.Getenv("FERRY_CPUPROFILE"); p != "" {
		p = strings.ReplaceAll(p, "%p", strconv.Itoa(os.Getpid()))
		if f, err := os.Create(p); err == nil {
			if err := pprof.StartCPUProfile(f); err == nil {
				defer pprof.StopCPUProfile()
			}
		}
	}
	code := app.Run(ctx, os.Args[1:])
	cancel()
	pprof.StopCPUProfile()
	os.Exit(code)
}
