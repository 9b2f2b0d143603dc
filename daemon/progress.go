package daemon

import "sync/atomic"

// passProgress counts, for status, what the running scan found to do and
// what the job has finished since it began (live work included). It is the
// session's mirror.Progress.
type passProgress struct {
	plannedFiles, plannedBytes, doneFiles, doneBytes, failed atomic.Int64
}

func (p *passProgress) Planned(files, bytes int64) {
	p.plannedFiles.Add(files)
	p.plannedBytes.Add(bytes)
}

func (p *passProgress) Done(_ string, bytes int64) {
	p.doneFiles.Add(1)
	p.doneBytes.Add(bytes)
}

func (p *passProgress) Failed(string, error) { p.failed.Add(1) }

func (p *passProgress) Phase(string) {}

// reset starts counting for a new scan.
func (p *passProgress) reset() {
	for _, c := range []*atomic.Int64{&p.plannedFiles, &p.plannedBytes, &p.doneFiles, &p.doneBytes, &p.failed} {
		c.Store(0)
	}
}
