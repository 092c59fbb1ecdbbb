package wire

import (
	"bytes"
	"errors"
	"io"
	"sync"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/dashstream/dashstream/wire/pb"
)

// ThreadSeq is one thread a record touches, with the highest sequence the
// record carries for it (0 = unsequenced). ThreadID is already bounded
// (BoundThreadID).
type ThreadSeq struct {
	ThreadID string
	Seq      uint64
}

// RunEvent is a lifecycle fact a run summary needs, in the order the record
// carries them (EventBatch inner events in array order).
type RunEvent struct {
	ThreadID    string // bounded; "" when the event's header has no thread
	Seq         uint64
	TimestampUs int64 // event header timestamp; 0 in a batch: the batch header's
	EventType   pb.EventType
	GraphName   string // GRAPH_START attribute graph_name
	ErrorText   string // NODE_ERROR / GRAPH_ERROR attribute "error"
	NodeID      string // Event.node_id (the failing node of NODE_ERROR)
}

// Index is what the store and hub need from a record without materialising
// the whole message.
type Index struct {
	Type          pb.MessageType // which oneof arm the record carries
	TimestampUs   int64          // header timestamp (EventBatch: batch header)
	SchemaVersion uint32         // header schema_version as sent (0 means 1)
	Threads       []ThreadSeq    // distinct threads, max sequence each
	Events        []RunEvent     // GRAPH_START/END/ERROR and NODE_ERROR events
	MultiThread   bool           // an EventBatch spanning several threads
}

// Extract indexes a framed Kafka value: Unframe (same limits, same capped
// zstd path) then ExtractProto. It succeeds exactly when Decode does and
// fails with the same error class.
func Extract(payload []byte, maxPayload int) (Index, error) {
	if len(payload) == 0 || payload[0] != FrameZstd && !bytes.HasPrefix(payload, []byte(zstdMagic)) {
		body, _, err := unframe(payload, maxPayload, nil)
		if err != nil {
			return Index{}, err
		}
		return ExtractProto(body)
	}
	bp := inflateBufs.Get().(*[]byte)
	defer inflateBufs.Put(bp)
	body, inflated, err := unframe(payload, maxPayload, *bp)
	if err != nil {
		return Index{}, err
	}
	if inflated && cap(body) <= maxPooledInflateBuf {
		*bp = body[:0]
	}
	return ExtractProto(body)
}

// inflateBufs recycles Extract's decompression buffers: the Index copies
// every string it keeps, so the decompressed bytes die with the call.
var inflateBufs = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledInflateBuf: bigger buffers are left to the garbage collector.
const maxPooledInflateBuf = 1 << 20

// ExtractProto indexes the protobuf bytes of a DashStreamMessage (what
// Unframe returns) with one protowire scan, without unmarshalling it:
//   - Type is the oneof arm; TimestampUs and SchemaVersion come from the
//     variant's header (EventBatch: the batch header).
//   - Threads: non-batch variants report their header's bounded thread id
//     with its sequence; an EventBatch ignores the batch header and reports
//     every inner event's thread with the maximum sequence seen for it.
//     Sequence 0 means unsequenced; a header with no (or a blank) thread
//     id adds no thread. MultiThread: more than one thread.
//   - Events: GRAPH_START (with attribute graph_name), GRAPH_END,
//     GRAPH_ERROR and NODE_ERROR (with attribute "error") events, in
//     record order.
//
// The scan validates everything proto.Unmarshal validates (wire format,
// UTF-8 of string fields, nesting depth), so it fails exactly when
// proto.Unmarshal does, and it follows proto.Unmarshal's merge rules (the
// last oneof arm wins, repeated occurrences of a message merge). Errors
// are *DecodeError: buffer_underflow for truncated data, invalid_protobuf
// otherwise. Empty input is an empty message: Type UNSPECIFIED, no threads.
func ExtractProto(b []byte) (Index, error) {
	var x extractor
	return x.run(b)
}

// validateMessage walks a DashStreamMessage encoding like ExtractProto
// without keeping anything; nil if proto.Unmarshal accepts it.
func validateMessage(b []byte) error {
	return validate(b, specRoot, protowire.DefaultRecursionLimit)
}

// --- schema tables -----------------------------------------------------------

// fieldKind is how a known field's value is checked.
type fieldKind uint8

