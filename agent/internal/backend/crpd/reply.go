package crpd

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/meshrr/meshrr/agent/internal/model"
)

// RPCError is one error or warning of a reply, wherever it appears: an
// <rpc-error> (Junos nests them in <load-configuration-results> and
// <commit-results>; go-netconf v0.3.1 only surfaces top-level ones) or the
// Junos XML form <xnm:error>/<xnm:warning> (message, edit-path, statement).
type RPCError struct {
	Severity   string
	Path       string
	Message    string
	BadElement string
}

func (e RPCError) Error() string {
	var b strings.Builder
	b.WriteString(e.Message)
	if e.Path != "" {
		b.WriteString(" at " + e.Path)
	}
	if e.BadElement != "" {
		b.WriteString(" (" + e.BadElement + ")")
	}
	return strings.TrimSpace(b.String())
}

// RoutingEngine is one <routing-engine> that answered a commit or a check.
type RoutingEngine struct {
	Name          string
	CommitSuccess bool // <commit-success/>
	CheckSuccess  bool // <commit-check-success/>
}

// Reply is what the agent needs of an <rpc-reply>.
type Reply struct {
	MessageID      string
	Errors         []RPCError // severity error (or none given)
	Warnings       []RPCError // severity warning
	Ok             bool       // <ok/> anywhere
	LoadSuccess    bool       // <load-success/> (the CLI's form)
	LoadErrorCount int        // <load-error-count>
	CommitSuccess  bool       // <commit-success/> anywhere
	CheckSuccess   bool       // <commit-check-success/> anywhere
	Engines        []RoutingEngine
}

// isJunosError tells an <xnm:error>/<xnm:warning> from an element that is
// only called error: by its namespace, or (namespaces stripped, as some
// tools keep replies) by where it stands.
func isJunosError(n xml.Name, parent string) bool {
	if n.Local != "error" && n.Local != "warning" {
		return false
	}
	if strings.Contains(n.Space, "xnm") {
		return true
	}
	switch parent {
	case "rpc-reply", "commit-results", "load-configuration-results", "routing-engine":
		return true
	}
	return false
}

// ParseReply reads one <rpc-reply>, matching elements by local name (Junos
// namespaces embed the release and differ by element). It fails only on
// malformed XML.
func ParseReply(data []byte) (Reply, error) {
	var r Reply
	d := xml.NewDecoder(bytes.NewReader(data))
	var stack []string
	var cur *RPCError
	var re *RoutingEngine
	var text strings.Builder
	parent := func() string {
		if len(stack) < 2 {
			return ""
		}
		return stack[len(stack)-2]
	}
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return r, fmt.Errorf("crpd: malformed reply: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			stack = append(stack, t.Name.Local)
			text.Reset()
			switch t.Name.Local {
			case "rpc-reply":
				for _, a := range t.Attr {
					if a.Name.Local == "message-id" {
						r.MessageID = a.Value
					}
				}
			case "rpc-error":
				cur = &RPCError{}
			case "error", "warning":
				if cur == nil && isJunosError(t.Name, parent()) {
					cur = &RPCError{Severity: t.Name.Local}
				}
			case "routing-engine":
				re = &RoutingEngine{}
			case "ok":
				r.Ok = true
			case "load-success":
				r.LoadSuccess = true
			case "commit-success":
				r.CommitSuccess = true
				if re != nil {
					re.CommitSuccess = true
				}
			case "commit-check-success":
				r.CheckSuccess = true
				if re != nil {
					re.CheckSuccess = true
				}
			}
		case xml.CharData:
			text.Write(t)
		case xml.EndElement:
			v := strings.Join(strings.Fields(text.String()), " ") // values come padded with newlines
			text.Reset()
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			switch t.Name.Local {
			case "load-error-count":
				r.LoadErrorCount, _ = strconv.Atoi(v)
			case "name":
				if re != nil && len(stack) > 0 && stack[len(stack)-1] == "routing-engine" {
					re.Name = v
				}
			case "routing-engine":
				if re != nil {
					r.Engines = append(r.Engines, *re)
					re = nil
				}
			}
			if cur == nil {
				continue
			}
			switch t.Name.Local {
			case "error-severity":
				cur.Severity = v
			case "error-path", "edit-path":
				cur.Path = v
			case "error-message", "message":
				cur.Message = v
			case "bad-element", "statement":
				cur.BadElement = v
			case "rpc-error", "error", "warning":
				if t.Name.Local != "rpc-error" && !isJunosError(t.Name, lastOf(stack)) {
					continue
				}
				if cur.Severity == "warning" {
					r.Warnings = append(r.Warnings, *cur)
				} else { // a missing severity counts as an error
					r.Errors = append(r.Errors, *cur)
				}
				cur = nil
			}
		}
	}
	return r, nil
}

