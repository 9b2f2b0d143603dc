package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Report is everything one run measured; it is written as Markdown and JSON.
type Report struct {
	Date      time.Time    `json:"date"`
	Machine   Machine      `json:"machine"`
	Versions  []Version    `json:"versions"`
	Workers   int          `json:"workers"`
	Runs      int          `json:"runs"`
	Seed      uint64       `json:"seed"`
	Quick     bool         `json:"quick"`
	Datasets  []string     `json:"datasets"`
	Servers   []string     `json:"servers"`
	Tools     []ToolStatus `json:"tools"`
	FlagNotes []string     `json:"flag_notes"`
	Notes     []string     `json:"notes,omitempty"`
	Groups    []*Group     `json:"groups"`
	Live      []LiveResult `json:"live,omitempty"`
	Goals     []Goal       `json:"goals"`
	ElapsedS  float64      `json:"elapsed_s"`
	LogDir    string       `json:"log_dir"`
}

// ToolStatus says whether a compared tool is installed.
type ToolStatus struct {
	Name      string `json:"name"`
	Path      string `json:"path,omitempty"`
	Installed bool   `json:"installed"`
}

// Group is one dataset on one server.
type Group struct {
	Dataset dataset       `json:"dataset"`
	Server  string        `json:"server"`
	Cases   []*CaseResult `json:"cases"`
}

// CaseResult is one case: the work each repetition did and a row per tool.
type CaseResult struct {
	Case     string `json:"case"`
	Work     []Work `json:"work"` // per repetition, the same for every row
	Rows     []*Row `json:"rows"`
	entrants []entrant
}

// Work is what one repetition of a case had to do.
type Work struct {
	Rep   int   `json:"rep"`
	Files int64 `json:"files"` // files mirrored, scanned, changed or deleted
	Bytes int64 `json:"bytes"` // their bytes (0 for deletes)
}

// Row is one tool in one case, with its samples and their summary.
type Row struct {
	Tool         string   `json:"tool"`
	Kind         string   `json:"kind"`
	Command      string   `json:"command,omitempty"`
	NotInstalled bool     `json:"not_installed,omitempty"`
	Samples      []Sample `json:"samples"`
	Failed       int      `json:"failed"`
	WallS        Spread   `json:"wall_s"`       // over the successful runs
	PeakRSSMiB   float64  `json:"peak_rss_mib"` // the highest of the successful runs
	Rate         Spread   `json:"rate"`
	RateUnit     string   `json:"rate_unit"`
	// FerrySpeedup is ferry's speed divided by this row's (this row's wall
	// time over ferry's in the same repetition): above 1, ferry is faster.
	FerrySpeedup *Spread `json:"ferry_speedup,omitempty"`
	// OfLimit is, for ferry in the loopback case, its throughput as a
	// fraction of the fastest raw stream in the same repetition.
	OfLimit *Spread `json:"fraction_of_loopback_limit,omitempty"`
}

// Goal is one figure of DESIGN.md set against what was measured.
type Goal struct {
	Goal     string `json:"goal"`
	Target   string `json:"target"`
	Measured string `json:"measured"`
	Verdict  string `json:"verdict"` // met, not met, not measured
}

func (g *Group) addCase(name string, ents []entrant) *CaseResult {
	c := &CaseResult{Case: name, entrants: ents}
	for _, e := range ents {
		c.Rows = append(c.Rows, &Row{Tool: e.label, Kind: e.kind})
	}
	g.Cases = append(g.Cases, c)
	return c
}

// Failures counts the runs that failed (non-zero exit, timeout or a remote
// copy that did not match the source).
func (rep *Report) Failures() int {
	n := 0
	for _, g := range rep.Groups {
		for _, c := range g.Cases {
			for _, r := range c.Rows {
				for _, s := range r.Samples {
					if !s.OK {
						n++
					}
				}
			}
		}
	}
	return n
}

