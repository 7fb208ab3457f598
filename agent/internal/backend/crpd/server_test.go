package crpd

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// fakeJunos is an in-process NETCONF-over-SSH server that behaves like
// cRPD's (NETCONF over SSH, RFC 6241/6242 framing). By default its
// replies take the shapes captured from devices (testdata/captured): a
// commit answered by an empty <commit-results> and <ok/> (15.1F4), a check
// by commit-check-success per engine and <ok/> (16.1R3), load errors
// nested without a count; a test picks another captured reply per RPC with
// answer(). Shapes still ASSUMED are marked where they are built:
// hello with base:1.0 and the Junos capability after a comment,
// 1.0 framing (1.1 only when offer11 and the client offers it too),
// message-id echo, a private candidate per session, load-configuration
// replace/text with errors nested in load-configuration-results, commit
// check and commit with commit-results, and a BGP summary derived from the
// committed configuration.
type fakeJunos struct {
	t       testing.TB
	addr    string
	clients ssh.PublicKey
	offer11 bool

	mu        sync.Mutex
	committed string            // committed MESHRR group text
	states    map[string]string // peer address -> peer-state (default Active)
	commits   int
	lockedBy  *session  // exclusive lock (configure exclusive)
	started   time.Time // when "rpd" started: a test changes it to restart it
	// faults, consumed by the next commit
	dropCommit  bool          // close the connection on commit, before committing
	commitDelay time.Duration // answer commits this late
	truncate    bool          // commit, then send half the reply and close (EOF without delimiter)
	// captured replies a test chose per RPC ("hello", "load", "check",
	// "commit", "summary", "uptime"), served verbatim but for the
	// message-id
	captured map[string]capture
}

// capture is a reply file and whether the server acts as if the RPC
// succeeded (a commit happens, a load fills the candidate).
type capture struct {
	file string
	ok   bool
}

// answer makes the server reply to rpc with a captured (or assumed) reply
// file from testdata.
func (f *fakeJunos) answer(rpc, file string, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.captured == nil {
		f.captured = map[string]capture{}
	}
	f.captured[rpc] = capture{file, ok}
}

// cannedReply reads a reply file and gives it the message-id of the
// request (replacing one the device had sent); a file that is only the
// body (tools that strip the envelope kept some so) gets an rpc-reply.
func (f *fakeJunos) cannedReply(file, id string) string {
	raw, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		f.t.Errorf("fake junos: %v", err)
		return rpcReply(id, rpcErrorXML("error", "", "test server: no such capture", ""))
	}
	s := string(raw)
	i := strings.Index(s, "<rpc-reply")
	if i < 0 {
		return rpcReply(id, s)
	}
	head, rest := s[:i+len("<rpc-reply")], s[i+len("<rpc-reply"):]
	rest = messageIDAttr.ReplaceAllString(rest, "${1}")
	return head + fmt.Sprintf(" message-id=%q", id) + rest
}

var messageIDAttr = regexp.MustCompile(`^(\s[^>]*?)?\smessage-id="[^"]*"`)

// reply actions
const (
	send = iota
	sendClose
	drop
	sendHalfClose
)

var (
	neighborRE = regexp.MustCompile(`(?m)^\s*neighbor ([0-9a-fA-F:.]+)`)
	macroRE    = regexp.MustCompile(`apply-macro (\S+) \{\s*digest (\S+);`)
)

func startFakeJunos(t testing.TB, offer11 bool) (*fakeJunos, *ssh.ClientConfig) {
	t.Helper()
	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	hostSigner, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	return startFakeJunosWithHostKey(t, offer11, hostSigner)
}

