// Package fleet is a BGP client fleet that costs little: one process holds
// many iBGP or eBGP sessions to one route reflector, each from its own
// source address with its own router id, announces a few routes per
// session and counts, per session, what a performance test needs of the
// RR: when it became Established, the routes it holds (a bitmap over the
// fleet's own prefixes, so 500 sessions receiving 50,000 routes each cost
// kilobytes, not a RIB), the UPDATE bytes, and every reset with its cause
// (NOTIFICATIONs sent and received, hold timer expiries, connections
// lost). It keeps no RIB and runs no decision process: it is a load and a
// meter, not a router. GoBGP's packet library encodes every message and
// decodes every one but UPDATEs, of which it decodes each prefix; the
// fleet steps over their path attributes (updateSections).
package fleet

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
)

// Config is the fleet: one session per source address, to one RR.
type Config struct {
	RR      netip.AddrPort // the RR's address and port (179)
	LocalAS uint32
	PeerAS  uint32 // LocalAS: iBGP (RR clients)
	// Sources are the sessions' source addresses (they must be local
	// addresses); the router id of session i is Sources[i] (IPv4).
	Sources []netip.Addr
	// Announce is what session i announces (IPv4 unicast); every prefix of
	// the fleet must be distinct, they are what the sessions count.
	Announce func(i int) []netip.Prefix
	HoldTime time.Duration // proposed; default 90 s
	// Retry is the wait before a session connects again after it ended;
	// default 1 s.
	Retry time.Duration
	// OpenTimeout is how long a connected session waits for the RR's OPEN
	// and KEEPALIVE before it gives up and connects again (default 10 s;
	// BIRD's own startup hold time is 240 s). A full accept queue at the
	// RR shows as such timeouts.
	OpenTimeout time.Duration
	// MaxConnecting limits the sessions between dialling and Established
	// at once (0: no limit, every session dials at the start, as routers
	// do after an RR restart).
	MaxConnecting int
}

// Stats is one session's record since the fleet started.
type Stats struct {
	Source netip.Addr
	// Expected is how many routes the session holds when it has every
	// other session's.
	Expected    int
	Established time.Duration // since the start, when it first was; 0: never
	// Complete is since the start when the session first held every route
	// of the other sessions; 0: not yet.
	Complete time.Duration
	// Up is since the start when the session last became Established (0
	// while it is not), Full when it last came to hold every route (0
	// while it does not): after an RR restart, they time the recovery.
	Up, Full     time.Duration
	Connects     int   // times Established
	Received     int   // routes of the fleet it holds now
	Updates      int   // UPDATE messages received
	UpdateBytes  int64 // their bytes, headers included
	NotifySent   int   // NOTIFICATIONs it sent (hold timer expiry, bad input)
	NotifyRecv   int   // NOTIFICATIONs the RR sent
	HoldExpiries int
	DialErrors   int // connection attempts that failed (no TCP handshake within 5 s, refused)
	OpenTimeouts int // connections that got no OPEN within OpenTimeout
	Lost         int // sessions ended otherwise (connection reset, EOF)
	// Resets is how often an Established session ended while the fleet
	// ran (whatever the cause; Stop's own ends are not counted).
	Resets    int
	LastError string // why the last session ended
}

// Fleet is a running fleet.
type Fleet struct {
	cfg      Config
	start    time.Time
	index    map[netip.Prefix]int32 // every prefix of the fleet -> its bit
	expected []int                  // routes session i should hold
	cancel   context.CancelFunc
	done     sync.WaitGroup
	// connecting holds a token per session between dialling and
	// Established (Config.MaxConnecting); nil: no limit
	connecting chan struct{}

	mu       sync.Mutex
	sessions []*session
}