const (
	kindNone    fieldKind = iota // unknown field number
	kindVarint                   // int32/64, uint32/64, sint32/64, bool, enum
	kindFixed32                  // fixed32, sfixed32, float
	kindFixed64                  // fixed64, sfixed64, double
	kindString                   // UTF-8 validated
	kindBytes
	kindMessage
	kindMap // a map field: each occurrence is one entry message
)

// fieldSpec describes one field of a message for the scan.
type fieldSpec struct {
	kind     fieldKind
	repeated bool     // scalar: packed encoding accepted too
	msg      *msgSpec // kindMessage, kindMap (the entry message)
	name     string   // for error messages
	wireType protowire.Type
}

// msgSpec is a message's fields indexed by field number.
type msgSpec struct {
	name   protoreflect.FullName
	fields []fieldSpec
}

func (s *msgSpec) field(num protowire.Number) *fieldSpec {
	if num < protowire.Number(len(s.fields)) && s.fields[num].kind != kindNone {
		return &s.fields[num]
	}
	return nil
}

// The specs the extractor interprets; all others are reached through them.
// Built once from the generated descriptors, read-only afterwards.
var (
	specRoot      = buildSpec((&pb.DashStreamMessage{}).ProtoReflect().Descriptor(), map[protoreflect.FullName]*msgSpec{})
	specEvent     = specRoot.fields[1].msg
	specHeader    = specEvent.fields[1].msg
	specAttrEntry = specEvent.fields[4].msg
	specAttrValue = specAttrEntry.fields[2].msg
	specBatch     = specRoot.fields[8].msg
)

func buildSpec(md protoreflect.MessageDescriptor, seen map[protoreflect.FullName]*msgSpec) *msgSpec {
	if s, ok := seen[md.FullName()]; ok {
		return s
	}
	s := &msgSpec{name: md.FullName()}
	seen[md.FullName()] = s
	fds := md.Fields()
	maxNum := protoreflect.FieldNumber(0)
	for i := 0; i < fds.Len(); i++ {
		maxNum = max(maxNum, fds.Get(i).Number())
	}
	s.fields = make([]fieldSpec, maxNum+1)
	for i := 0; i < fds.Len(); i++ {
		fd := fds.Get(i)
		fs := fieldSpec{name: string(fd.Name()), repeated: fd.IsList(), wireType: protowire.BytesType}
		switch fd.Kind() {
		case protoreflect.BoolKind, protoreflect.EnumKind,
			protoreflect.Int32Kind, protoreflect.Int64Kind, protoreflect.Uint32Kind, protoreflect.Uint64Kind,
			protoreflect.Sint32Kind, protoreflect.Sint64Kind:
			fs.kind, fs.wireType = kindVarint, protowire.VarintType
		case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
			fs.kind, fs.wireType = kindFixed32, protowire.Fixed32Type
		case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
			fs.kind, fs.wireType = kindFixed64, protowire.Fixed64Type
		case protoreflect.StringKind:
			fs.kind = kindString
		case protoreflect.BytesKind:
			fs.kind = kindBytes
		case protoreflect.MessageKind:
			fs.kind = kindMessage
			if fd.IsMap() {
				fs.kind, fs.repeated = kindMap, false
			}
			fs.msg = buildSpec(fd.Message(), seen)
		default: // groups do not occur in proto3; scanned as unknown fields
			continue
		}
		s.fields[fd.Number()] = fs
	}
	return s
}

// accepts reports whether a field encoded with wire type typ is parsed as
// this field (proto.Unmarshal keeps other wire types as unknown fields).
func (fs *fieldSpec) accepts(typ protowire.Type) bool {
	return typ == fs.wireType || (fs.repeated && typ == protowire.BytesType && fs.wireType != protowire.BytesType)
}

// --- the scan ------------------------------------------------------------

// wireErr turns a negative protowire length into a classified error.
func wireErr(n int, where string) error {
	err := protowire.ParseError(n)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return decodeErr(ClassBufferUnderflow, ErrTruncated, "%s: %v", where, err)
	}
	return decodeErr(ClassInvalidProtobuf, ErrMalformed, "%s: %v", where, err)
}

func malformed(format string, args ...any) error {
	return decodeErr(ClassInvalidProtobuf, ErrMalformed, format, args...)
}

// msgIter walks the fields of one message. depth is what its children
// get, counted as proto.Unmarshal counts (DefaultRecursionLimit at the
// root, one per nested message and one more per map entry).
type msgIter struct {
	b     []byte
	spec  *msgSpec
	depth int
}

