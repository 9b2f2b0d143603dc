package bench

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// The datasets, in the order they run.
const (
	DatasetSmall   = "small"   // 10,000 files of 1-16 KiB in 300 directories
	DatasetWeb     = "web"     // a website: pages, images, scripts, styles, fonts
	DatasetLarge   = "large"   // 4 files of 256 MiB
	DatasetDeep    = "deep"    // two narrow chains of 50 nested directories
	DatasetMillion = "million" // 1,000 directories x 1,000 empty files (memory case)
)

// AllDatasets lists every dataset; DefaultDatasets leaves out the million
// files, which take minutes to create, mirror and delete.
var (
	AllDatasets     = []string{DatasetSmall, DatasetWeb, DatasetLarge, DatasetDeep, DatasetLive, DatasetMillion}
	DefaultDatasets = []string{DatasetSmall, DatasetWeb, DatasetLarge, DatasetDeep, DatasetLive}
)

// layoutVersion is part of the cache key: bump it when a layout changes so
// that stale cached trees are not reused.
const layoutVersion = 1

// emitFunc receives one file of a layout: its slash-separated relative path
// and size in bytes.
type emitFunc func(rel string, size int64) error

// describeDataset is the one-line description the report shows.
func describeDataset(name string, quick bool) string {
	if quick {
		return "quick (tiny) variant of " + describeDataset(name, false)
	}
	switch name {
	case DatasetSmall:
		return "10,000 files of 1-16 KiB (uniform) in 300 directories (20 x 15)"
	case DatasetWeb:
		return "a website: 1,600 HTML pages (4-60 KiB), 500 images (10-800 KiB, log-uniform), 80 scripts and styles, 16 fonts, a sitemap"
	case DatasetLarge:
		return "4 files of 256 MiB"
	case DatasetDeep:
		return "2 chains of 50 nested directories, 4 files of 1-8 KiB at each level"
	case DatasetMillion:
		return "1,000 directories x 1,000 empty files"
	}
	return name
}

// layout calls emit for every file of the dataset, in a fixed order; all
// randomness comes from r, so the same seed gives the same tree.
func layout(name string, quick bool, r *rand.Rand, emit emitFunc) error {
	uniform := func(lo, hi int64) int64 { return lo + r.Int64N(hi-lo+1) }
	logUniform := func(lo, hi int64) int64 {
		return int64(float64(lo) * math.Exp(r.Float64()*math.Log(float64(hi)/float64(lo))))
	}
	const KiB, MiB = 1 << 10, 1 << 20
	switch name {
	case DatasetSmall:
		total, top, sub := 10000, 20, 15
		if quick {
			total, top, sub = 30, 3, 1
		}
		for n := 0; n < total; n++ {
			dir := n * top * sub / total // contiguous blocks of about total/(top*sub) files
			rel := fmt.Sprintf("a%02d/b%02d/f%05d.dat", dir/sub, dir%sub, n)
			if err := emit(rel, uniform(KiB, 16*KiB)); err != nil {
				return err
			}
		}
	case DatasetWeb:
		scale := 1
		if quick {
			scale = 40
		}
		files := []struct {
			n        int
			path     func(i int) string
			lo, hi   int64
			logScale bool
		}{
			{1200, func(i int) string {
				return fmt.Sprintf("blog/%d/%02d/post-%04d/index.html", 2015+i%10, 1+i%12, i)
			}, 4 * KiB, 60 * KiB, false},
			{400, func(i int) string { return fmt.Sprintf("docs/section-%02d/page-%03d.html", i%20, i) }, 4 * KiB, 40 * KiB, false},
			{500, func(i int) string { return fmt.Sprintf("assets/img/%02d/photo-%04d.jpg", i%25, i) }, 10 * KiB, 800 * KiB, true},
			{60, func(i int) string { return fmt.Sprintf("assets/js/chunk-%03d.js", i) }, 2 * KiB, 400 * KiB, true},
			{20, func(i int) string { return fmt.Sprintf("assets/css/style-%02d.css", i) }, 2 * KiB, 120 * KiB, true},
			{16, func(i int) string { return fmt.Sprintf("assets/fonts/font-%02d.woff2", i) }, 20 * KiB, 160 * KiB, false},
		}
		for _, top := range []struct {
			rel  string
			size int64
		}{{"index.html", 24 * KiB}, {"robots.txt", 64}, {"sitemap.xml", 200 * KiB}, {"favicon.ico", 5 * KiB}} {
			if err := emit(top.rel, top.size); err != nil {
				return err
			}
		}
		for _, g := range files {
			for i := 0; i < max(1, g.n/scale); i++ {
				size := uniform(g.lo, g.hi)
				if g.logScale {
					size = logUniform(g.lo, g.hi)
				}
				if err := emit(g.path(i), size); err != nil {
					return err
				}
			}
		}
	case DatasetLarge:
		n, size := 4, int64(256*MiB)
		if quick {
			n, size = 2, 4*MiB
		}
		for i := 0; i < n; i++ {
			if err := emit(fmt.Sprintf("large-%d.bin", i), size); err != nil {
				return err
			}
		}
	case DatasetDeep:
		chains, depth, per := 2, 50, 4
		if quick {
			chains, depth, per = 1, 6, 2
		}
		for c := 0; c < chains; c++ {
			dir := fmt.Sprintf("chain-%d", c)
			for d := 0; d < depth; d++ {
				dir += fmt.Sprintf("/level-%02d", d)
				for f := 0; f < per; f++ {
					if err := emit(fmt.Sprintf("%s/file-%d.txt", dir, f), uniform(KiB, 8*KiB)); err != nil {
						return err
					}
				}
			}
		}
	case DatasetMillion:
		dirs, per := 1000, 1000
		if quick {
			dirs, per = 10, 10
		}
		for d := 0; d < dirs; d++ {
			for f := 0; f < per; f++ {
				if err := emit(fmt.Sprintf("d%04d/f%04d", d, f), 0); err != nil {
					return err
				}
			}
		}
	default:
		return fmt.Errorf("unknown dataset %q (have %v)", name, AllDatasets)
	}
	return nil
}

