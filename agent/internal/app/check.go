package app

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/meshrr/meshrr/agent/config"
)

// runCheck validates configuration files with the agent's own rules (the one
// authority on what the agent accepts): the chart's pre-install/pre-upgrade
// hook runs it on every group's rendered configuration, so a value the
// agent would refuse fails the Helm release before any pod changes. Every
// file is checked and every error printed, each naming the file and the
// field; a list entry's field also names the entry (clients[0] is the
// chart's clients.<name>).
func runCheck(files []string, stdout io.Writer) error {
	bad := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil {
			_, err = config.Parse(b)
		}
		if err == nil {
			fmt.Fprintf(stdout, "%s: valid\n", f)
			continue
		}
		bad++
		fields := config.Fields(err)
		if len(fields) == 0 {
			fmt.Fprintf(stdout, "%s: %v\n", f, err)
			continue
		}
		names := entryNames(b)
		for _, fe := range fields {
			fmt.Fprintf(stdout, "%s: %s%s: %s\n", f, fe.Field, names.of(fe.Field), fe.Msg)
		}
	}
	if bad > 0 {
		return fmt.Errorf("%d of %d configurations invalid (%s)", bad, len(files), strings.Join(baseNames(files), ", "))
	}
	return nil
}

var listField = regexp.MustCompile(`^(clients|policy)\[(\d+)\]`)

// listNames are the names of a file's client groups and policy rules, read
// leniently (nil lists when the file does not decode).
type listNames map[string][]string

func entryNames(b []byte) listNames {
	type named []struct {
		Name string `json:"name"`
	}
	var raw struct {
		Clients named `json:"clients"`
		Policy  named `json:"policy"`
	}
	out := listNames{}
	if yaml.Unmarshal(b, &raw) != nil {
		return out
	}
	for list, entries := range map[string]named{"clients": raw.Clients, "policy": raw.Policy} {
		for _, e := range entries {
			out[list] = append(out[list], e.Name)
		}
	}
	return out
}

// of names the list entry a field is in (` (clients "r")`); "" when the
// field is in no list or the entry has no name.
func (n listNames) of(field string) string {
	m := listField.FindStringSubmatch(field)
	if m == nil {
		return ""
	}
	if i, _ := strconv.Atoi(m[2]); i < len(n[m[1]]) && n[m[1]][i] != "" {
		return fmt.Sprintf(" (%s %q)", m[1], n[m[1]][i])
	}
	return ""
}

func baseNames(files []string) []string {
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = filepath.Base(f)
	}
	return out
}
