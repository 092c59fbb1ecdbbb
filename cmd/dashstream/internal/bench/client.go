package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/dashstream/dashstream/hub"
)

// Client modes: how records arrive on a connection.
const (
	ModeBatch  = "batch"  // D6 batched binary frames (/ws?batch=1)
	ModePaired = "paired" // the reference's cursor text frame + binary frame per record
	ModeBare   = "bare"   // one binary frame per record, nothing else (the baseline server)
)

// Handler receives what a Client reads. Record gets the partition, offset
// and payload of every record (payload is only valid during the call;
// partition and offset are −1 in ModeBare). Control gets every other text
// frame with its type.
type Handler struct {
	Record  func(p int32, o int64, payload []byte)
	Control func(typ string, raw []byte)
}

// Client is one WebSocket client of the DashStream protocol.
type Client struct {
	WS   *websocket.Conn
	mode string
	buf  bytes.Buffer
	br   *bufio.Reader // batched binary frames are parsed as they stream in
	pay  []byte        // the payload being handed out (batched mode)

	// paired mode: the cursor waiting for its binary frame.
	haveCursor bool
	curP       int32
	curO       int64
}

// Dialer dials WebSocket clients, spreading their source addresses over
// 127.0.0.2 … 127.0.0.(1+Spread) so that per-IP limits and the ephemeral
// port range are not the bottleneck.
type Dialer struct {
	hc *http.Client
}

// NewDialer returns a Dialer spreading over spread loopback source
// addresses (0 or 1: the kernel's choice).
func NewDialer(spread int) *Dialer { return NewDialerReadBuffer(spread, 0) }

// NewDialerReadBuffer is NewDialer with a fixed socket receive buffer of
// rcvbuf bytes (0: the kernel's autotuning), for clients meant to stall.
func NewDialerReadBuffer(spread, rcvbuf int) *Dialer {
	var next atomic.Uint64
	nd := &net.Dialer{Timeout: 30 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			d := *nd
			if spread > 1 {
				i := next.Add(1) % uint64(spread)
				d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, byte(2+i/254), byte(2+i%254))}
			}
			c, err := d.DialContext(ctx, network, addr)
			if err == nil && rcvbuf > 0 {
				if tc, ok := c.(*net.TCPConn); ok {
					err = tc.SetReadBuffer(rcvbuf)
				}
			}
			return c, err
		},
		DisableCompression: true,
		MaxIdleConns:       -1,
	}
	return &Dialer{hc: &http.Client{Transport: tr}}
}

// Dial connects one client in mode to url (…/ws; "?batch=1" is added in
// ModeBatch).
func (d *Dialer) Dial(ctx context.Context, url, mode string) (*Client, error) {
	u := url
	if mode == ModeBatch {
		sep := "?"
		if bytes.ContainsRune([]byte(url), '?') {
			sep = "&"
		}
		u += sep + "batch=1"
	}
	ws, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: d.hc, CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", u, err)
	}
	ws.SetReadLimit(64 << 20)
	return &Client{WS: ws, mode: mode}, nil
}

// SendJSON sends v as a text frame.
func (c *Client) SendJSON(ctx context.Context, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding control frame: %w", err)
	}
	if err := c.WS.Write(ctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("sending control frame: %w", err)
	}
	return nil
}

// ResumeEarliest is the partition-mode resume of everything retained.
func ResumeEarliest() map[string]any {
	return map[string]any{"type": "resume", "mode": "partition", "from": "earliest", "lastOffsetsByPartition": map[string]any{}}
}

// ReadFrame reads one frame and hands what it carries to h. A read in
// progress ends when the connection is closed (Close); ctx is checked
// before it starts. (A cancellable context would cost every read a
// registration, which would make the client harness, not the server,
// the bottleneck of the baseline.)
func (c *Client) ReadFrame(ctx context.Context, h Handler) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	typ, r, err := c.WS.Reader(context.Background())
	if err != nil {
		return err
	}
	if typ == websocket.MessageBinary && c.mode == ModeBatch {
		// A batch is up to 1 MiB: read it record by record through a small
		// buffer instead of whole, so that a thousand clients in one
		// process do not each grow (and the runtime clear) a frame-sized
		// buffer; only the largest single payload is held.
		if c.br == nil {
			c.br = bufio.NewReaderSize(r, 4<<10)
		} else {
			c.br.Reset(r)
		}
		return c.streamBatch(h.Record)
	}
	c.buf.Reset()
	if _, err := c.buf.ReadFrom(r); err != nil {
		return fmt.Errorf("reading frame: %w", err)
	}
	b := c.buf.Bytes()
	if typ == websocket.MessageText {
		if c.mode == ModePaired && bytes.HasPrefix(b, []byte(`{"type":"cursor"`)) {
			p, o, err := parseCursor(b)
			if err != nil {
				return err
			}
			if c.haveCursor {
				return errors.New("two cursor frames in a row")
			}
			c.haveCursor, c.curP, c.curO = true, p, o
			return nil
		}
		if c.haveCursor {
			return fmt.Errorf("text frame between a cursor and its binary frame: %.80s", b)
		}
		var head struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(b, &head); err != nil {
			return fmt.Errorf("bad text frame %.80q: %w", b, err)
		}
		if h.Control != nil {
			h.Control(head.Type, b)
		}
		return nil
	}
	switch c.mode {
	case ModeBare:
		if h.Record != nil {
			h.Record(-1, -1, b)
		}
	case ModePaired:
		if !c.haveCursor {
			return errors.New("binary frame without a cursor frame")
		}
		c.haveCursor = false
		if h.Record != nil {
			h.Record(c.curP, c.curO, b)
		}
	default:
		return ParseBatch(b, h.Record)
	}
	return nil
}

