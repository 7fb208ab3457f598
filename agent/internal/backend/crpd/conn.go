package crpd

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
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

	mu     sync.Mutex
	conn   net.Conn
	s      *netconf.Session
	nextID int
}

// NewConn prepares a session to addr (host:port) with the SSH client
// configuration (user and key); it dials on first use.
func NewConn(addr string, cfg *ssh.ClientConfig) *Conn {
	return &Conn{addr: addr, ssh: cfg, timeout: 5 * time.Minute}
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
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.connect(ctx); err != nil {
		return Reply{}, nil, err
	}
	c.deadline(ctx, c.conn)
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
		raw = dechunk(raw)
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
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.s != nil
}

// Close ends the session (the server discards a private candidate).
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
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
	s, err := netconf.NewSSHSession(conn, c.ssh)
	if err != nil {
		conn.Close()
		return fmt.Errorf("crpd: netconf session to %s: %w", c.addr, err)
	}
	if len(s.ServerCapabilities) == 0 { // go-netconf ignores hello errors
		s.Close()
		return fmt.Errorf("crpd: %s sent no NETCONF hello", c.addr)
	}
	c.conn, c.s = conn, s
	return nil
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

// dechunk removes RFC 6242 chunk headers ("\n#<size>\n") and the end of
// chunks ("\n##\n") that go-netconf v0.3.1 leaves in the data.
func dechunk(b []byte) []byte {
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
		if j < 0 {
			out.Write(b[i:])
			break
		}
		n, err := strconv.Atoi(string(rest[:j]))
		if err != nil || n < 0 || j+1+n > len(rest) {
			out.Write(b[i : i+2]) // not a chunk header: keep the text
			b = rest
			continue
		}
		out.Write(rest[j+1 : j+1+n])
		b = rest[j+1+n:]
	}
	return out.Bytes()
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