// startFakeJunosWithHostKey serves with the given SSH host key.
func startFakeJunosWithHostKey(t testing.TB, offer11 bool, hostSigner ssh.Signer) (*fakeJunos, *ssh.ClientConfig) {
	t.Helper()
	_, clientPriv, _ := ed25519.GenerateKey(rand.Reader)
	clientSigner, err := ssh.NewSignerFromKey(clientPriv)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeJunos{t: t, clients: clientSigner.PublicKey(), offer11: offer11, states: map[string]string{}, started: time.Unix(1795300000, 0)}
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
		if bytes.Equal(k.Marshal(), f.clients.Marshal()) {
			return nil, nil
		}
		return nil, fmt.Errorf("unknown key")
	}}
	cfg.AddHostKey(hostSigner)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serveConn(c, cfg)
		}
	}()
	client := &ssh.ClientConfig{
		User:            "meshrr-agent",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(clientSigner)},
		HostKeyCallback: ssh.FixedHostKey(hostSigner.PublicKey()),
		Timeout:         5 * time.Second,
	}
	return f, client
}

func (f *fakeJunos) setState(peer, state string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.states[peer] = state
}

func (f *fakeJunos) serveConn(c net.Conn, cfg *ssh.ServerConfig) {
	defer c.Close()
	_, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, requests, err := nc.Accept()
		if err != nil {
			return
		}
		go func() {
			for r := range requests {
				ok := r.Type == "subsystem" && len(r.Payload) >= 4 && string(r.Payload[4:]) == "netconf"
				_ = r.Reply(ok, nil)
				if ok {
					go f.serveNetconf(ch)
				}
			}
		}()
	}
}

const (
	eom10 = "]]>]]>"
	eom11 = "\n##\n"
)

// session is one NETCONF session's state.
type session struct {
	chunked bool
	private *string // private candidate, nil when not open
}

func (f *fakeJunos) serveNetconf(ch ssh.Channel) {
	s := &session{}
	defer func() {
		ch.Close()
		f.mu.Lock()
		if f.lockedBy == s { // a session's lock ends with it
			f.lockedBy = nil
		}
		f.mu.Unlock()
	}()
	caps := `<capability>urn:ietf:params:netconf:base:1.0</capability><capability>http://xml.juniper.net/netconf/junos/1.0</capability>`
	if f.offer11 {
		caps += `<capability>urn:ietf:params:netconf:base:1.1</capability>`
	}
	f.mu.Lock()
	hc, canned := f.captured["hello"]
	f.mu.Unlock()
	if canned {
		raw, err := os.ReadFile(filepath.Join("testdata", hc.file))
		if err != nil {
			f.t.Errorf("fake junos: %v", err)
			return
		}
		fmt.Fprintf(ch, "%s%s", raw, eom10)
	} else { // ASSUMED: the captured hello's shape with fewer capabilities (and 1.1 when offered)
		fmt.Fprintf(ch, "<!-- No zombies were killed during the creation of this user interface -->\n<hello xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\"><capabilities>%s</capabilities><session-id>%d</session-id></hello>%s",
			caps, 4242, eom10)
	}
	r := bufio.NewReader(ch)
	hello, err := readUntil(r, eom10)
	if err != nil {
		return
	}
	s.chunked = f.offer11 && strings.Contains(hello, "urn:ietf:params:netconf:base:1.1")
	for {
		var msg string
		if s.chunked {
			msg, err = readChunked(r)
		} else {
			msg, err = readUntil(r, eom10)
		}
		if err != nil {
			return
		}
		reply, action := f.handle(s, msg)
		switch action {
		case drop:
			return
		case sendHalfClose:
			io.WriteString(ch, reply[:len(reply)/2])
			return
		}
		if s.chunked {
			// two chunks, so that a client keeping chunk headers breaks the XML
			half := len(reply) / 2
			fmt.Fprintf(ch, "\n#%d\n%s\n#%d\n%s%s", half, reply[:half], len(reply)-half, reply[half:], eom11)
		} else {
			io.WriteString(ch, reply+eom10)
		}
		if action == sendClose {
			return
		}
	}
}

