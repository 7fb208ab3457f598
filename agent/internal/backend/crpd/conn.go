package crpd

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/Juniper/go-netconf/netconf"
	"golang.org/x/crypto/ssh"
)

// Conn is one NETCONF session to cRPD. go-netconf v0.3.1 provides the SSH
// transport, the hello exchange and message framing on send; Conn does the
// RPC exchange itself because that version's Exec loses the reply when
// base:1.1 chunk headers break its XML, never checks message-ids and
// surfaces only top-level errors (see the reference). Conn adds one RPC at
// a time, deadlines from the context, de-chunking, the message-id check,
// errors nested anywhere in a reply, and reconnection: any transport or
// framing problem drops the session and the next call dials again.
type Conn struct {
	addr    string
	ssh     *ssh.ClientConfig
	timeout time.Duration // per RPC when the context has no deadline

	// turn is held by the one RPC in flight; waiting for it honours the
	// caller's context, so a reader never queues past its deadline behind
	// a slow commit
	turn   chan struct{}
	conn   net.Conn
	s      *netconf.Session
	nextID int
}

// ErrBusy is returned by TryDo while another RPC (a commit, say) holds the
// session.
var ErrBusy = errors.New("crpd: the NETCONF session is busy with another RPC")

// NewConn prepares a session to addr (host:port) with the SSH client
// configuration (user and key); it dials on first use.
func NewConn(addr string, cfg *ssh.ClientConfig) *Conn {
	return &Conn{addr: addr, ssh: cfg, timeout: 5 * time.Minute, turn: make(chan struct{}, 1)}
}

// WithRPCTimeout sets the bound of one RPC when the caller's context has no
// deadline (commits can be slow).
func (c *Conn) WithRPCTimeout(d time.Duration) *Conn {
	c.timeout = d
	return c
}

// Do sends one RPC (the XML inside <rpc>) and returns the parsed reply and
// its raw text. Errors inside the reply are not Go errors here: callers
// decide with Reply.Err or Reply.CommitErr.
func (c *Conn) Do(ctx context.Context, rpc string) (Reply, []byte, error) {
	select {
	case c.turn <- struct{}{}:
	case <-ctx.Done():
		return Reply{}, nil, fmt.Errorf("crpd: netconf %s: waiting for the session: %w", rpcName(rpc), ctx.Err())
	}
	defer func() { <-c.turn }()
	return c.do(ctx, rpc)
}

// TryDo is Do when the session is free, and ErrBusy at once when it is not.
func (c *Conn) TryDo(ctx context.Context, rpc string) (Reply, []byte, error) {
	select {
	case c.turn <- struct{}{}:
	default:
		return Reply{}, nil, ErrBusy
	}
	defer func() { <-c.turn }()
	return c.do(ctx, rpc)
}

func (c *Conn) do(ctx context.Context, rpc string) (Reply, []byte, error) {
	if err := c.connect(ctx); err != nil {
		return Reply{}, nil, err
	}
	c.deadline(ctx, c.conn)
	// the deadline is this call's: left in place it would end the SSH
	// connection's reader while the session is idle, and the next call
	// would fail with "send: EOF"
	defer func() {
		if c.conn != nil {
			_ = c.conn.SetDeadline(time.Time{})
		}
	}()
	c.nextID++
	id := strconv.Itoa(c.nextID)
	msg := `<rpc xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="` + id + `">` + rpc + `</rpc>`
	if err := c.s.Transport.Send([]byte(msg)); err != nil {
		c.reset()
		return Reply{}, nil, fmt.Errorf("crpd: netconf %s: send: %w", rpcName(rpc), err)
	}
	raw, err := c.s.Transport.Receive()
	if err != nil {
		c.reset()
		return Reply{}, nil, fmt.Errorf("crpd: netconf %s: receive: %w", rpcName(rpc), err)
	}
	if c.chunked() {
		if raw, err = dechunk(raw); err != nil {
			c.reset()
			return Reply{}, nil, fmt.Errorf("crpd: netconf %s: %w", rpcName(rpc), err)
		}
	}
	r, err := ParseReply(raw)
	if err != nil {
		c.reset() // e.g. EOF without delimiter: go-netconf returns the partial data
		return Reply{}, raw, fmt.Errorf("crpd: netconf %s: %w", rpcName(rpc), err)
	}
	if r.MessageID != id {
		c.reset()
		return r, raw, fmt.Errorf("crpd: reply message-id %q does not answer request %q", r.MessageID, id)
	}
	return r, raw, nil
}

// Connected reports whether a session is up (a failed call drops it).
func (c *Conn) Connected() bool {
	c.turn <- struct{}{}
	defer func() { <-c.turn }()
	return c.s != nil
}

// Close ends the session (the server discards a private candidate).
func (c *Conn) Close() error {
	c.turn <- struct{}{}
	defer func() { <-c.turn }()
	c.reset()
	return nil
}

func (c *Conn) connect(ctx context.Context) error {
	if c.s != nil {
		return nil
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return fmt.Errorf("crpd: connect %s: %w", c.addr, err)
	}
	c.deadline(ctx, conn) // bounds the SSH handshake and the hello exchange
	s, err := newSession(conn, c.addr, c.ssh)
	if err != nil {
		conn.Close()
		return fmt.Errorf("crpd: netconf session to %s: %w", c.addr, err)
	}
	_ = conn.SetDeadline(time.Time{})
	c.conn, c.s = conn, s
	return nil
}

