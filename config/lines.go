package config

import (
	"bufio"
	"bytes"
	"strconv"
	"strings"
)

// keyLines maps each key of a TOML document to the line (1-based) where it
// is set, as "key" at the top level, "job.N.key" for the Nth [[job]] table
// (from 0) and "job.N.table.key" for its sub-tables. The TOML decoder knows
// these positions but does not export them for unknown keys or for values
// it decoded fine and we reject, so errors find their line here.
//
// It reads the common shapes of a config file — [table], [[array]], key =
// value, dotted keys, quoted keys, multi-line strings and arrays — and a
// key it cannot place simply has no line; it never decides what is valid.
func keyLines(src []byte) map[string]int {
	lines := map[string]int{}
	counts := map[string]int{} // array table -> tables seen
	prefix := ""
	var multi string // the closing delimiter of a multi-line value being skipped
	depth := 0       // brackets open in a multi-line array
	sc := bufio.NewScanner(bytes.NewReader(src))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if multi != "" {
			if strings.Contains(line, multi) {
				multi = ""
			}
			continue
		}
		if depth > 0 {
			depth += bracketDepth(line)
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		if strings.HasPrefix(line, "[[") {
			name := joinKey(splitKey(strings.TrimSuffix(strings.TrimPrefix(cutComment(line), "[["), "]]")))
			i := counts[name]
			counts[name]++
			prefix = name + "." + strconv.Itoa(i)
			lines[prefix] = n
			continue
		}
		if line[0] == '[' {
			name := joinKey(splitKey(strings.TrimSuffix(strings.TrimPrefix(cutComment(line), "["), "]")))
			prefix = arrayPrefix(name, counts)
			lines[prefix] = n
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		full := joinKey(splitKey(key))
		if prefix != "" {
			full = prefix + "." + full
		}
		if _, seen := lines[full]; !seen {
			lines[full] = n
		}
		value = strings.TrimSpace(value)
		for _, d := range []string{`"""`, `'''`} {
			if strings.HasPrefix(value, d) && !strings.Contains(value[3:], d) {
				multi = d
			}
		}
		if strings.HasPrefix(value, "[") {
			depth = bracketDepth(cutComment(value))
		}
	}
	return lines
}

// arrayPrefix resolves a [job.git] header to the latest [[job]]'s index:
// job.git -> job.2.git.
func arrayPrefix(name string, counts map[string]int) string {
	parts := strings.Split(name, ".")
	for i := len(parts) - 1; i > 0; i-- {
		head := strings.Join(parts[:i], ".")
		if c := counts[head]; c > 0 {
			return head + "." + strconv.Itoa(c-1) + "." + strings.Join(parts[i:], ".")
		}
	}
	return name
}

// splitKey splits a possibly dotted, possibly quoted key.
func splitKey(s string) []string {
	var parts []string
	var cur strings.Builder
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			cur.WriteByte(c)
		case c == '"' || c == '\'':
			quote = c
		case c == '.':
			parts = append(parts, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	return append(parts, strings.TrimSpace(cur.String()))
}

func joinKey(parts []string) string { return strings.Join(parts, ".") }

// eachUnquoted calls fn for each byte of s outside string literals (basic
// strings honour backslash escapes) until fn returns false.
func eachUnquoted(s string, fn func(i int, c byte) bool) {
	var quote byte
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case quote == '"' && c == '\\':
			i++
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
		case c == '"' || c == '\'':
			quote = c
		default:
			if !fn(i, c) {
				return
			}
		}
	}
}

// cutComment drops a trailing comment outside quotes.
func cutComment(s string) string {
	out := s
	eachUnquoted(s, func(i int, c byte) bool {
		if c == '#' {
			out = strings.TrimSpace(s[:i])
			return false
		}
		return true
	})
	return out
}

// bracketDepth is the count of [ minus ] outside strings and comments.
func bracketDepth(s string) int {
	d := 0
	eachUnquoted(s, func(_ int, c byte) bool {
		switch c {
		case '#':
			return false
		case '[':
			d++
		case ']':
			d--
		}
		return true
	})
	return d
}
