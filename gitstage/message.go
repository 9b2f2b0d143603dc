package gitstage

import (
	"fmt"
	"strings"
	"text/template"
)

// Render renders a commit message template (Options.Message) with d. A
// template that does not parse, does not run on d (an unknown field, say)
// or renders nothing but blanks is an error naming the template, so that
// the configuration check can run it on sample data and refuse it before
// the first batch.
func Render(tmpl string, d MessageData) (string, error) {
	t, err := template.New("message").Option("missingkey=error").Parse(tmpl)
	if err != nil {
		return "", fmt.Errorf("commit message template %q: %w", tmpl, err)
	}
	var b strings.Builder
	if err := t.Execute(&b, d); err != nil {
		return "", fmt.Errorf("commit message template %q: %w", tmpl, err)
	}
	if strings.TrimSpace(b.String()) == "" {
		return "", fmt.Errorf("commit message template %q renders an empty message", tmpl)
	}
	return b.String(), nil
}