// dataset is a generated tree in the cache.
type dataset struct {
	Name  string `json:"name"`
	Desc  string `json:"description"`
	Dir   string `json:"-"`
	Files int64  `json:"files"`
	Bytes int64  `json:"bytes"`
}

// ensureDataset returns the cached tree for (name, quick, seed), generating
// it first if it is missing. A tree is generated in a temporary directory and
// renamed into place, so an interrupted generation is never reused.
func ensureDataset(cacheDir, name string, quick bool, seed uint64, logf func(string, ...any)) (*dataset, error) {
	variant := "full"
	if quick {
		variant = "quick"
	}
	dir := filepath.Join(cacheDir, fmt.Sprintf("%s-%s-seed%d-v%d", name, variant, seed, layoutVersion))
	ds := &dataset{Name: name, Desc: describeDataset(name, quick), Dir: dir}
	if _, err := os.Stat(dir); err == nil {
		n, b, err := countTree(dir)
		if err != nil {
			return nil, fmt.Errorf("dataset %s: %w", name, err)
		}
		ds.Files, ds.Bytes = n, b
		logf("dataset %s: cached in %s (%d files, %s)", name, dir, n, human(b))
		return ds, nil
	}
	logf("dataset %s: generating in %s", name, dir)
	tmp := dir + ".partial"
	if err := os.RemoveAll(tmp); err != nil {
		return nil, fmt.Errorf("dataset %s: %w", name, err)
	}
	r := rand.New(rand.NewPCG(seed, hashName(name)))
	content := rand.NewChaCha8(seedBytes(seed, name))
	made := map[string]bool{}
	err := layout(name, quick, r, func(rel string, size int64) error {
		p := filepath.Join(tmp, filepath.FromSlash(rel))
		if d := filepath.Dir(p); !made[d] {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
			made[d] = true
		}
		ds.Files++
		ds.Bytes += size
		return writeRandom(p, size, content)
	})
	if err == nil {
		err = os.Rename(tmp, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("dataset %s: generate: %w", name, err)
	}
	return ds, nil
}

// writeRandom creates path with size bytes from the content stream; an empty
// file is just created, which is what the million-file case needs.
func writeRandom(path string, size int64, content *rand.ChaCha8) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if size > 0 {
		_, err = io.CopyN(f, content, size)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func hashName(s string) uint64 {
	h := uint64(14695981039346656037) // FNV-1a
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

func seedBytes(seed uint64, name string) [32]byte {
	var b [32]byte
	h := hashName(name)
	for i := 0; i < 8; i++ {
		b[i] = byte(seed >> (8 * i))
		b[8+i] = byte(h >> (8 * i))
	}
	copy(b[16:], "ferry bench data")
	return b
}

// cloneTree makes dst a copy of src made of hard links (a plain copy if the
// file system refuses links). The cases change the clone only by writing new
// files and renaming them over, or by unlinking, so the cache stays intact.
func cloneTree(src, dst string) error {
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		if err := os.Link(p, out); err == nil {
			return nil
		}
		return copyFile(p, out)
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// onePercent is how many of n files the "1%" cases touch: at least one.
func onePercent(n int) int { return max(1, n/100) }

// changeFiles rewrites 1% of the files under root with new content and a new
// size (never the old one: rclone's FTP backend compares sizes only, since it
// cannot set times on vsftpd). It returns how many files and bytes changed.
func changeFiles(root string, r *rand.Rand, content *rand.ChaCha8) (int, int64, error) {
	files, err := listTree(root)
	if err != nil {
		return 0, 0, err
	}
	if len(files) == 0 {
		return 0, 0, errors.New("no files to change")
	}
	var bytes int64
	pick := r.Perm(len(files))[:min(len(files), onePercent(len(files)))]
	for _, i := range pick {
		f := files[i]
		delta := 1 + r.Int64N(max(1, f.size/16))
		size := f.size + delta
		if f.size > delta && r.IntN(2) == 0 {
			size = f.size - delta
		}
		p := filepath.Join(root, filepath.FromSlash(f.rel))
		tmp := filepath.Join(filepath.Dir(p), ".bench-change.tmp")
		if err := writeRandom(tmp, size, content); err != nil {
			return 0, 0, fmt.Errorf("change %s: %w", f.rel, err)
		}
		if err := os.Rename(tmp, p); err != nil {
			return 0, 0, fmt.Errorf("change %s: %w", f.rel, err)
		}
		bytes += size
	}
	return len(pick), bytes, nil
}

// deleteFiles removes 1% of the files under root, but never the last one:
// ferry refuses --delete with an empty source, as it should.
func deleteFiles(root string, r *rand.Rand) (int, error) {
	files, err := listTree(root)
	if err != nil {
		return 0, err
	}
	n := min(onePercent(len(files)), len(files)-1)
	if n <= 0 {
		return 0, nil
	}
	for _, i := range r.Perm(len(files))[:n] {
		if err := os.Remove(filepath.Join(root, filepath.FromSlash(files[i].rel))); err != nil {
			return 0, fmt.Errorf("delete: %w", err)
		}
	}
	return n, nil
}

// human formats a byte count.
func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