// Start runs the fleet until Stop.
func Start(cfg Config) (*Fleet, error) {
	if !cfg.RR.IsValid() || len(cfg.Sources) == 0 || cfg.Announce == nil || cfg.LocalAS == 0 || cfg.PeerAS == 0 {
		return nil, errors.New("fleet: RR, Sources, Announce, LocalAS and PeerAS are required")
	}
	f := &Fleet{index: map[netip.Prefix]int32{}}
	if cfg.HoldTime == 0 {
		cfg.HoldTime = 90 * time.Second
	}
	if cfg.HoldTime < 3*time.Second || cfg.HoldTime > 65535*time.Second {
		return nil, fmt.Errorf("fleet: hold time %s: 3 s to 65535 s", cfg.HoldTime)
	}
	if cfg.Retry == 0 {
		cfg.Retry = time.Second
	}
	if cfg.OpenTimeout == 0 {
		cfg.OpenTimeout = 10 * time.Second
	}
	if cfg.MaxConnecting > 0 {
		f.connecting = make(chan struct{}, cfg.MaxConnecting)
	}
	announce := make([][]netip.Prefix, len(cfg.Sources))
	for i, src := range cfg.Sources {
		if !src.Is4() {
			return nil, fmt.Errorf("fleet: source %s: IPv4 only (it is the router id too)", src)
		}
		announce[i] = cfg.Announce(i)
		for _, p := range announce[i] {
			if !p.Addr().Is4() || p != p.Masked() {
				return nil, fmt.Errorf("fleet: session %d announces %s: IPv4 prefixes without host bits only", i, p)
			}
			if _, dup := f.index[p]; dup {
				return nil, fmt.Errorf("fleet: %s announced twice: every prefix of the fleet must be distinct", p)
			}
			f.index[p] = int32(len(f.index))
		}
	}
	f.expected = make([]int, len(cfg.Sources))
	for i := range cfg.Sources {
		f.expected[i] = len(f.index) - len(announce[i])
	}
	f.cfg = cfg
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	f.start = time.Now()
	for i, src := range cfg.Sources {
		s := &session{f: f, src: src, announce: announce[i], have: make([]uint64, (len(f.index)+63)/64)}
		s.stats.Source, s.stats.Expected = src, f.expected[i]
		f.sessions = append(f.sessions, s)
		f.done.Add(1)
		go func() {
			defer f.done.Done()
			s.run(ctx)
		}()
	}
	return f, nil
}

// Stop ends every session with a Cease NOTIFICATION and waits for them.
func (f *Fleet) Stop() {
	f.cancel()
	f.done.Wait()
}

// Stats is every session's record, in the order of Config.Sources.
func (f *Fleet) Stats() []Stats {
	out := make([]Stats, len(f.sessions))
	for i, s := range f.sessions {
		s.mu.Lock()
		out[i] = s.stats
		s.mu.Unlock()
	}
	return out
}

// Summary adds the sessions up.
type Summary struct {
	// Established and Complete count the sessions up and holding every
	// route now; LastEstablished and LastComplete are the latest of their
	// Up and Full (when the slowest got there, the last time it did).
	Sessions, Established, Complete int
	LastEstablished, LastComplete   time.Duration
	Resets, NotifySent, NotifyRecv  int
	HoldExpiries, OpenTimeouts      int
	DialErrors                      int
	Lost                            int
	Updates                         int
	UpdateBytes                     int64
	Routes                          int // held, over all sessions
}

// Summarize is Stats added up.
func Summarize(all []Stats) Summary {
	var s Summary
	s.Sessions = len(all)
	for _, st := range all {
		if st.Up > 0 {
			s.Established++
			s.LastEstablished = max(s.LastEstablished, st.Up)
		}
		if st.Full > 0 {
			s.Complete++
			s.LastComplete = max(s.LastComplete, st.Full)
		}
		s.Resets += st.Resets
		s.NotifySent += st.NotifySent
		s.NotifyRecv += st.NotifyRecv
		s.HoldExpiries += st.HoldExpiries
		s.OpenTimeouts += st.OpenTimeouts
		s.DialErrors += st.DialErrors
		s.Lost += st.Lost
		s.Updates += st.Updates
		s.UpdateBytes += st.UpdateBytes
		s.Routes += st.Received
	}
	return s
}