func readUntil(r *bufio.Reader, delim string) (string, error) {
	var b strings.Builder
	for {
		c, err := r.ReadByte()
		if err != nil {
			return "", err
		}
		b.WriteByte(c)
		if strings.HasSuffix(b.String(), delim) {
			return strings.TrimSuffix(b.String(), delim), nil
		}
	}
}

func readChunked(r *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		line, err := readUntil(r, "\n")
		if err != nil {
			return "", err
		}
		if line == "" {
			continue
		}
		if line == "##" {
			return b.String(), nil
		}
		if !strings.HasPrefix(line, "#") {
			return "", fmt.Errorf("bad chunk header %q", line)
		}
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", err
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		b.Write(buf)
	}
}

type rpcEnvelope struct {
	MessageID string `xml:"message-id,attr"`
	Inner     []byte `xml:",innerxml"`
}

func (f *fakeJunos) handle(s *session, msg string) (string, int) {
	var env rpcEnvelope
	if err := xml.Unmarshal([]byte(msg), &env); err != nil {
		return rpcReply("", rpcErrorXML("error", "", "malformed rpc", "")), send
	}
	body := strings.TrimSpace(string(env.Inner))
	id := env.MessageID
	f.mu.Lock()
	defer f.mu.Unlock()
	if strings.HasPrefix(body, "<commit-configuration") && !strings.Contains(body, "<check/>") {
		if f.dropCommit {
			f.dropCommit = false
			return "", drop
		}
		if d := f.commitDelay; d > 0 {
			f.commitDelay = 0
			f.mu.Unlock()
			time.Sleep(d)
			f.mu.Lock()
		}
	}
	switch {
	case strings.HasPrefix(body, "<lock-configuration"):
		if f.lockedBy != nil && f.lockedBy != s {
			return rpcReply(id, rpcErrorXML("error", "", "configuration database locked by: meshrr-test terminal p0 (pid 4242)", "")), send
		}
		f.lockedBy = s
		return rpcReply(id, "<ok/>"), send
	case strings.HasPrefix(body, "<unlock-configuration"):
		if f.lockedBy == s {
			f.lockedBy = nil
		}
		return rpcReply(id, "<ok/>"), send
	case strings.HasPrefix(body, "<open-configuration"):
		empty := f.committed
		s.private = &empty
		return rpcReply(id, "<ok/>"), send
	case strings.HasPrefix(body, "<load-configuration"):
		if s.private == nil {
			return rpcReply(id, "<load-configuration-results>"+rpcErrorXML("error", "", "configuration database not open", "")+"<load-error-count>1</load-error-count></load-configuration-results>"), send
		}
		text := between(body, "<configuration-text>", "</configuration-text>")
		text = xmlUnescape(text)
		if c, ok := f.captured["load"]; ok {
			if c.ok {
				*s.private = text
			}
			return f.cannedReply(c.file, id), send
		}
		if bad := junosSyntaxError(text); bad != "" {
			// the captured shape: rpc-errors nested, no load-error-count
			return rpcReply(id, "<load-configuration-results>"+rpcErrorXML("error", "[edit groups MESHRR]", "syntax error", bad)+"</load-configuration-results>"), send
		}
		*s.private = text
		// ASSUMED: over NETCONF a successful load carries <ok/> inside
		return rpcReply(id, "<load-configuration-results><ok/></load-configuration-results>"), send
	case strings.HasPrefix(body, "<commit-configuration"):
		if s.private == nil {
			return rpcReply(id, rpcErrorXML("error", "", "configuration database not open", "")), send
		}
		check := strings.Contains(body, "<check/>")
		kind := map[bool]string{true: "check", false: "commit"}[check]
		c, canned := f.captured[kind]
		if canned && !c.ok {
			return f.cannedReply(c.file, id), send
		}
		if msg := junosCommitError(*s.private); msg != "" {
			// the captured shape (15.1F4): rpc-errors directly under commit-results
			return rpcReply(id, "<commit-results>"+rpcErrorXML("error", "[edit protocols bgp]", msg, "")+rpcErrorXML("error", "", "configuration check-out failed", "")+"</commit-results>"), send
		}
		if check {
			if canned {
				return f.cannedReply(c.file, id), send
			}
			// the captured shape (16.1R3): commit-check-success per engine, then ok
			return rpcReply(id, "<commit-results><routing-engine junos:style=\"normal\"><name>re0</name><commit-check-success/></routing-engine></commit-results><ok/>"), send
		}
		if f.lockedBy != nil && f.lockedBy != s {
			return rpcReply(id, "<commit-results>"+rpcErrorXML("error", "", "configuration database locked by: meshrr-test terminal p0 (pid 4242)", "")+"</commit-results>"), send
		}
		f.committed = *s.private
		f.commits++
		// the captured shape (15.1F4): empty commit-results, then ok
		reply := rpcReply(id, "<commit-results>\n</commit-results>\n<ok/>")
		if canned {
			reply = f.cannedReply(c.file, id)
		}
		if f.truncate {
			f.truncate = false
			return reply, sendHalfClose
		}
		return reply, send
	case strings.HasPrefix(body, "<close-configuration"):
		s.private = nil
		return rpcReply(id, "<ok/>"), send
	case strings.HasPrefix(body, "<get-configuration"):
		// ASSUMED: the XML of a committed apply-macro under groups, as
		// Junos documents apply-macro (data/name/value); only the filter
		// the agent sends is understood
		text := f.committed
		if !strings.Contains(body, `database="committed"`) && s.private != nil {
			text = *s.private
		}
		var b strings.Builder
		b.WriteString(`<configuration junos:commit-seconds="1795312345" junos:commit-user="meshrr-agent">`)
		if m := macroRE.FindStringSubmatch(text); m != nil {
			fmt.Fprintf(&b, `<groups><name>MESHRR</name><apply-macro><name>%s</name><data><name>digest</name><value>%s</value></data></apply-macro></groups>`, m[1], m[2])
		}
		b.WriteString("</configuration>")
		return rpcReply(id, b.String()), send
	case strings.HasPrefix(body, "<get-system-uptime-information"):
		if c, ok := f.captured["uptime"]; ok {
			return f.cannedReply(c.file, id), send
		}
		// the captured shape, with namespaces as a device sends them
		started := f.started.Unix()
		return rpcReply(id, fmt.Sprintf(`<system-uptime-information xmlns="http://xml.juniper.net/junos/23.4R1/junos"><current-time><date-time junos:seconds="%d">now</date-time></current-time>`+
			`<protocols-started-time><date-time junos:seconds="%d">then</date-time><time-length junos:seconds="60">00:01:00</time-length></protocols-started-time></system-uptime-information>`, time.Now().Unix(), started)), send
	case strings.HasPrefix(body, "<get-bgp-summary-information"):
		if c, ok := f.captured["summary"]; ok {
			return f.cannedReply(c.file, id), send
		}
		// the captured shape (terse bgp-peer, elapsed-time seconds), peers
		// from the committed configuration
		var b strings.Builder
		b.WriteString(`<bgp-information xmlns="http://xml.juniper.net/junos/23.4R1/junos-routing">`)
		for _, m := range neighborRE.FindAllStringSubmatch(f.committed, -1) {
			st := f.states[m[1]]
			if st == "" {
				st = "Active"
			}
			fmt.Fprintf(&b, `<bgp-peer junos:style="terse"><peer-address>%s</peer-address><peer-as>65000</peer-as><flap-count>0</flap-count><elapsed-time junos:seconds="42">42</elapsed-time><peer-state>%s</peer-state></bgp-peer>`, m[1], st)
		}
		b.WriteString("</bgp-information>")
		return rpcReply(id, b.String()), send
	case strings.HasPrefix(body, "<close-session"):
		return rpcReply(id, "<ok/>"), sendClose
	}
	return rpcReply(id, rpcErrorXML("error", "", "syntax error, expecting <rpc> method", body)), send
}

