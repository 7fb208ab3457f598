package crpd

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// RPCError is one <rpc-error>, wherever it appears in a reply (Junos nests
// them in <load-configuration-results> and <commit-results>; go-netconf
// v0.3.1 only surfaces top-level ones).
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

// Reply is what the agent needs of an <rpc-reply>.
type Reply struct {
	MessageID      string
	Errors         []RPCError // severity error
	Warnings       []RPCError // severity warning
	Ok             bool       // <ok/> somewhere: proves nothing on its own
	LoadSuccess    bool       // <load-success/>
	LoadErrorCount int        // <load-error-count>
	CommitSuccess  bool       // <commit-success/>
}

// ParseReply reads one <rpc-reply> matching elements by local name (Junos
// namespaces embed the release). It fails only on malformed XML.
func ParseReply(data []byte) (Reply, error) {
	var r Reply
	d := xml.NewDecoder(strings.NewReader(string(data)))
	var stack []string
	var cur *RPCError
	var text strings.Builder
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
			case "ok":
				r.Ok = true
			case "load-success":
				r.LoadSuccess = true
			case "commit-success":
				r.CommitSuccess = true
			}
		case xml.CharData:
			text.Write(t)
		case xml.EndElement:
			v := strings.TrimSpace(text.String())
			text.Reset()
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			switch t.Name.Local {
			case "load-error-count":
				r.LoadErrorCount, _ = strconv.Atoi(v)
			case "error-severity":
				if cur != nil {
					cur.Severity = v
				}
			case "error-path":
				if cur != nil {
					cur.Path = v
				}
			case "error-message":
				if cur != nil {
					cur.Message = v
				}
			case "bad-element":
				if cur != nil {
					cur.BadElement = v
				}
			case "rpc-error":
				if cur != nil {
					if cur.Severity == "warning" {
						r.Warnings = append(r.Warnings, *cur)
					} else { // a missing severity counts as an error
						r.Errors = append(r.Errors, *cur)
					}
					cur = nil
				}
			}
		}
	}
	return r, nil
}

// Err is the reply's failure: any error-severity <rpc-error> anywhere, or a
// load that reported errors.
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

// CommitErr is Err plus the commit's own proof of success: in Junos'
// non-RFC mode <ok/> can stand beside errors, so only <commit-success/>
// proves a commit.
func (r Reply) CommitErr() error {
	if err := r.Err(); err != nil {
		return err
	}
	if !r.CommitSuccess {
		return errors.New("commit-results without commit-success")
	}
	return nil
}

// Peer is one <bgp-peer> of <get-bgp-summary-information>.
type Peer struct {
	Addr        netip.Addr
	AS          uint32
	State       string
	Since       time.Time // now minus <elapsed-time junos:seconds>
	FlapCount   int
	Received    int // sum of received-prefix-count over RIBs
	Established bool
}

// ParseBGPSummary reads the peers of a BGP summary reply. Addresses may
// carry a "+179" port suffix (detail output); it is dropped.
func ParseBGPSummary(data []byte, now time.Time) ([]Peer, error) {
	d := xml.NewDecoder(strings.NewReader(string(data)))
	var peers []Peer
	var cur *Peer
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
				cur = &Peer{}
				elapsed = -1
			case "elapsed-time":
				for _, a := range t.Attr {
					if a.Name.Local == "seconds" {
						if s, err := strconv.ParseInt(a.Value, 10, 64); err == nil && s >= 0 {
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
			case "peer-address":
				host, _, _ := strings.Cut(v, "+")
				if a, err := netip.ParseAddr(host); err == nil {
					cur.Addr = a.Unmap()
				}
			case "peer-as":
				if n, err := strconv.ParseUint(v, 10, 32); err == nil {
					cur.AS = uint32(n)
				}
			case "peer-state":
				cur.State = v
			case "flap-count":
				cur.FlapCount, _ = strconv.Atoi(v)
			case "received-prefix-count":
				if n, err := strconv.Atoi(v); err == nil {
					cur.Received += n
				}
			case "bgp-peer":
				cur.Established = cur.State == "Established"
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