// session is one client of the fleet.
type session struct {
	f        *Fleet
	src      netip.Addr
	announce []netip.Prefix

	mu    sync.Mutex
	stats Stats
	have  []uint64 // bitmap over f.index: the routes it holds now

	wmu sync.Mutex // one writer at a time on the connection
	// release gives back the connecting token (MaxConnecting) once
	// Established; only the session's own goroutine calls it
	release func()
}

func (s *session) run(ctx context.Context) {
	for ctx.Err() == nil {
		established, err := s.connect(ctx)
		s.mu.Lock()
		if ctx.Err() == nil {
			if err != nil {
				s.stats.LastError = err.Error()
			}
			if established {
				s.stats.Resets++
			}
		}
		clear(s.have)
		s.stats.Received, s.stats.Up, s.stats.Full = 0, 0, 0
		s.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(s.f.cfg.Retry):
		}
	}
}

// errHold and errNotified end a session; the others are the connection's.
var (
	errHold     = errors.New("hold timer expired")
	errNotified = errors.New("NOTIFICATION received")
)

// connect runs one BGP session until it ends or ctx is done, and says
// whether it was Established.
func (s *session) connect(ctx context.Context) (established bool, err error) {
	cfg := s.f.cfg
	if s.f.connecting != nil {
		select {
		case s.f.connecting <- struct{}{}:
		case <-ctx.Done():
			return false, nil
		}
		held := true
		release := func() {
			if held {
				held = false
				<-s.f.connecting
			}
		}
		defer release()
		s.release = release
	}
	d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(s.src, 0)), Timeout: 5 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", cfg.RR.String())
	if err != nil {
		if ctx.Err() == nil {
			s.count(func(st *Stats) { st.DialErrors++ })
		}
		return false, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() {
		// an orderly end: Cease / Administrative Shutdown
		_ = s.write(conn, bgp.NewBGPNotificationMessage(bgp.BGP_ERROR_CEASE, bgp.BGP_ERROR_SUB_ADMINISTRATIVE_SHUTDOWN, nil))
		_ = conn.Close() // the reader ends, and with it the session
	})
	defer stop()

	myAS := cfg.LocalAS
	if myAS > 65535 {
		myAS = bgp.AS_TRANS
	}
	hold := uint16(cfg.HoldTime / time.Second)
	caps := []bgp.ParameterCapabilityInterface{
		bgp.NewCapMultiProtocol(bgp.RF_IPv4_UC),
		bgp.NewCapRouteRefresh(),
		bgp.NewCapFourOctetASNumber(cfg.LocalAS),
	}
	if err := s.write(conn, bgp.NewBGPOpenMessage(uint16(myAS), hold, s.src.String(), []bgp.OptionParameterInterface{bgp.NewOptionParameterCapability(caps)})); err != nil {
		return false, err
	}
	r := bufio.NewReaderSize(conn, 64<<10)
	// the read deadline: OpenTimeout until Established, then the hold time
	// both OPENs agreed on
	var negotiated, deadline atomic.Int64
	negotiated.Store(int64(cfg.HoldTime))
	deadline.Store(int64(cfg.OpenTimeout))
	var keepalive *time.Ticker
	defer func() {
		if keepalive != nil {
			keepalive.Stop()
		}
	}()
	var keepaliveC <-chan time.Time
	msgs := make(chan readResult)
	go s.reader(r, conn, &deadline, msgs)
	defer func() {
		_ = conn.Close()
		for range msgs { // the reader ends on the closed connection
		}
	}()
	for {
		var res readResult
		select {
		case res = <-msgs:
		case <-keepaliveC:
			if err := s.write(conn, bgp.NewBGPKeepAliveMessage()); err != nil {
				return established, err
			}
			continue
		}
		if res.err != nil {
			if ctx.Err() != nil {
				return established, nil
			}
			var ne net.Error
			switch {
			case errors.As(res.err, &ne) && ne.Timeout() && !established:
				s.count(func(st *Stats) { st.OpenTimeouts++ })
				return established, fmt.Errorf("no OPEN and KEEPALIVE from the RR within %s", cfg.OpenTimeout)
			case errors.As(res.err, &ne) && ne.Timeout():
				s.count(func(st *Stats) { st.HoldExpiries++; st.NotifySent++ })
				_ = s.write(conn, bgp.NewBGPNotificationMessage(bgp.BGP_ERROR_HOLD_TIMER_EXPIRED, 0, nil))
				return established, errHold
			case errors.Is(res.err, errNotified):
				return established, res.err
			default:
				var me *bgp.MessageError
				if errors.As(res.err, &me) {
					s.count(func(st *Stats) { st.NotifySent++ })
					_ = s.write(conn, bgp.NewBGPNotificationMessage(me.TypeCode, me.SubTypeCode, me.Data))
				} else {
					s.count(func(st *Stats) { st.Lost++ })
				}
				return established, res.err
			}
		}
		if res.update {
			if err := s.update(res.withdrawn, res.nlri, res.size); err != nil {
				s.count(func(st *Stats) { st.NotifySent++ })
				_ = s.write(conn, bgp.NewBGPNotificationMessage(err.TypeCode, err.SubTypeCode, err.Data))
				return established, err
			}
			continue
		}
		switch body := res.msg.Body.(type) {
		case *bgp.BGPOpen:
			if h := time.Duration(body.HoldTime) * time.Second; h < time.Duration(negotiated.Load()) {
				negotiated.Store(int64(h))
			}
			if err := s.write(conn, bgp.NewBGPKeepAliveMessage()); err != nil {
				return established, err
			}
		case *bgp.BGPKeepAlive:
			if !established {
				established = true
				deadline.Store(negotiated.Load())
				if s.release != nil {
					s.release()
				}
				if h := time.Duration(negotiated.Load()); h > 0 {
					keepalive = time.NewTicker(h / 3)
					keepaliveC = keepalive.C
				}
				s.count(func(st *Stats) {
					st.Connects++
					st.Up = time.Since(s.f.start)
					if st.Established == 0 {
						st.Established = st.Up
					}
					if st.Expected == 0 { // a fleet of one: nothing to wait for
						st.Full = st.Up
						if st.Complete == 0 {
							st.Complete = st.Full
						}
					}
				})
				if err := s.sendRoutes(conn); err != nil {
					return established, err
				}
			}
		}
	}
}