// ParseBatch walks a D6 batched frame, calling rec for every record.
func ParseBatch(b []byte, rec func(p int32, o int64, payload []byte)) error {
	if len(b) == 0 || b[0] != hub.BatchFrameType {
		return fmt.Errorf("binary frame is not a D6 batch (first byte %#x)", b[:min(1, len(b))])
	}
	n, k := binary.Uvarint(b[1:])
	if k <= 0 {
		return errors.New("D6 batch: bad record count")
	}
	b = b[1+k:]
	for i := uint64(0); i < n; i++ {
		if len(b) < 12 {
			return errors.New("D6 batch: truncated record header")
		}
		p := int32(binary.BigEndian.Uint32(b[0:4]))
		o := int64(binary.BigEndian.Uint64(b[4:12]))
		l, k := binary.Uvarint(b[12:])
		if k <= 0 || uint64(len(b)-12-k) < l {
			return errors.New("D6 batch: truncated payload")
		}
		b = b[12+k:]
		if rec != nil {
			rec(p, o, b[:l])
		}
		b = b[l:]
	}
	if len(b) != 0 {
		return fmt.Errorf("D6 batch: %d trailing bytes", len(b))
	}
	return nil
}

// streamBatch reads one D6 batched frame from c.br, calling rec for every
// record, and fails unless the frame ends exactly after the last one.
func (c *Client) streamBatch(rec func(p int32, o int64, payload []byte)) error {
	t, err := c.br.ReadByte()
	if err != nil {
		return fmt.Errorf("D6 batch: %w", err)
	}
	if t != hub.BatchFrameType {
		return fmt.Errorf("binary frame is not a D6 batch (first byte %#x)", t)
	}
	n, err := binary.ReadUvarint(c.br)
	if err != nil {
		return errors.New("D6 batch: bad record count")
	}
	var head [12]byte
	for i := uint64(0); i < n; i++ {
		if _, err := io.ReadFull(c.br, head[:]); err != nil {
			return errors.New("D6 batch: truncated record header")
		}
		l, err := binary.ReadUvarint(c.br)
		if err != nil || l > 64<<20 {
			return errors.New("D6 batch: bad payload length")
		}
		if uint64(cap(c.pay)) < l {
			c.pay = make([]byte, l)
		}
		pay := c.pay[:l]
		if _, err := io.ReadFull(c.br, pay); err != nil {
			return errors.New("D6 batch: truncated payload")
		}
		if rec != nil {
			rec(int32(binary.BigEndian.Uint32(head[0:4])), int64(binary.BigEndian.Uint64(head[4:12])), pay)
		}
	}
	if _, err := c.br.ReadByte(); err != io.EOF {
		return errors.New("D6 batch: trailing bytes")
	}
	return nil
}

// parseCursor reads partition and offset out of a cursor frame
// {"type":"cursor","partition":P,"offset":"O"} without a JSON decoder.
func parseCursor(b []byte) (int32, int64, error) {
	num := func(key string) (int64, error) {
		i := bytes.Index(b, []byte(key))
		if i < 0 {
			return 0, fmt.Errorf("cursor frame without %s: %q", key, b)
		}
		j := i + len(key)
		for j < len(b) && b[j] == '"' {
			j++
		}
		k := j
		for k < len(b) && (b[k] >= '0' && b[k] <= '9' || b[k] == '-') {
			k++
		}
		return strconv.ParseInt(string(b[j:k]), 10, 64)
	}
	p, err := num(`"partition":`)
	if err != nil {
		return 0, 0, err
	}
	o, err := num(`"offset":`)
	if err != nil {
		return 0, 0, err
	}
	return int32(p), o, nil
}

// Close closes the connection without a handshake.
func (c *Client) Close() { c.WS.CloseNow() }
