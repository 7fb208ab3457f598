//go:build junosyang

// Package junosyang checks the Junos text the cRPD backend renders against
// Juniper's published YANG models of a release, independently of the
// renderer: every statement of every golden file must exist at its place
// in the configuration schema, with keys, enumerations and numbers the
// schema accepts. Juniper's models are not in this repository (their
// licence is not an open one): point JUNOS_YANG_DIR at a release directory
// of Juniper's public yang repository (for example .../20.2/20.2R1, which
// holds junos/conf and common) and run `make junos-yang`.
package junosyang

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openconfig/goyang/pkg/yang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	schemaOnce sync.Once
	schemaRoot *yang.Entry
	schemaErr  error
)

// schema loads the configuration schema of the release in JUNOS_YANG_DIR
// once per run (about a minute on two cores).
func schema(t *testing.T) *yang.Entry {
	t.Helper()
	dir := os.Getenv("JUNOS_YANG_DIR")
	if dir == "" {
		t.Fatal("JUNOS_YANG_DIR is not set: point it at a release directory of Juniper's YANG models (e.g. 20.2/20.2R1)")
	}
	schemaOnce.Do(func() {
		start := time.Now()
		schemaRoot, schemaErr = loadSchema(dir)
		t.Logf("loaded Juniper's configuration schema from %s in %v", dir, time.Since(start).Round(time.Second))
	})
	require.NoError(t, schemaErr)
	return schemaRoot
}

func TestRenderedJunosAgainstJuniperYANG(t *testing.T) {
	root := schema(t)
	goldens, err := filepath.Glob("../../agent/internal/backend/crpd/testdata/*.golden")
	require.NoError(t, err)
	require.NotEmpty(t, goldens)
	checked := 0
	for _, g := range goldens {
		raw, err := os.ReadFile(g)
		require.NoError(t, err)
		stmts, err := parse(string(raw))
		require.NoError(t, err, g)
		var problems []string
		n := walk(root, stmts, "", &problems)
		checked += n
		for _, p := range problems {
			t.Errorf("%s: %s", filepath.Base(g), p)
		}
		t.Logf("%s: %d statements, %d not in the schema", filepath.Base(g), n, len(problems))
	}
	t.Logf("%d statements in %d files checked against %s", checked, len(goldens), os.Getenv("JUNOS_YANG_DIR"))
}

// The checker itself: mistakes a renderer could make are caught.
func TestTheCheckerCatchesWhatJunosWouldRefuse(t *testing.T) {
	root := schema(t)
	for _, tc := range []struct{ text, want string }{
		{"protocols { bgp { group g { type interal; } } }", "not one of"},
		{"protocols { bgp { group g { locl-address 10.0.0.1; } } }", `"locl-address" is not a statement here`},
		{"protocols { bgp { group g { hold-time 70000; } } }", "hold-time 70000"},
		{"policy-options { policy-statement p { term t { then { local-preference x y; } } } }", "takes one value"},
		{"protocols { bgp { group g { multihop { ttl 4 5; } } } }", "takes one value"},
		{"routing-options { graceful-restart 5; }", "graceful-restart"},
		{"groups { MESHRR { protocols { bgp { group g { family inet { unicast { prefix-limit { teardown idle-timeout forever; } } } } } } } }", ""},
	} {
		stmts, err := parse(tc.text)
		require.NoError(t, err, tc.text)
		var problems []string
		walk(root, stmts, "", &problems)
		if tc.want == "" {
			assert.Empty(t, problems, tc.text)
			continue
		}
		require.NotEmpty(t, problems, "%s: not caught", tc.text)
		assert.Contains(t, strings.Join(problems, "\n"), tc.want, tc.text)
	}
}

// loadSchema reads the release's configuration modules in either layout
// Juniper publishes (up to 23.x: junos/conf and common; later:
// native/conf-and-rpcs/...), plus the IETF module they import.
func loadSchema(dir string) (*yang.Entry, error) {
	ms := yang.NewModules()
	var files []string
	for _, set := range [][]string{
		{"common/*.yang", "native/conf-and-rpcs/common/models/*.yang"},
		{"junos/conf/*.yang", "native/conf-and-rpcs/junos/conf/models/*.yang"},
		{"ietf/models/ietf-yang-metadata.yang", "common/ietf-yang-metadata.yang"},
	} {
		for _, pattern := range set {
			f, err := filepath.Glob(filepath.Join(dir, pattern))
			if err != nil {
				return nil, err
			}
			files = append(files, f...)
		}
	}
	if len(files) < 3 {
		return nil, fmt.Errorf("no Junos configuration modules under %s", dir)
	}
	slices.Sort(files)
	for _, f := range slices.Compact(files) {
		if err := ms.Read(f); err != nil {
			return nil, err
		}
	}
	if errs := ms.Process(); len(errs) > 0 {
		return nil, fmt.Errorf("Juniper's modules do not process: %v (a release without ietf-yang-metadata.yang needs the RFC 7952 module copied into its common directory)", errs[0])
	}
	e, errs := ms.GetModule("junos-conf-root")
	if len(errs) > 0 {
		return nil, errs[0]
	}
	conf := e.Dir["configuration"]
	if conf == nil {
		return nil, errors.New("junos-conf-root has no configuration container")
	}
	return conf, nil
}