// readResult is one message read, or why reading stopped. UPDATEs come as
// their withdrawn routes and NLRI sections only (see updateSections).
type readResult struct {
	msg             *bgp.BGPMessage
	withdrawn, nlri []byte
	update          bool
	size            int // the message's length, header included
	err             error
}

// reader reads and parses messages into out until an error, which it sends
// last. The read deadline is the negotiated hold time (the OPEN's until the
// peer's OPEN arrives).
func (s *session) reader(r *bufio.Reader, conn net.Conn, hold *atomic.Int64, out chan<- readResult) {
	defer close(out)
	header := make([]byte, bgp.BGP_HEADER_LENGTH)
	for {
		if h := time.Duration(hold.Load()); h > 0 {
			_ = conn.SetReadDeadline(time.Now().Add(h))
		} else {
			_ = conn.SetReadDeadline(time.Time{}) // hold time 0: no keepalives, no deadline
		}
		res := readResult{}
		if _, err := io.ReadFull(r, header); err != nil {
			res.err = err
		} else {
			h := &bgp.BGPHeader{}
			if err := h.DecodeFromBytes(header); err != nil {
				res.err = err
			} else if h.Len < bgp.BGP_HEADER_LENGTH || h.Len > bgp.BGP_MAX_MESSAGE_LENGTH {
				res.err = bgp.NewMessageError(bgp.BGP_ERROR_MESSAGE_HEADER_ERROR, bgp.BGP_ERROR_SUB_BAD_MESSAGE_LENGTH, nil, fmt.Sprintf("message length %d", h.Len))
			} else {
				body := make([]byte, int(h.Len)-bgp.BGP_HEADER_LENGTH)
				res.size = int(h.Len)
				if _, err := io.ReadFull(r, body); err != nil {
					res.err = err
				} else if h.Type == bgp.BGP_MSG_UPDATE {
					res.update = true
					res.withdrawn, res.nlri, res.err = updateSections(body)
				} else {
					res.msg, res.err = bgp.ParseBGPBody(h, body)
					if res.err == nil {
						if n, ok := res.msg.Body.(*bgp.BGPNotification); ok {
							s.count(func(st *Stats) { st.NotifyRecv++ })
							res.err = fmt.Errorf("%w: code %d subcode %d", errNotified, n.ErrorCode, n.ErrorSubcode)
						}
					}
				}
			}
		}
		out <- res
		if res.err != nil {
			return
		}
	}
}