func lastOf(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1]
}

// Err is the reply's failure: any error of severity error anywhere, in
// either form, or a load that counted errors.
func (r Reply) Err() error {
	var errs []error
	for _, e := range r.Errors {
		errs = append(errs, e)
	}
	if r.LoadErrorCount > 0 && len(r.Errors) == 0 {
		errs = append(errs, fmt.Errorf("load-configuration reported %d error(s)", r.LoadErrorCount))
	}
	return errors.Join(errs...)
}

// LoadErr judges a <load-configuration> reply: no error, and <ok/> (the
// NETCONF form) or <load-success/> (the CLI form).
func (r Reply) LoadErr() error {
	if err := r.Err(); err != nil {
		return err
	}
	if !r.Ok && !r.LoadSuccess {
		return errors.New("load-configuration reply carries neither <ok/> nor <load-success/>")
	}
	return nil
}

// CheckErr judges a <commit-configuration><check/> reply the way CommitErr
// judges a commit, with <commit-check-success/> as the engines' proof.
func (r Reply) CheckErr() error {
	return r.judge("commit check", func(e RoutingEngine) bool { return e.CheckSuccess }, r.CheckSuccess)
}

// CommitErr judges a commit the way Junos reports one: no error anywhere
// (<ok/> can stand beside errors outside RFC-compliant mode), and every
// routing engine that answered reports <commit-success/>; a single-engine
// device may answer with an empty <commit-results/> and <ok/>, or <ok/>
// alone.
func (r Reply) CommitErr() error {
	return r.judge("commit", func(e RoutingEngine) bool { return e.CommitSuccess }, r.CommitSuccess)
}

func (r Reply) judge(what string, ok func(RoutingEngine) bool, success bool) error {
	if err := r.Err(); err != nil {
		return err
	}
	if len(r.Engines) > 0 {
		for _, e := range r.Engines {
			if !ok(e) {
				return fmt.Errorf("%s: routing engine %q reported no success", what, e.Name)
			}
		}
		return nil
	}
	if !r.Ok && !success {
		return fmt.Errorf("%s reply carries neither <ok/> nor a success element", what)
	}
	return nil
}

// Peer is one <bgp-peer> of <get-bgp-summary-information>.
type Peer struct {
	Addr      netip.Addr
	AS        uint32
	State     model.SessionState
	Since     time.Time // now minus <elapsed-time junos:seconds>
	FlapCount int
	Received  int // received-prefix-count over the peer's primary RIBs
}

type ribCount struct {
	name     string
	received int
}

// primaryRIB tells the tables a route is received into (inet.0, inet6.0,
// bgp.evpn.0, bgp.l3vpn.0, ...) from the secondary ones of routing
// instances it is copied to (default-switch.evpn.0, VRF.inet.0).
func primaryRIB(name string) bool {
	return strings.HasPrefix(name, "bgp.") || strings.Count(name, ".") == 1
}

// receivedOf counts a peer's received prefixes once: over its primary RIBs,
// or over all of them for a peer of a routing instance (no primary at all).
func receivedOf(ribs []ribCount) int {
	n, all, primary := 0, 0, false
	for _, r := range ribs {
		all += r.received
		if primaryRIB(r.name) {
			primary = true
			n += r.received
		}
	}
	if !primary {
		return all
	}
	return n
}

// parseAS reads an AS number in plain or asdot ("1.10") notation.
func parseAS(v string) (uint32, bool) {
	if hi, lo, ok := strings.Cut(v, "."); ok {
		h, err1 := strconv.ParseUint(hi, 10, 16)
		l, err2 := strconv.ParseUint(lo, 10, 16)
		return uint32(h)<<16 | uint32(l), err1 == nil && err2 == nil
	}
	n, err := strconv.ParseUint(v, 10, 32)
	return uint32(n), err == nil
}