func rpcReply(id, inner string) string {
	return fmt.Sprintf(`<rpc-reply xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" xmlns:junos="http://xml.juniper.net/junos/23.4R1/junos" message-id=%q>%s</rpc-reply>`, id, inner)
}

func rpcErrorXML(sev, path, msg, bad string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<rpc-error><error-type>protocol</error-type><error-tag>operation-failed</error-tag><error-severity>%s</error-severity>", sev)
	if path != "" {
		fmt.Fprintf(&b, "<error-path>%s</error-path>", path)
	}
	if bad != "" {
		fmt.Fprintf(&b, "<error-info><bad-element>%s</bad-element></error-info>", xmlEscape(bad))
	}
	fmt.Fprintf(&b, "<error-message>%s</error-message></rpc-error>", msg)
	return b.String()
}

func between(s, a, b string) string {
	_, rest, ok := strings.Cut(s, a)
	if !ok {
		return ""
	}
	in, _, _ := strings.Cut(rest, b)
	return in
}

func xmlEscape(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

func xmlUnescape(s string) string {
	var v struct {
		T string `xml:",chardata"`
	}
	if err := xml.Unmarshal([]byte("<x>"+s+"</x>"), &v); err != nil {
		return s
	}
	return v.T
}

// junosStatements are the first words the renderer may use; anything else
// is a syntax error, as Junos would report an unknown statement.
var junosStatements = map[string]bool{
	"groups": true, "replace:": true, "MESHRR": true, "routing-options": true, "router-id": true,
	"autonomous-system": true, "protocols": true, "bgp": true, "group": true, "type": true,
	"local-address": true, "hold-time": true, "cluster": true, "multihop": true, "ttl": true,
	"no-nexthop-change": true, "family": true, "unicast": true, "import": true, "export": true,
	"peer-as-list": true, "allow": true, "neighbor": true, "description": true, "policy-options": true,
	"as-list": true, "community": true, "policy-statement": true, "term": true, "from": true,
	"then": true, "route-filter": true, "reject": true, "accept": true, "local-preference": true,
	"forwarding-table": true, "signaling": true, "authentication-key": true, "prefix-limit": true, "maximum": true, "teardown": true, "apply-macro": true, "digest": true,
	"graceful-restart": true, "graceful-restart;": true, "restart-time": true, "disable": true,
	"}": true, "/*": true, "*/": true,
}

var quotedRE = regexp.MustCompile(`"[^"]*"`)

func junosSyntaxError(text string) string {
	depth := 0
	inComment := false
	for _, line := range strings.Split(text, "\n") {
		l := strings.TrimSpace(line)
		if l == "" {
			continue
		}
		if inComment || strings.HasPrefix(l, "/*") {
			inComment = !strings.HasSuffix(l, "*/")
			continue
		}
		if strings.Count(l, `"`)%2 != 0 {
			return "unterminated string: " + l
		}
		l = quotedRE.ReplaceAllString(l, `""`) // braces inside strings are text
		depth += strings.Count(l, "{") - strings.Count(l, "}")
		if depth < 0 {
			return l
		}
		if w := strings.TrimSuffix(strings.Fields(l)[0], ";"); !junosStatements[w] {
			return w
		}
		if !strings.HasSuffix(l, ";") && !strings.HasSuffix(l, "{") && !strings.HasSuffix(l, "}") {
			return l
		}
	}
	if depth != 0 {
		return "missing }"
	}
	return ""
}

// junosCommitError: the commit-time check this fake knows, as documented:
// an external group needs peer-as or peer-as-list.
func junosCommitError(text string) string {
	for _, g := range strings.Split(text, "group ")[1:] {
		if strings.Contains(g, "type external;") && !strings.Contains(g, "peer-as") {
			return "Missing mandatory statement: 'peer-as'"
		}
	}
	return ""
}

func newTestSigner(t testing.TB) (ed25519.PublicKey, ssh.Signer, error) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	s, err := ssh.NewSignerFromKey(priv)
	return pub, s, err
}