// updateSections cuts an UPDATE's body into its withdrawn routes and its
// NLRI (RFC 4271 4.3), stepping over the path attributes by their total
// length: the fleet counts prefixes and needs no attribute, and decoding
// every attribute of millions of small UPDATEs cost it more CPU than the
// RR spent sending them.
func updateSections(body []byte) (withdrawn, nlri []byte, err error) {
	malformed := bgp.NewMessageError(bgp.BGP_ERROR_UPDATE_MESSAGE_ERROR, bgp.BGP_ERROR_SUB_MALFORMED_ATTRIBUTE_LIST, nil, "UPDATE section lengths exceed the message")
	if len(body) < 4 {
		return nil, nil, malformed
	}
	wl := int(binary.BigEndian.Uint16(body))
	if 2+wl+2 > len(body) {
		return nil, nil, malformed
	}
	al := int(binary.BigEndian.Uint16(body[2+wl:]))
	if 4+wl+al > len(body) {
		return nil, nil, malformed
	}
	return body[2 : 2+wl], body[4+wl+al:], nil
}

// update counts an UPDATE's routes of the fleet (others are ignored); each
// prefix is decoded by GoBGP. A malformed prefix is the error to notify.
func (s *session) update(withdrawn, nlri []byte, size int) *bgp.MessageError {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Updates++
	s.stats.UpdateBytes += int64(size)
	walk := func(b []byte, f func(bit int32)) *bgp.MessageError {
		var p bgp.IPAddrPrefix
		for len(b) > 0 {
			if err := p.DecodeFromBytes(b); err != nil {
				var me *bgp.MessageError
				if errors.As(err, &me) {
					return me
				}
				return bgp.NewMessageError(bgp.BGP_ERROR_UPDATE_MESSAGE_ERROR, bgp.BGP_ERROR_SUB_INVALID_NETWORK_FIELD, nil, err.Error()).(*bgp.MessageError)
			}
			b = b[p.Len():]
			if a, ok := netip.AddrFromSlice(p.Prefix.To4()); ok {
				if bit, ok := s.f.index[netip.PrefixFrom(a, int(p.Length))]; ok {
					f(bit)
				}
			}
		}
		return nil
	}
	if err := walk(withdrawn, func(bit int32) {
		if s.have[bit/64]&(1<<(bit%64)) != 0 {
			s.have[bit/64] &^= 1 << (bit % 64)
			s.stats.Received--
		}
	}); err != nil {
		return err
	}
	if err := walk(nlri, func(bit int32) {
		if s.have[bit/64]&(1<<(bit%64)) == 0 {
			s.have[bit/64] |= 1 << (bit % 64)
			s.stats.Received++
		}
	}); err != nil {
		return err
	}
	switch {
	case s.stats.Received != s.stats.Expected:
		s.stats.Full = 0
	case s.stats.Full == 0:
		s.stats.Full = time.Since(s.f.start)
		if s.stats.Complete == 0 {
			s.stats.Complete = s.stats.Full
		}
	}
	return nil
}

