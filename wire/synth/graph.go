package synth

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/dashstream/dashstream/wire"
)

// gnode is one node of a graph definition. typ is the UI's snake_case
// node_type (transform, llm, tool, router, aggregator, validator, ...).
type gnode struct {
	name, desc, typ string
	in, out         []string
}

// gedge is one edge; typ is direct, conditional or parallel. Conditional
// edges carry the label of the condition and all of its targets.
type gedge struct {
	from, to, typ, label string
	targets              []string
}

// graphDef is a compiled graph as the producer describes it at GraphStart.
type graphDef struct {
	name, desc, entry, stateType string
	nodes                        []gnode
	edges                        []gedge
}

func (g *graphDef) node(name string) gnode {
	for _, n := range g.nodes {
		if n.name == name {
			return n
		}
	}
	return gnode{name: name, typ: "custom"}
}

// direct, cond and par add edges.
func (g *graphDef) direct(from, to string) {
	g.edges = append(g.edges, gedge{from: from, to: to, typ: "direct"})
}

func (g *graphDef) cond(from, label string, targets ...string) {
	for _, to := range targets {
		g.edges = append(g.edges, gedge{from: from, to: to, typ: "conditional", label: label, targets: targets})
	}
}

func (g *graphDef) par(from string, targets ...string) {
	for _, to := range targets {
		g.edges = append(g.edges, gedge{from: from, to: to, typ: "parallel"})
	}
}

// schemaID is the content-addressed id of the topology: the first 16 hex
// chars of SHA-256("entry:<e>;nodes:<sorted names>;edges:<sorted from->to:is_conditional>").
func (g *graphDef) schemaID() string {
	names := make([]string, len(g.nodes))
	for i, n := range g.nodes {
		names[i] = n.name
	}
	sort.Strings(names)
	edges := make([]string, len(g.edges))
	for i, e := range g.edges {
		edges[i] = fmt.Sprintf("%s->%s:%t", e.from, e.to, e.typ == "conditional")
	}
	sort.Strings(edges)
	sum := sha256.Sum256([]byte("entry:" + g.entry + ";nodes:" + strings.Join(names, ",") + ";edges:" + strings.Join(edges, ",")))
	return hex.EncodeToString(sum[:])[:16]
}

// layout places nodes in layers by BFS depth from the entry point.
func (g *graphDef) layout() map[string][2]int {
	depth := map[string]int{g.entry: 0}
	queue := []string{g.entry}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, e := range g.edges {
			if e.from != cur {
				continue
			}
			if _, seen := depth[e.to]; !seen {
				depth[e.to] = depth[cur] + 1
				queue = append(queue, e.to)
			}
		}
	}
	pos := map[string][2]int{}
	perLayer := map[int]int{}
	for _, n := range g.nodes {
		d, ok := depth[n.name]
		if !ok {
			d = len(g.nodes)
		}
		pos[n.name] = [2]int{perLayer[d] * 240, d * 140}
		perLayer[d]++
	}
	return pos
}

func strs(l []string) []any {
	out := make([]any, len(l))
	for i, s := range l {
		out[i] = s
	}
	return out
}

// schemaJSON renders the UI GraphSchema (graph_schema_json).
func (g *graphDef) schemaJSON(exportedUs int64) ([]byte, error) {
	pos := g.layout()
	nodes := make([]any, len(g.nodes))
	for i, n := range g.nodes {
		p := pos[n.name]
		nodes[i] = map[string]any{
			"name":          n.name,
			"description":   n.desc,
			"node_type":     n.typ,
			"input_fields":  strs(n.in),
			"output_fields": strs(n.out),
			"position":      []any{num(p[0]), num(p[1])},
			"attributes":    map[string]any{},
		}
	}
	edges := make([]any, len(g.edges))
	for i, e := range g.edges {
		em := map[string]any{"from": e.from, "to": e.to, "edge_type": e.typ}
		if e.label != "" {
			em["label"] = e.label
		}
		if len(e.targets) > 0 {
			em["conditional_targets"] = strs(e.targets)
		}
		edges[i] = em
	}
	b, err := wire.CanonicalJSON(map[string]any{
		"name":        g.name,
		"version":     "1.0.0",
		"description": g.desc,
		"nodes":       nodes,
		"edges":       edges,
		"entry_point": g.entry,
		"state_type":  g.stateType,
		"exported_at": time.UnixMicro(exportedUs).UTC().Format(time.RFC3339),
		"metadata":    map[string]any{"framework": "dashflow", "generator": "dashstream-synth"},
	})
	if err != nil {
		return nil, fmt.Errorf("graph schema: %w", err)
	}
	return b, nil
}

// manifestJSON renders a compact graph manifest (graph_manifest).
func (g *graphDef) manifestJSON() ([]byte, error) {
	nodes := map[string]any{}
	for _, n := range g.nodes {
		nodes[n.name] = map[string]any{"name": n.name, "node_type": n.typ, "description": n.desc}
	}
	edges := map[string]any{}
	for _, e := range g.edges {
		l, _ := edges[e.from].([]any)
		em := map[string]any{"to": e.to, "edge_type": e.typ}
		if e.label != "" {
			em["condition"] = e.label
		}
		edges[e.from] = append(l, em)
	}
	b, err := wire.CanonicalJSON(map[string]any{
		"graph_id":    g.name,
		"graph_name":  g.name,
		"entry_point": g.entry,
		"node_count":  num(len(g.nodes)),
		"edge_count":  num(len(g.edges)),
		"nodes":       nodes,
		"edges":       edges,
	})
	if err != nil {
		return nil, fmt.Errorf("graph manifest: %w", err)
	}
	return b, nil
}