// transport is go-netconf's framing over the SSH netconf subsystem with a
// hello reader of its own: v0.3.1 accepts only a hello in the NETCONF
// namespace (and ignores the error), while some Junos releases send it
// without one.
type transport struct {
	netconf.TransportBasicIO
	client   *ssh.Client
	session  *ssh.Session
	helloErr error
}

func (t *transport) ReceiveHello() (*netconf.HelloMessage, error) {
	raw, err := t.Receive()
	if err != nil {
		t.helloErr = err
		return &netconf.HelloMessage{}, err
	}
	h, err := ParseHello(raw)
	t.helloErr = err
	return h, err
}

func (t *transport) Close() error {
	_ = t.session.Close()
	return t.client.Close()
}

func newSession(conn net.Conn, addr string, cfg *ssh.ClientConfig) (*netconf.Session, error) {
	cc, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if err != nil {
		return nil, err
	}
	client := ssh.NewClient(cc, chans, reqs)
	sess, err := client.NewSession()
	if err != nil {
		client.Close()
		return nil, err
	}
	w, err := sess.StdinPipe()
	if err == nil {
		var r io.Reader
		if r, err = sess.StdoutPipe(); err == nil {
			if err = sess.RequestSubsystem("netconf"); err == nil {
				t := &transport{client: client, session: sess}
				t.ReadWriteCloser = netconf.NewReadWriteCloser(r, w)
				s := netconf.NewSession(t)
				if t.helloErr != nil {
					s.Close()
					return nil, fmt.Errorf("no usable NETCONF hello: %w", t.helloErr)
				}
				return s, nil
			}
		}
	}
	sess.Close()
	client.Close()
	return nil, err
}

// ParseHello reads a server <hello> by local names, in the NETCONF
// namespace or none; comments may precede it. It fails when there is no
// hello or it lists no capability.
func ParseHello(raw []byte) (*netconf.HelloMessage, error) {
	d := xml.NewDecoder(bytes.NewReader(raw))
	h := &netconf.HelloMessage{}
	var text strings.Builder
	seen := false
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return h, fmt.Errorf("malformed hello: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			text.Reset()
			if t.Name.Local == "hello" {
				seen = true
			}
		case xml.CharData:
			text.Write(t)
		case xml.EndElement:
			v := strings.TrimSpace(text.String())
			text.Reset()
			switch t.Name.Local {
			case "capability":
				if seen && v != "" {
					h.Capabilities = append(h.Capabilities, v)
				}
			case "session-id":
				h.SessionID, _ = strconv.Atoi(v)
			}
		}
	}
	if !seen {
		return h, errors.New("the server sent no <hello>")
	}
	if len(h.Capabilities) == 0 {
		return h, errors.New("the server's <hello> lists no capability")
	}
	return h, nil
}

func (c *Conn) reset() {
	if c.s != nil {
		_ = c.s.Close()
	}
	if c.conn != nil {
		_ = c.conn.Close()
	}
	c.s, c.conn = nil, nil
}

// chunked: go-netconf switches to base:1.1 framing when the server offers
// it (it always offers 1.1 itself).
func (c *Conn) chunked() bool {
	for _, cp := range c.s.ServerCapabilities {
		if cp == "urn:ietf:params:netconf:base:1.1" {
			return true
		}
	}
	return false
}

func (c *Conn) deadline(ctx context.Context, conn net.Conn) {
	d, ok := ctx.Deadline()
	if !ok {
		d = time.Now().Add(c.timeout) // a slow commit must still end
	}
	_ = conn.SetDeadline(d)
}

// maxChunk is RFC 6242's largest chunk-size.
const maxChunk = 4294967295

// dechunk removes RFC 6242 chunk headers ("\n#<size>\n") and the end of
// chunks ("\n##\n") that go-netconf v0.3.1 leaves in the data. A size
// beyond RFC 6242's limit or beyond the data received is refused.
func dechunk(b []byte) ([]byte, error) {
	var out bytes.Buffer
	for len(b) > 0 {
		i := bytes.Index(b, []byte("\n#"))
		if i < 0 {
			out.Write(b)
			break
		}
		out.Write(b[:i])
		rest := b[i+2:]
		if bytes.HasPrefix(rest, []byte("#\n")) || bytes.Equal(rest, []byte("#")) {
			b = rest[min(2, len(rest)):]
			continue
		}
		j := bytes.IndexByte(rest, '\n')
		if j < 0 || !isDigits(rest[:j]) {
			out.Write(b[i : i+2]) // not a chunk header: keep the text
			b = rest
			continue
		}
		n, err := strconv.ParseUint(string(rest[:j]), 10, 64)
		if err != nil || n == 0 || n > maxChunk {
			return nil, fmt.Errorf("chunk size %.20q is out of range (1..%d)", rest[:j], uint64(maxChunk))
		}
		if n > uint64(len(rest)-j-1) {
			return nil, fmt.Errorf("chunk of %d bytes, only %d received", n, len(rest)-j-1)
		}
		out.Write(rest[j+1 : j+1+int(n)])
		b = rest[j+1+int(n):]
	}
	return out.Bytes(), nil
}

func isDigits(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func rpcName(rpc string) string {
	s := bytes.TrimSpace([]byte(rpc))
	if len(s) > 1 && s[0] == '<' {
		end := bytes.IndexAny(s, " />")
		if end > 1 {
			return string(s[1:end])
		}
	}
	return "rpc"
}
