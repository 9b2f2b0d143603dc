package bench

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
)

// ferryMarker is the file ferry keeps at the root of a target to know the
// remote is the one its registry describes: ferry's bookkeeping, not part
// of the copy (the name is ferry's default marker).
const ferryMarker = ".ferry-marker"

// isMarker reports whether p, under root, is ferry's marker at the root.
func isMarker(root, p string) bool { return p == filepath.Join(root, ferryMarker) }

// fileEntry is one regular file of a tree.
type fileEntry struct {
	rel  string
	size int64
}

// listTree returns the regular files under root, sorted by path.
func listTree(root string) ([]fileEntry, error) {
	var out []fileEntry
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() || isMarker(root, p) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out = append(out, fileEntry{filepath.ToSlash(rel), fi.Size()})
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].rel < out[j].rel })
	return out, err
}

// countTree counts regular files and their bytes without keeping names,
// for trees too large to list (the million files).
func countTree(root string) (files, bytes int64, err error) {
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && !isMarker(root, p) {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			files++
			bytes += fi.Size()
		}
		return nil
	})
	return files, bytes, err
}

// compareTrees checks that dst holds exactly the regular files of src with
// the same sizes; any missing, extra (a leftover temporary name, say) or
// short file is reported.
func compareTrees(src, dst string) error {
	want, err := listTree(src)
	if err != nil {
		return fmt.Errorf("list source: %w", err)
	}
	got, err := listTree(dst)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("list remote copy: %w", err)
	}
	return compareLists("remote copy", want, got)
}

// compareLists checks that got (a copy, named what) holds exactly the files
// of want with the same sizes; both are sorted by path.
func compareLists(what string, want, got []fileEntry) error {
	var missing, extra, wrong []string
	i, j := 0, 0
	for i < len(want) || j < len(got) {
		switch {
		case j == len(got) || (i < len(want) && want[i].rel < got[j].rel):
			missing = append(missing, want[i].rel)
			i++
		case i == len(want) || got[j].rel < want[i].rel:
			extra = append(extra, got[j].rel)
			j++
		default:
			if want[i].size != got[j].size {
				wrong = append(wrong, fmt.Sprintf("%s (%d bytes, want %d)", got[j].rel, got[j].size, want[i].size))
			}
			i++
			j++
		}
	}
	if len(missing)+len(extra)+len(wrong) == 0 {
		return nil
	}
	return fmt.Errorf("%s differs from the source (%d files there, %d in the source): %s%s%s",
		what, len(got), len(want), few("missing", missing), few("extra", extra), few("wrong size", wrong))
}

// compareCounts is compareTrees for trees too large to list: it compares
// file counts and total bytes only.
func compareCounts(src, dst string) error {
	n1, b1, err := countTree(src)
	if err != nil {
		return fmt.Errorf("count source: %w", err)
	}
	n2, b2, err := countTree(dst)
	if err != nil {
		return fmt.Errorf("count remote copy: %w", err)
	}
	if n1 != n2 || b1 != b2 {
		return fmt.Errorf("remote copy has %d files (%d bytes), source %d (%d bytes)", n2, b2, n1, b1)
	}
	return nil
}

func few(what string, names []string) string {
	if len(names) == 0 {
		return ""
	}
	s := fmt.Sprintf("%d %s: %v", len(names), what, names[:min(3, len(names))])
	if len(names) > 3 {
		s += "..."
	}
	return s + "; "
}