func newIter(b []byte, spec *msgSpec, depth int) (msgIter, error) {
	depth--
	if depth < 0 {
		return msgIter{}, malformed("%s: exceeded maximum recursion depth", spec.name)
	}
	return msgIter{b: b, spec: spec, depth: depth}, nil
}

// wireField is one field the iterator decoded and checked.
type wireField struct {
	num  protowire.Number
	spec *fieldSpec // nil: unknown number or unexpected wire type, skipped
	v    uint64     // varint / fixed value
	b    []byte     // contents of a length-delimited known field
}

// next decodes the next field and validates it completely, except that
// message and map fields whose number is in the bit set own (numbers < 64)
// are returned unchecked: the caller walks them at once with newIter. ok
// is false at the end of the message.
func (it *msgIter) next(own uint64) (f wireField, ok bool, err error) {
	if len(it.b) == 0 {
		return f, false, nil
	}
	tag, n := consumeVarint(it.b)
	if n < 0 {
		return f, false, wireErr(n, string(it.spec.name)+": tag")
	}
	if tag>>3 < uint64(protowire.MinValidNumber) || tag>>3 > uint64(protowire.MaxValidNumber) {
		return f, false, malformed("%s: invalid field number %d", it.spec.name, tag>>3)
	}
	it.b = it.b[n:]
	typ := protowire.Type(tag & 7)
	f.num = protowire.Number(tag >> 3)
	if typ == protowire.EndGroupType {
		return f, false, malformed("%s: unexpected end group (field %d)", it.spec.name, f.num)
	}
	fs := it.spec.field(f.num)
	if fs != nil && fs.kind == kindMap && it.depth < 1 {
		// proto.Unmarshal counts the entry before looking at the wire type.
		return f, false, malformed("%s.%s: exceeded maximum recursion depth", it.spec.name, fs.name)
	}
	if fs == nil || !fs.accepts(typ) {
		n = protowire.ConsumeFieldValue(f.num, typ, it.b)
		if n < 0 {
			return f, false, wireErr(n, string(it.spec.name)+": unknown field")
		}
		it.b = it.b[n:]
		return f, true, nil
	}
	f.spec = fs
	switch typ {
	case protowire.VarintType:
		f.v, n = consumeVarint(it.b)
	case protowire.Fixed32Type:
		var v uint32
		v, n = protowire.ConsumeFixed32(it.b)
		f.v = uint64(v)
	case protowire.Fixed64Type:
		f.v, n = protowire.ConsumeFixed64(it.b)
	default: // BytesType
		if len(it.b) > 0 && it.b[0] < 0x80 && int(it.b[0]) < len(it.b) {
			f.b, n = it.b[1:1+it.b[0]], 1+int(it.b[0])
		} else {
			f.b, n = protowire.ConsumeBytes(it.b)
		}
	}
	if n < 0 {
		return f, false, wireErr(n, string(it.spec.name)+"."+fs.name)
	}
	it.b = it.b[n:]
	if typ != protowire.BytesType {
		return f, true, nil
	}
	switch fs.kind {
	case kindString:
		if !utf8.Valid(f.b) {
			return f, false, malformed("%s.%s: invalid UTF-8", it.spec.name, fs.name)
		}
	case kindVarint, kindFixed32, kindFixed64:
		if n := validatePacked(f.b, fs.kind); n < 0 {
			return f, false, wireErr(n, string(it.spec.name)+"."+fs.name+" (packed)")
		}
	case kindMessage, kindMap:
		if f.num >= 64 || own&(1<<f.num) == 0 {
			if err := validate(f.b, fs.msg, it.depth); err != nil {
				return f, false, err
			}
		}
	}
	return f, true, nil
}

// consumeVarint is protowire.ConsumeVarint with a fast path for the
// one-byte varints most tags and small values are.
func consumeVarint(b []byte) (uint64, int) {
	if len(b) > 0 && b[0] < 0x80 {
		return uint64(b[0]), 1
	}
	return protowire.ConsumeVarint(b)
}

// validatePacked checks a packed run of scalars; it returns 0 or the
// negative protowire code of the first bad value.
func validatePacked(b []byte, k fieldKind) int {
	for len(b) > 0 {
		var n int
		switch k {
		case kindVarint:
			_, n = protowire.ConsumeVarint(b)
		case kindFixed32:
			_, n = protowire.ConsumeFixed32(b)
		default:
			_, n = protowire.ConsumeFixed64(b)
		}
		if n < 0 {
			return n
		}
		b = b[n:]
	}
	return 0
}