// sendRoutes announces the session's prefixes, as many per UPDATE as fit.
func (s *session) sendRoutes(conn net.Conn) error {
	cfg := s.f.cfg
	attrs := []bgp.PathAttributeInterface{
		bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP),
		bgp.NewPathAttributeNextHop(s.src.String()),
	}
	if cfg.LocalAS == cfg.PeerAS {
		attrs = append(attrs, bgp.NewPathAttributeAsPath(nil), bgp.NewPathAttributeLocalPref(100))
	} else {
		attrs = append(attrs, bgp.NewPathAttributeAsPath([]bgp.AsPathParamInterface{bgp.NewAs4PathParam(bgp.BGP_ASPATH_ATTR_TYPE_SEQ, []uint32{cfg.LocalAS})}))
	}
	const perUpdate = 700 // /31s: 5 bytes each, well inside 4096 with the attributes
	for start := 0; start < len(s.announce); start += perUpdate {
		var nlri []*bgp.IPAddrPrefix
		for _, p := range s.announce[start:min(start+perUpdate, len(s.announce))] {
			nlri = append(nlri, bgp.NewIPAddrPrefix(uint8(p.Bits()), p.Addr().String()))
		}
		if err := s.write(conn, bgp.NewBGPUpdateMessage(nil, attrs, nlri)); err != nil {
			return err
		}
	}
	return nil
}

func (s *session) count(f func(*Stats)) {
	s.mu.Lock()
	f(&s.stats)
	s.mu.Unlock()
}

// write sends one message (4-octet AS numbers: both ends announce the
// capability).
func (s *session) write(conn net.Conn, m *bgp.BGPMessage) error {
	b, err := m.Serialize(&bgp.MarshallingOption{})
	if err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err = conn.Write(b)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = fmt.Errorf("write: %w", err)
	}
	return err
}

// Addresses is n source addresses in block, 250 per /24 (.1 to .250 of
// each, in order): session i's is the (i/250)-th /24's address i%250+1.
func Addresses(block netip.Prefix, n int) ([]netip.Addr, error) {
	if !block.Addr().Is4() || block.Bits() > 24 || block != block.Masked() {
		return nil, fmt.Errorf("fleet: source block %s: an IPv4 prefix of /24 or shorter, without host bits", block)
	}
	if capacity := 250 << (24 - block.Bits()); n < 1 || n > capacity {
		return nil, fmt.Errorf("fleet: %d sessions from %s: 1 to %d (250 per /24)", n, block, capacity)
	}
	base := binary.BigEndian.Uint32(block.Addr().AsSlice())
	out := make([]netip.Addr, n)
	for i := range out {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], base+uint32(i/250)<<8+uint32(i%250+1))
		out[i] = netip.AddrFrom4(a)
	}
	return out, nil
}

// MaxPrefixes is the most routes Prefixes gives a session.
const MaxPrefixes = 128

// Prefixes is what session i announces with per routes each (at most
// MaxPrefixes): /31s in 10.(16+i/256).(i%256).0/24, disjoint per session,
// for up to 60,000 sessions.
func Prefixes(per int) func(i int) []netip.Prefix {
	return func(i int) []netip.Prefix {
		out := make([]netip.Prefix, min(per, MaxPrefixes))
		for j := range out {
			out[j] = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(16 + i/256), byte(i % 256), byte(2 * j)}), 31)
		}
		return out
	}
}

// Report is the fleet at one moment, as meshrr-fleet writes it for a test
// outside its process.
type Report struct {
	Started  time.Time     // the fleet's start: Stats' durations count from it
	Elapsed  time.Duration // since the start, when the report was taken
	Summary  Summary
	Sessions []Stats
}

// Report is every session's record now, added up.
func (f *Fleet) Report() Report {
	st := f.Stats()
	return Report{Started: f.start, Elapsed: time.Since(f.start), Summary: Summarize(st), Sessions: st}
}