// stmt is one statement of Junos text: its words, and its block when it
// has one.
type stmt struct {
	words []string
	block []stmt
	line  int
}

// parse reads Junos curly-brace text: comments, quoted strings, [ lists ],
// and the replace:/delete: tags that prefix a statement.
func parse(text string) ([]stmt, error) {
	toks, err := tokens(text)
	if err != nil {
		return nil, err
	}
	out, rest, err := parseBlock(toks)
	if err != nil {
		return nil, err
	}
	if len(rest) > 0 {
		return nil, fmt.Errorf("line %d: unexpected %q", rest[0].line, rest[0].s)
	}
	return out, nil
}

type token struct {
	s      string
	line   int
	quoted bool
}

func tokens(text string) ([]token, error) {
	var out []token
	line := 1
	for i := 0; i < len(text); {
		c := text[i]
		switch {
		case c == '\n':
			line++
			i++
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case strings.HasPrefix(text[i:], "/*"):
			end := strings.Index(text[i+2:], "*/")
			if end < 0 {
				return nil, fmt.Errorf("line %d: unterminated comment", line)
			}
			line += strings.Count(text[i:i+2+end+2], "\n")
			i += 2 + end + 2
		case c == '"':
			var b strings.Builder
			j := i + 1
			for ; j < len(text) && text[j] != '"'; j++ {
				if text[j] == '\\' && j+1 < len(text) {
					j++
				}
				if text[j] == '\n' {
					return nil, fmt.Errorf("line %d: newline inside a quoted string", line)
				}
				b.WriteByte(text[j])
			}
			if j >= len(text) {
				return nil, fmt.Errorf("line %d: unterminated string", line)
			}
			out = append(out, token{b.String(), line, true})
			i = j + 1
		case strings.ContainsRune("{};[]", rune(c)):
			out = append(out, token{string(c), line, false})
			i++
		default:
			j := i
			for j < len(text) && !strings.ContainsRune(" \t\r\n{};[]\"", rune(text[j])) {
				j++
			}
			out = append(out, token{text[i:j], line, false})
			i = j
		}
	}
	return out, nil
}

func parseBlock(toks []token) ([]stmt, []token, error) {
	var out []stmt
	for len(toks) > 0 {
		if !toks[0].quoted && toks[0].s == "}" {
			return out, toks, nil
		}
		s := stmt{line: toks[0].line}
		for len(toks) > 0 {
			t := toks[0]
			toks = toks[1:]
			if t.quoted {
				s.words = append(s.words, t.s)
				continue
			}
			switch t.s {
			case ";":
				goto done
			case "[":
				for len(toks) > 0 && toks[0].s != "]" {
					s.words = append(s.words, toks[0].s)
					toks = toks[1:]
				}
				if len(toks) == 0 {
					return nil, nil, fmt.Errorf("line %d: unterminated [", t.line)
				}
				toks = toks[1:]
			case "{":
				block, rest, err := parseBlock(toks)
				if err != nil {
					return nil, nil, err
				}
				if len(rest) == 0 {
					return nil, nil, fmt.Errorf("line %d: missing }", t.line)
				}
				s.block, toks = block, rest[1:]
				if s.block == nil {
					s.block = []stmt{}
				}
				goto done
			case "}":
				return nil, nil, fmt.Errorf("line %d: unexpected }", t.line)
			default:
				if len(s.words) == 0 && strings.HasSuffix(t.s, ":") { // replace:, delete:, ...
					continue
				}
				s.words = append(s.words, t.s)
			}
		}
	done:
		if len(s.words) == 0 {
			return nil, nil, fmt.Errorf("line %d: empty statement", s.line)
		}
		out = append(out, s)
	}
	return out, nil, nil
}

// child finds a schema node by name, looking through choices and cases.
func child(e *yang.Entry, name string) *yang.Entry {
	if c, ok := e.Dir[name]; ok && !c.IsChoice() && !c.IsCase() {
		return c
	}
	for _, c := range e.Dir {
		if c.IsChoice() || c.IsCase() {
			if f := child(c, name); f != nil {
				return f
			}
		}
	}
	return nil
}

// walk checks statements against the schema node e and counts them.
func walk(e *yang.Entry, stmts []stmt, path string, problems *[]string) int {
	n := 0
	for _, s := range stmts {
		n += check(e, s.words, s.block, s.line, path, problems)
	}
	return n
}

