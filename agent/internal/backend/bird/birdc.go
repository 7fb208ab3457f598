package bird

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// Line is one reply line of BIRD's control protocol: a four-digit code
// and its text. Continuation lines (starting with a space) carry the code
// of the line they continue.
type Line struct {
	Code int
	Text string
}

// CmdError is a BIRD reply with an error code (8xxx runtime, 9xxx parse).
type CmdError struct {
	Cmd  string
	Code int
	Text string
}

func (e *CmdError) Error() string {
	return fmt.Sprintf("bird %q: %04d %s", e.Cmd, e.Code, e.Text)
}

// Client talks to BIRD's control socket, one connection per command so
// that a daemon restart never leaves a stale connection behind.
type Client struct {
	socket  string
	timeout time.Duration
}

// NewClient returns a client for the control socket; timeout bounds each
// command (a context deadline, when sooner, wins).
func NewClient(socket string, timeout time.Duration) *Client {
	return &Client{socket: socket, timeout: timeout}
}

// Cmd sends one command and returns its reply lines (greeting excluded).
// A reply with an 8xxx or 9xxx code is returned as *CmdError.
func (c *Client) Cmd(ctx context.Context, cmd string) ([]Line, error) {
	if strings.ContainsAny(cmd, "\n\r") {
		return nil, fmt.Errorf("bird: command must be one line: %q", cmd)
	}
	d := net.Dialer{Timeout: c.timeout}
	conn, err := d.DialContext(ctx, "unix", c.socket)
	if err != nil {
		return nil, fmt.Errorf("bird: connect %s: %w", c.socket, err)
	}
	defer conn.Close()
	deadline := time.Now().Add(c.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	r := bufio.NewReader(conn)
	hello, err := readReply(r)
	if err != nil {
		return nil, fmt.Errorf("bird: greeting: %w", err)
	}
	if len(hello) == 0 || hello[len(hello)-1].Code != 1 {
		return nil, fmt.Errorf("bird: unexpected greeting %v", hello)
	}
	if _, err := io.WriteString(conn, cmd+"\n"); err != nil {
		return nil, fmt.Errorf("bird: send %q: %w", cmd, err)
	}
	lines, err := readReply(r)
	if err != nil {
		return nil, fmt.Errorf("bird: %q: %w", cmd, err)
	}
	for _, l := range lines {
		if l.Code >= 8000 {
			return lines, &CmdError{Cmd: cmd, Code: l.Code, Text: l.Text}
		}
	}
	return lines, nil
}

// readReply reads lines up to and including the last one ("NNNN " form).
func readReply(r *bufio.Reader) ([]Line, error) {
	var lines []Line
	code := -1
	for {
		s, err := r.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) && s == "" {
				err = io.ErrUnexpectedEOF
			}
			return lines, err
		}
		s = strings.TrimRight(s, "\n")
		l, last, err := parseLine(s, code)
		if err != nil {
			return lines, err
		}
		code = l.Code
		lines = append(lines, l)
		if last {
			return lines, nil
		}
	}
}

// parseLine parses "NNNN-text", "NNNN text" (last) or " text"
// (continuation of the previous code).
func parseLine(s string, prev int) (l Line, last bool, err error) {
	if strings.HasPrefix(s, " ") {
		if prev < 0 {
			return l, false, fmt.Errorf("continuation line before any code: %q", s)
		}
		return Line{Code: prev, Text: s[1:]}, false, nil
	}
	if len(s) < 5 || (s[4] != '-' && s[4] != ' ') {
		return l, false, fmt.Errorf("malformed reply line %q", s)
	}
	code, err := strconv.Atoi(s[:4])
	if err != nil || code < 0 {
		return l, false, fmt.Errorf("malformed reply code in %q", s)
	}
	return Line{Code: code, Text: s[5:]}, s[4] == ' ', nil
}