// ParseBGPSummary reads the peers of a BGP summary reply. Addresses may
// carry a "+179" port suffix (detail output); it is dropped.
func ParseBGPSummary(data []byte, now time.Time) ([]Peer, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	var peers []Peer
	var cur *Peer
	var ribs []ribCount
	var rib *ribCount
	var text strings.Builder
	var elapsed int64 = -1
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return peers, fmt.Errorf("crpd: malformed BGP summary: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			text.Reset()
			switch t.Name.Local {
			case "bgp-peer":
				cur, ribs, rib = &Peer{}, nil, nil
				elapsed = -1
			case "bgp-rib":
				if cur != nil {
					rib = &ribCount{}
				}
			case "elapsed-time":
				for _, a := range t.Attr {
					if a.Name.Local == "seconds" {
						if s, err := strconv.ParseInt(strings.TrimSpace(a.Value), 10, 64); err == nil && s >= 0 {
							elapsed = s
						}
					}
				}
			}
		case xml.CharData:
			text.Write(t)
		case xml.EndElement:
			v := strings.TrimSpace(text.String())
			text.Reset()
			if cur == nil {
				continue
			}
			switch t.Name.Local {
			case "name":
				if rib != nil {
					rib.name = v
				}
			case "received-prefix-count":
				if n, err := strconv.Atoi(v); err == nil && rib != nil {
					rib.received = n
				}
			case "bgp-rib":
				if rib != nil {
					ribs = append(ribs, *rib)
					rib = nil
				}
			case "peer-address":
				host, _, _ := strings.Cut(v, "+")
				if a, err := netip.ParseAddr(host); err == nil {
					cur.Addr = a.Unmap()
				}
			case "peer-as":
				if n, ok := parseAS(v); ok {
					cur.AS = n
				}
			case "peer-state":
				cur.State = model.SessionState(v)
			case "flap-count":
				cur.FlapCount, _ = strconv.Atoi(v)
			case "bgp-peer":
				cur.Received = receivedOf(ribs)
				if elapsed >= 0 {
					cur.Since = now.Add(-time.Duration(elapsed) * time.Second)
				}
				if cur.Addr.IsValid() {
					peers = append(peers, *cur)
				}
				cur = nil
			}
		}
	}
	return peers, nil
}

// ParseCommittedDigest reads the digest of the MESHRR group's apply-macro
// from a <get-configuration> reply ("" when the group or the macro is
// missing). Elements match by local name.
func ParseCommittedDigest(data []byte) (string, error) {
	r, err := ParseReply(data)
	if err != nil {
		return "", err
	}
	if err := r.Err(); err != nil {
		return "", err
	}
	var doc struct {
		Groups []struct {
			Name   string `xml:"name"`
			Macros []struct {
				Name string `xml:"name"`
				Data []struct {
					Name  string `xml:"name"`
					Value string `xml:"value"`
				} `xml:"data"`
			} `xml:"apply-macro"`
		} `xml:"configuration>groups"`
	}
	if err := xml.Unmarshal(data, &doc); err != nil {
		return "", fmt.Errorf("crpd: configuration reply: %w", err)
	}
	for _, g := range doc.Groups {
		if strings.TrimSpace(g.Name) != GroupName {
			continue
		}
		for _, m := range g.Macros {
			if strings.TrimSpace(m.Name) != MacroName {
				continue
			}
			for _, d := range m.Data {
				if strings.TrimSpace(d.Name) == "digest" {
					return strings.TrimSpace(d.Value), nil
				}
			}
		}
	}
	return "", nil
}

// ParseProtocolsStarted reads the junos:seconds of
// <protocols-started-time><date-time junos:seconds="..."> from a
// <get-system-uptime-information> reply (elements and attributes matched by
// local name; the attribute is accepted on protocols-started-time too).
func ParseProtocolsStarted(data []byte) (time.Time, error) {
	r, err := ParseReply(data)
	if err != nil {
		return time.Time{}, err
	}
	if err := r.Err(); err != nil {
		return time.Time{}, err
	}
	d := xml.NewDecoder(strings.NewReader(string(data)))
	inside := false
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return time.Time{}, fmt.Errorf("crpd: uptime reply: %w", err)
		}
		if ee, ok := tok.(xml.EndElement); ok && ee.Name.Local == "protocols-started-time" {
			inside = false
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if se.Name.Local == "protocols-started-time" {
			inside = true
		}
		if !inside || (se.Name.Local != "protocols-started-time" && se.Name.Local != "date-time") {
			continue
		}
		for _, a := range se.Attr {
			if a.Name.Local == "seconds" {
				s, err := strconv.ParseInt(strings.TrimSpace(a.Value), 10, 64)
				if err != nil || s <= 0 {
					return time.Time{}, fmt.Errorf("crpd: uptime reply: protocols-started-time seconds %q", a.Value)
				}
				return time.Unix(s, 0), nil
			}
		}
	}
	return time.Time{}, errors.New("crpd: uptime reply has no protocols-started-time")
}