func check(e *yang.Entry, words []string, block []stmt, line int, path string, problems *[]string) int {
	bad := func(format string, a ...any) int {
		*problems = append(*problems, fmt.Sprintf("line %d: [%s] %s", line, strings.TrimSpace(path), fmt.Sprintf(format, a...)))
		return 1
	}
	name := words[0]
	c := child(e, name)
	if c == nil {
		return bad("%q is not a statement here", name)
	}
	path += " " + name
	rest := words[1:]
	switch {
	case c.IsList():
		keys := strings.Fields(c.Key)
		if name == "apply-macro" { // free name/value data below the macro's name
			return 1
		}
		if len(rest) == 0 && block != nil { // block form: groups { NAME { ... } }
			n := 1
			for _, entry := range block {
				n += check(e, append([]string{name}, entry.words...), entry.block, entry.line, strings.TrimSuffix(path, " "+name), problems) - 1
			}
			return n
		}
		used := 0
		for _, k := range keys {
			if used == len(rest) {
				break
			}
			if kl := c.Dir[k]; kl != nil && kl.Type != nil {
				if err := validValue(kl.Type, rest[used]); err != nil && used > 0 {
					break // an optional trailing key: the word starts an inline child
				} else if err != nil {
					return bad("%s key %s: %v", name, k, err)
				}
			}
			path += " " + rest[used]
			used++
		}
		if used == 0 {
			return bad("%s needs its key %s", name, c.Key)
		}
		if len(rest) > used { // flat form: list-key child value (with the block, if any)
			return 1 + check(c, rest[used:], block, line, path, problems)
		}
		return 1 + walk(c, block, path, problems)
	case c.IsLeaf() || c.IsLeafList():
		if block != nil {
			return bad("%s is a leaf and takes no block", name)
		}
		if c.Type == nil {
			return 1
		}
		if c.Type.Kind == yang.Yempty {
			if len(rest) > 0 {
				return bad("%s takes no value, got %q", name, rest)
			}
			return 1
		}
		if len(rest) == 0 {
			return bad("%s needs a value", name)
		}
		if c.IsLeaf() && len(rest) > 1 {
			return bad("%s takes one value, got %q", name, rest)
		}
		for _, v := range rest {
			if err := validValue(c.Type, v); err != nil {
				return bad("%s %s: %v", name, v, err)
			}
		}
		return 1
	default: // container
		if len(rest) == 0 {
			return 1 + walk(c, block, path, problems)
		}
		if child(c, rest[0]) != nil { // flat form: container child value (with the block, if any)
			return 1 + check(c, rest, block, line, path, problems)
		}
		// a value of the container itself ("autonomous-system 65000",
		// "local-preference 200") goes to its positional leaf
		p := positional(c)
		if p == nil {
			return bad("%s takes no value, got %q", name, rest)
		}
		return check(c, append([]string{p.Name}, rest...), block, line, path, problems)
	}
}

// positional is the leaf a container's own value goes to: the leaf named
// like the container, else the first leaf it declares, else the first leaf
// with a value in its choices ("idle-timeout 1" sets timeout).
func positional(c *yang.Entry) *yang.Entry {
	if l := child(c, c.Name); l != nil && l.IsLeaf() {
		return l
	}
	n, ok := c.Node.(*yang.Container)
	if !ok {
		return nil
	}
	if len(n.Leaf) > 0 {
		return c.Dir[n.Leaf[0].Name]
	}
	for _, ch := range n.Choice {
		for _, cs := range ch.Case {
			for _, l := range cs.Leaf {
				if e := child(c, l.Name); e != nil && e.Type != nil && e.Type.Kind != yang.Yempty {
					return e
				}
			}
		}
	}
	return nil
}

// validValue checks what the schema says of a value's type: enumerations,
// integer ranges, and each member of a union (any may match).
func validValue(t *yang.YangType, v string) error {
	switch t.Kind {
	case yang.Yenum:
		if !t.Enum.IsDefined(v) {
			return fmt.Errorf("not one of %v", t.Enum.Names())
		}
	case yang.Yint8, yang.Yint16, yang.Yint32, yang.Yint64, yang.Yuint8, yang.Yuint16, yang.Yuint32, yang.Yuint64:
		n, err := yang.ParseInt(v)
		if err != nil {
			return fmt.Errorf("not an integer")
		}
		if len(t.Range) > 0 && !t.Range.Contains(yang.YangRange{{Min: n, Max: n}}) {
			return fmt.Errorf("outside %v", t.Range)
		}
	case yang.Yunion:
		var errs []string
		for _, m := range t.Type {
			if err := validValue(m, v); err == nil {
				return nil
			} else {
				errs = append(errs, err.Error())
			}
		}
		return fmt.Errorf("matches no member of the union (%s)", strings.Join(errs, "; "))
	case yang.Ystring:
		for _, p := range t.Pattern { // XSD patterns, anchored; one Go cannot compile is left out
			if re, err := regexp.Compile("^(?:" + p + ")$"); err == nil && !re.MatchString(v) {
				return fmt.Errorf("does not match %q", p)
			}
		}
		if len(t.Length) > 0 {
			l := yang.FromInt(int64(len(v)))
			if !t.Length.Contains(yang.YangRange{{Min: l, Max: l}}) {
				return fmt.Errorf("length %d outside %v", len(v), t.Length)
			}
		}
	}
	return nil
}