// validate checks a message encoding completely.
func validate(b []byte, spec *msgSpec, depth int) error {
	it, err := newIter(b, spec, depth)
	if err != nil {
		return err
	}
	for {
		_, ok, err := it.next(0)
		if err != nil || !ok {
			return err
		}
	}
}

// --- extraction ------------------------------------------------------------

// headerState accumulates a Header, merging repeated occurrences the way
// proto.Unmarshal does (the last value of each field wins).
type headerState struct {
	ts     int64
	thread []byte
	seq    uint64
	schema uint32
}

func (h *headerState) read(b []byte, depth int) error {
	it, err := newIter(b, specHeader, depth)
	if err != nil {
		return err
	}
	for {
		f, ok, err := it.next(0)
		if err != nil || !ok {
			return err
		}
		if f.spec == nil {
			continue
		}
		switch f.num {
		case 2:
			h.ts = int64(f.v)
		case 4:
			h.thread = f.b
		case 5:
			h.seq = f.v
		case 9:
			h.schema = uint32(f.v)
		}
	}
}

// eventState accumulates an Event (merging repeated occurrences).
type eventState struct {
	hdr       headerState
	typ       int32
	node      []byte
	graphName []byte // attributes["graph_name"].string_value
	errText   []byte // attributes["error"].string_value
}

const (
	ownHeader     = 1 << 1
	ownAttributes = 1 << 4
	ownEvents     = 1 << 2
	ownAttrValue  = 1 << 2
)

func (e *eventState) read(b []byte, depth int) error {
	it, err := newIter(b, specEvent, depth)
	if err != nil {
		return err
	}
	for {
		f, ok, err := it.next(ownHeader | ownAttributes)
		if err != nil || !ok {
			return err
		}
		if f.spec == nil {
			continue
		}
		switch f.num {
		case 1:
			err = e.hdr.read(f.b, it.depth)
		case 2:
			e.typ = int32(f.v)
		case 3:
			e.node = f.b
		case 4:
			err = e.readAttribute(f.b, it.depth)
		}
		if err != nil {
			return err
		}
	}
}

// readAttribute reads one attributes map entry; the last entry for a key
// wins, value occurrences inside one entry merge.
func (e *eventState) readAttribute(b []byte, depth int) error {
	it, err := newIter(b, specAttrEntry, depth)
	if err != nil {
		return err
	}
	var key, str []byte
	var arm protowire.Number
	for {
		f, ok, err := it.next(ownAttrValue)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if f.spec == nil {
			continue
		}
		switch f.num {
		case 1:
			key = f.b
		case 2:
			vit, err := newIter(f.b, specAttrValue, it.depth)
			if err != nil {
				return err
			}
			for {
				g, ok, err := vit.next(0)
				if err != nil {
					return err
				}
				if !ok {
					break
				}
				if g.spec == nil {
					continue
				}
				arm = g.num // every AttributeValue field is in the oneof
				if g.num == 1 {
					str = g.b
				}
			}
		}
	}
	if arm != 1 {
		str = nil
	}
	switch string(key) {
	case "graph_name":
		e.graphName = str
	case "error":
		e.errText = str
	}
	return nil
}

// lifecycle reports whether run summaries need events of type t.
func lifecycle(t pb.EventType) bool {
	switch t {
	case pb.EventType_EVENT_TYPE_GRAPH_START, pb.EventType_EVENT_TYPE_GRAPH_END,
		pb.EventType_EVENT_TYPE_GRAPH_ERROR, pb.EventType_EVENT_TYPE_NODE_ERROR:
		return true
	}
	return false
}

// extractor holds the state of one ExtractProto call.
type extractor struct {
	arm     protowire.Number // current oneof arm, 0 = none
	hdr     headerState      // variant header (EventBatch: batch header)
	ev      eventState       // the Event arm
	threads []ThreadSeq      // EventBatch: inner threads so far
	events  []RunEvent       // EventBatch: inner lifecycle events so far

	lastRaw   []byte // bound's one-entry cache
	lastBound string
}

// bound returns BoundThreadID of a raw thread id, reusing the previous
// answer for the same bytes (a batch usually repeats one thread).
func (x *extractor) bound(raw []byte) string {
	if len(raw) == 0 {
		return ""
	}
	if x.lastRaw != nil && string(raw) == string(x.lastRaw) {
		return x.lastBound
	}
	x.lastRaw, x.lastBound = raw, BoundThreadID(string(raw))
	return x.lastBound
}