// summarize fills every row's statistics and ratios from its samples.
func (g *Group) summarize() {
	for _, c := range g.Cases {
		mb := g.Dataset.Name == DatasetLarge && c.Case != CaseDeletes && c.Case != CaseNoop
		ferry := c.ferryRow()
		limit := map[int]float64{} // rep -> fastest raw stream's wall time
		for _, r := range c.Rows {
			var walls, rates []float64
			r.Failed, r.PeakRSSMiB = 0, 0
			for _, s := range r.Samples {
				if !s.OK {
					r.Failed++
					continue
				}
				walls = append(walls, s.WallS)
				r.PeakRSSMiB = math.Max(r.PeakRSSMiB, float64(s.MaxRSSKiB)/1024)
				if w := c.work(s.Rep); s.WallS > 0 {
					if mb {
						rates = append(rates, float64(w.Bytes)/1e6/s.WallS)
					} else {
						rates = append(rates, float64(w.Files)/s.WallS)
					}
				}
				if (r.Kind == "curl" || r.Kind == "sftp") && (limit[s.Rep] == 0 || s.WallS < limit[s.Rep]) {
					limit[s.Rep] = s.WallS
				}
			}
			r.WallS, r.Rate = spread(walls), spread(rates)
			r.RateUnit = "files/s"
			if mb {
				r.RateUnit = "MB/s"
			}
		}
		for _, r := range c.Rows {
			if c.Case == CaseLoopback {
				if r.Kind == ToolFerry {
					r.OfLimit = pairwise(r, func(rep int) float64 { return limit[rep] }, false)
				}
				continue
			}
			if ferry != nil && r != ferry {
				r.FerrySpeedup = pairwise(r, func(rep int) float64 { return okWall(ferry, rep) }, true)
			}
		}
	}
}

// ferryRow is the row every ratio of the case is taken against: plain
// ferry, not ferry + git (whose ratio is then the Git stage's cost), even
// when --tools names ferry-git first; else the first ferry row.
func (c *CaseResult) ferryRow() *Row {
	var first *Row
	for _, r := range c.Rows {
		if r.Kind != ToolFerry {
			continue
		}
		if r.Tool == ToolFerry {
			return r
		}
		if first == nil {
			first = r
		}
	}
	return first
}

// pairwise is the spread of ref/wall (own=false) or wall/ref (own=true)
// over the repetitions where both ran successfully; nil if there are none.
func pairwise(r *Row, ref func(rep int) float64, own bool) *Spread {
	var xs []float64
	for _, s := range r.Samples {
		w := ref(s.Rep)
		if !s.OK || w <= 0 || s.WallS <= 0 {
			continue
		}
		if own {
			xs = append(xs, s.WallS/w)
		} else {
			xs = append(xs, w/s.WallS)
		}
	}
	if len(xs) == 0 {
		return nil
	}
	sp := spread(xs)
	return &sp
}

func okWall(r *Row, rep int) float64 {
	for _, s := range r.Samples {
		if s.Rep == rep && s.OK {
			return s.WallS
		}
	}
	return 0
}

func (c *CaseResult) work(rep int) Work {
	for _, w := range c.Work {
		if w.Rep == rep {
			return w
		}
	}
	return Work{}
}

func (rep *Report) group(dataset, server string) *Group {
	for _, g := range rep.Groups {
		if g.Dataset.Name == dataset && g.Server == server {
			return g
		}
	}
	return nil
}

func (g *Group) caseResult(name string) *CaseResult {
	if g == nil {
		return nil
	}
	for _, c := range g.Cases {
		if c.Case == name {
			return c
		}
	}
	return nil
}

func (c *CaseResult) row(tool string) *Row {
	if c == nil {
		return nil
	}
	for _, r := range c.Rows {
		if r.Tool == tool {
			return r
		}
	}
	return nil
}

// write saves the report as <date>-<host>.md and .json plus latest.md and
// latest.json in dir.
func (rep *Report) write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("results directory: %w", err)
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	md := []byte(rep.Markdown())
	stem := rep.Date.Format("2006-01-02") + "-" + safeName(rep.Machine.Host)
	for name, data := range map[string][]byte{
		stem + ".md": md, LatestMarkdown: md, stem + ".json": js, LatestJSON: js,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("write results: %w", err)
		}
	}
	return nil
}

func safeName(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '.' || r == '-' || r == '_' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9') {
			return r
		}
		return '_'
	}, s)
	if s == "" {
		return "host"
	}
	return s
}
