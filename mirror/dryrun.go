package mirror

import (
	"context"
	"fmt"
	"io"
	"os"

	"ferry/entry"
	"ferry/planner"
	"ferry/remote"
	"ferry/scanner"
)

// printSink prints a plan instead of recording it.
type printSink struct{ w io.Writer }

func (p printSink) Put(e entry.Entry) error {
	if e.State != entry.Pending {
		return nil
	}
	switch e.Action {
	case entry.Upload:
		_, err := fmt.Fprintf(p.w, "upload  %s (%s)\n", e.Path, remote.Bytes(e.LocalSize))
		return err
	default:
		_, err := fmt.Fprintf(p.w, "%-7s %s\n", e.Action, e.Path)
		return err
	}
}

func (p printSink) Plan(e entry.Entry) error { return p.Put(e) }
func (printSink) Forget(string) error        { return nil }

// dryRun plans and prints; it changes nothing, neither on the remote nor in
// the registry.
func (r *stages) dryRun(ctx context.Context, first remote.Conn, listRemote bool, res *passed) (Outcome, error) {
	out := r.o.DryRunOut
	if out == nil {
		out = os.Stdout
	}
	pl := planner.New(r.job, printSink{out}, r.planOptions())
	ls := newListers(first, r.o, r.noteLost)
	defer ls.close()
	var list scanner.ListFunc
	if listRemote {
		list = ls.list
	}
	err := scanner.WalkPairs(ctx, scanner.NewWalker(r.o.Source, scanner.Options{Excludes: r.o.Excludes, Links: r.o.Links}), list, 1, func(p *scanner.Pair) error {
		if p.RemoteErr != nil && !pl.RemoteNotDir(p.Local.Path) {
			return p.RemoteErr
		}
		return pl.Dir(ctx, p)
	})
	if err == nil {
		err = pl.RemoteOnly(ctx, ls.list, 1)
	}
	res.plan = pl.Stats
	if err != nil {
		if ctx.Err() != nil {
			return Interrupted, err
		}
		return Aborted, err
	}
	if r.o.Delete && pl.Stats.Deletes > 0 {
		total, _ := r.job.Count(ctx, entry.Done)
		if limit := r.o.MaxDelete.Limit(total); limit >= 0 && pl.Stats.Deletes > limit {
			return Refused, fmt.Errorf("refused: %d deletions planned, more than --max-delete allows (%d)", pl.Stats.Deletes, limit)
		}
	}
	return Complete, nil
}