func (x *extractor) addThread(id string, seq uint64) {
	if id == "" {
		return
	}
	for i := range x.threads {
		if x.threads[i].ThreadID == id {
			x.threads[i].Seq = max(x.threads[i].Seq, seq)
			return
		}
	}
	x.threads = append(x.threads, ThreadSeq{ThreadID: id, Seq: seq})
}

// addEvent records a finished event: its thread and, for lifecycle types,
// its run event.
func (x *extractor) addEvent(e *eventState) {
	th := x.bound(e.hdr.thread)
	x.addThread(th, e.hdr.seq)
	t := pb.EventType(e.typ)
	if !lifecycle(t) {
		return
	}
	re := RunEvent{ThreadID: th, Seq: e.hdr.seq, TimestampUs: e.hdr.ts, EventType: t, NodeID: string(e.node)}
	switch t {
	case pb.EventType_EVENT_TYPE_GRAPH_START:
		re.GraphName = string(e.graphName)
	case pb.EventType_EVENT_TYPE_GRAPH_ERROR, pb.EventType_EVENT_TYPE_NODE_ERROR:
		re.ErrorText = string(e.errText)
	}
	x.events = append(x.events, re)
}

const ownArms = 1<<1 | 1<<2 | 1<<3 | 1<<4 | 1<<5 | 1<<6 | 1<<7 | 1<<8 | 1<<9

func (x *extractor) run(b []byte) (Index, error) {
	it, err := newIter(b, specRoot, protowire.DefaultRecursionLimit)
	if err != nil {
		return Index{}, err
	}
	for {
		f, ok, err := it.next(ownArms)
		if err != nil {
			return Index{}, err
		}
		if !ok {
			break
		}
		if f.spec == nil {
			continue
		}
		if f.num != x.arm { // a different arm replaces the message
			*x = extractor{arm: f.num, threads: x.threads[:0], events: x.events[:0]}
		}
		switch f.num {
		case 1:
			err = x.ev.read(f.b, it.depth)
		case 8:
			err = x.readBatch(f.b, it.depth)
		default:
			err = x.readVariant(f.b, f.spec.msg, it.depth)
		}
		if err != nil {
			return Index{}, err
		}
	}
	ix := Index{Type: pb.MessageType(x.arm)}
	switch x.arm {
	case 0:
		return ix, nil
	case 1:
		x.addEvent(&x.ev)
		ix.TimestampUs, ix.SchemaVersion = x.ev.hdr.ts, x.ev.hdr.schema
	case 8:
		ix.TimestampUs, ix.SchemaVersion = x.hdr.ts, x.hdr.schema
		ix.MultiThread = len(x.threads) > 1
		// Inner events without a timestamp take the batch's (wire-protocol
		// §3.4). Only now: the batch header may follow the events, or be
		// merged from a later occurrence.
		for i := range x.events {
			if x.events[i].TimestampUs == 0 {
				x.events[i].TimestampUs = x.hdr.ts
			}
		}
	default:
		x.addThread(x.bound(x.hdr.thread), x.hdr.seq)
		ix.TimestampUs, ix.SchemaVersion = x.hdr.ts, x.hdr.schema
	}
	if len(x.threads) > 0 {
		ix.Threads = x.threads
	}
	if len(x.events) > 0 {
		ix.Events = x.events
	}
	return ix, nil
}

// readVariant reads a non-Event, non-batch variant: only its header.
func (x *extractor) readVariant(b []byte, spec *msgSpec, depth int) error {
	it, err := newIter(b, spec, depth)
	if err != nil {
		return err
	}
	for {
		f, ok, err := it.next(ownHeader)
		if err != nil || !ok {
			return err
		}
		if f.spec != nil && f.num == 1 {
			if err := x.hdr.read(f.b, it.depth); err != nil {
				return err
			}
		}
	}
}

// readBatch reads an EventBatch: the batch header and each inner event.
func (x *extractor) readBatch(b []byte, depth int) error {
	it, err := newIter(b, specBatch, depth)
	if err != nil {
		return err
	}
	for {
		f, ok, err := it.next(ownHeader | ownEvents)
		if err != nil || !ok {
			return err
		}
		if f.spec == nil {
			continue
		}
		switch f.num {
		case 1:
			err = x.hdr.read(f.b, it.depth)
		case 2:
			var e eventState
			if err = e.read(f.b, it.depth); err == nil {
				x.addEvent(&e)
			}
		}
		if err != nil {
			return err
		}
	}
}
