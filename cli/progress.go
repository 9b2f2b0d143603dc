package cli

import (
	"io"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// bars shows live progress: files and bytes, with rate and ETA. The totals
// grow while the scan finds work. Log lines written to bars appear above
// them instead of tearing them.
type bars struct {
	p            *mpb.Progress
	files, bytes *mpb.Bar

	mu                     sync.Mutex
	totalFiles, totalBytes int64
	last                   time.Time
}

func newBars(w io.Writer) *bars {
	p := mpb.New(mpb.WithOutput(w), mpb.WithWidth(32), mpb.WithRefreshRate(120*time.Millisecond))
	b := &bars{p: p, last: time.Now()}
	b.files = p.AddBar(0,
		mpb.PrependDecorators(decor.Name("files ", decor.WC{W: 6}), decor.CountersNoUnit("%d / %d", decor.WCSyncWidth)),
		mpb.AppendDecorators(decor.Percentage(decor.WC{W: 5})),
	)
	b.bytes = p.AddBar(0,
		mpb.PrependDecorators(decor.Name("bytes ", decor.WC{W: 6}), decor.Counters(decor.SizeB1024(0), "% .1f / % .1f", decor.WCSyncWidth)),
		mpb.AppendDecorators(
			decor.EwmaSpeed(decor.SizeB1024(0), "% .1f", 30, decor.WC{W: 12}),
			decor.Name("  eta "),
			decor.EwmaETA(decor.ET_STYLE_GO, 30),
		),
	)
	return b
}

// Planned adds work found by the scan.
func (b *bars) Planned(files, bytes int64) {
	b.mu.Lock()
	b.totalFiles += files
	b.totalBytes += bytes
	tf, tb := b.totalFiles, b.totalBytes
	b.mu.Unlock()
	b.files.SetTotal(tf, false)
	b.bytes.SetTotal(tb, false)
}

// Done counts one finished item.
func (b *bars) Done(_ string, n int64) {
	b.mu.Lock()
	d := time.Since(b.last)
	b.last = time.Now()
	b.mu.Unlock()
	b.files.Increment()
	if n > 0 {
		b.bytes.EwmaIncrInt64(n, d)
	}
}

// Failed counts one item that gave up.
func (b *bars) Failed(string, error) { b.files.Increment() }

// Phase is shown in the log lines only.
func (b *bars) Phase(string) {}

func (b *bars) Write(p []byte) (int, error) { return b.p.Write(p) }

// Close completes the bars at their current values and stops drawing.
func (b *bars) Close() {
	b.files.SetTotal(-1, true)
	b.bytes.SetTotal(-1, true)
	b.p.Wait()
}
