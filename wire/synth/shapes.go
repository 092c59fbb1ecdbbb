package synth

import (
	"fmt"
	"strings"

	"github.com/dashstream/dashstream/wire"
	"github.com/dashstream/dashstream/wire/pb"
)

// Graph shapes (Config.Shape).
const (
	ShapeReact    = "react"    // ReAct agent loop: agent ⇄ tools
	ShapePipeline = "pipeline" // linear RAG pipeline with a revise loop
	ShapeRouter   = "router"   // intent router with four branches and follow-up turns
	ShapeLarge    = "large"    // 26-node research workflow with parallel fan-outs
	ShapeMixed    = "mixed"    // picks one of the above per run
)

// Shapes lists the valid Config.Shape values.
func Shapes() []string {
	return []string{ShapeReact, ShapePipeline, ShapeRouter, ShapeLarge, ShapeMixed}
}

const (
	finishStop  = pb.TokenChunk_FINISH_REASON_STOP
	finishTools = pb.TokenChunk_FINISH_REASON_TOOL_CALLS
)

func chatMsg(role, content string) map[string]any {
	return map[string]any{"role": role, "content": content}
}

// baseState is the part every shape's state shares: a chat transcript,
// request metadata and token usage (lean runs: the user's question and
// counters only).
func (r *run) baseState(system, user string) map[string]any {
	t := r.t
	if r.opt.lean {
		return map[string]any{
			"messages":  []any{chatMsg("user", user)},
			"status":    "running",
			"step":      num(0),
			"last_node": nil,
		}
	}
	return map[string]any{
		"messages": []any{chatMsg("system", system), chatMsg("user", user)},
		"metadata": map[string]any{
			"user_id":    "u_" + t.hexID(5),
			"session_id": t.uuid(),
			"locale":     t.pick(locales),
			"channel":    t.pick(channels),
			"model":      r.model,
		},
		"usage":     map[string]any{"prompt_tokens": num(0), "completion_tokens": num(0)},
		"status":    "running",
		"step":      num(0),
		"last_node": nil,
	}
}

// --- tool results ---------------------------------------------------------

func (t textGen) searchResults(n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = map[string]any{
			"title":     t.title(),
			"url":       t.url(),
			"snippet":   t.prose(t.between(150, 420)),
			"score":     t.frac(false),
			"published": fmt.Sprintf("2025-%02d-%02d", t.between(1, 12), t.between(1, 28)),
		}
	}
	return out
}

func (t textGen) page(url string, size int) map[string]any {
	return map[string]any{
		"url":          url,
		"title":        t.title(),
		"status":       num(200),
		"content_type": "text/html; charset=utf-8",
		"content":      t.prose(size),
	}
}

func (t textGen) sqlRows() map[string]any {
	n := t.between(3, 40)
	rows := make([]any, n)
	for i := range rows {
		rows[i] = []any{
			fmt.Sprintf("INV-%06d", t.between(1, 999999)),
			fmt.Sprintf("2025-%02d-%02d", t.between(1, 12), t.between(1, 28)),
			num(t.between(100, 250000)),
			t.pick([]string{"paid", "open", "overdue", "refunded", "void"}),
			t.person(),
		}
	}
	return map[string]any{
		"columns":   []any{"invoice_id", "date", "amount_cents", "status", "owner"},
		"rows":      rows,
		"row_count": num(n),
	}
}

func (t textGen) kbArticles(n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = map[string]any{
			"id":    fmt.Sprintf("KB%05d", t.between(1, 99999)),
			"title": t.title(),
			"body":  t.prose(t.between(400, 2200)),
		}
	}
	return out
}

// toolCall picks a ReAct tool and produces its arguments and result.
func (t textGen) toolCall() (string, map[string]any, any) {
	switch t.r.IntN(7) {
	case 0, 1:
		q := t.question()
		return "web_search", map[string]any{"query": q, "num_results": num(5)},
			map[string]any{"query": q, "results": t.searchResults(t.between(3, 8))}
	case 2:
		u := t.url()
		return "fetch_url", map[string]any{"url": u}, t.page(u, t.between(1500, 12000))
	case 3:
		return "sql_query", map[string]any{"sql": "SELECT invoice_id, date, amount_cents, status, owner FROM invoices WHERE customer_id = '" +
			t.hexID(4) + "' ORDER BY date DESC LIMIT 50"}, t.sqlRows()
	case 4:
		a, b := t.between(2, 99999), t.between(2, 999)
		return "calculator", map[string]any{"expression": fmt.Sprintf("%d * %d", a, b)},
			map[string]any{"result": num(a * b)}
	case 5:
		return "kb_lookup", map[string]any{"topic": t.pick(nouns), "limit": num(3)},
			map[string]any{"articles": t.kbArticles(t.between(1, 4))}
	default:
		res := map[string]any{"stdout": t.prose(t.between(80, 600)), "exit_code": num(0)}
		code := "import statistics\nvalues = load('" + t.pick(nouns) + "')\nprint(statistics.mean(values))"
		if t.chance(0.5) {
			code += "\nplot(values).savefig('out.png')"
			res["images"] = []any{t.pngAttachment(t.between(3000, 30000))}
		}
		return "python_exec", map[string]any{"code": code}, res
	}
}

// --- react ----------------------------------------------------------------

func reactGraph() *graphDef {
	g := &graphDef{
		name: "react_agent", entry: "load_context", stateType: "AgentState",
		desc: "ReAct agent: the model reasons, calls tools and loops until it can answer",
		nodes: []gnode{
			{"load_context", "Loads the user profile and long-term memory", "transform", []string{"messages"}, []string{"user_profile", "memory"}},
			{"agent", "Calls the model with the transcript and available tools", "llm", []string{"messages", "memory"}, []string{"messages", "iteration"}},
			{"tools", "Executes the tool calls requested by the model", "tool", []string{"messages"}, []string{"messages"}},
			{"respond", "Formats the final answer", "transform", []string{"messages"}, []string{"final_answer"}},
		},
	}
	g.direct("load_context", "agent")
	g.cond("agent", "should_continue", "tools", "respond")
	g.direct("tools", "agent")
	g.direct("respond", endNode)
	return g
}

func (r *run) runReact() {
	t := r.t
	st := r.baseState("You are a careful research assistant. Use the tools when facts are needed and cite them. "+
		t.prose(t.between(150, 900)), t.question())
	st["iteration"] = num(0)
	st["final_answer"] = nil
	st["tools_available"] = strs([]string{"web_search", "fetch_url", "sql_query", "calculator", "kb_lookup", "python_exec"})
	r.graphStart(reactGraph(), st)
	if !r.node("load_context", func(n *nodeRun) {
		n.work(5, 80)
		n.substep("load_user_profile", "complete")
		n.st()["user_profile"] = map[string]any{"name": t.person(), "plan": t.pick([]string{"free", "pro", "enterprise"}),
			"timezone": t.pick([]string{"UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo"})}
		mem := []any{}
		for i := t.between(1, 4); i > 0; i-- {
			mem = append(mem, t.prose(t.between(60, 300)))
		}
		n.st()["memory"] = mem
	}) {
		return
	}
	r.edge("load_context", false)
	planned := t.between(1, 4)
	for iter := 0; ; iter++ {
		more := iter < planned || r.needMore()
		type call struct {
			id, name string
			args     map[string]any
			result   any
		}
		var calls []call
		if !r.node("agent", func(n *nodeRun) {
			if t.chance(0.4) {
				n.thinking(t.sentence(), iter+1)
			}
			msg := map[string]any{"role": "assistant"}
			if more {
				var tc []any
				for k := t.between(1, 2); k > 0; k-- {
					name, args, res := t.toolCall()
					c := call{id: "call_" + t.hexID(12), name: name, args: args, result: res}
					calls = append(calls, c)
					argJSON, err := wire.CanonicalJSON(args)
					if err != nil {
						r.fail(err)
						return
					}
					tc = append(tc, map[string]any{"id": c.id, "type": "function",
						"function": map[string]any{"name": name, "arguments": string(argJSON)}})
				}
				msg["content"] = n.llm("I need more information. "+t.sentence()+" Calling "+calls[0].name+".", finishTools)
				msg["tool_calls"] = tc
			} else {
				msg["content"] = n.llm(t.prose(t.between(300, 2400)), finishStop)
			}
			n.appendTo("messages", msg)
			n.st()["iteration"] = num(iter + 1)
		}) {
			return
		}
		r.edge("agent", true)
		if !more {
			break
		}
		if !r.node("tools", func(n *nodeRun) {
			for _, c := range calls {
				n.tool(c.name, c.args, c.result, n.ms(40, 2500))
				js, err := wire.CanonicalJSON(c.result)
				if err != nil {
					r.fail(err)
					return
				}
				n.appendTo("messages", map[string]any{"role": "tool", "tool_call_id": c.id, "name": c.name, "content": string(js)})
			}
		}) {
			return
		}
		r.edge("tools", false)
	}
	if !r.node("respond", func(n *nodeRun) {
		n.work(2, 30)
		msgs := n.list("messages")
		last, _ := msgs[len(msgs)-1].(map[string]any)
		n.st()["final_answer"] = last["content"]
	}) {
		return
	}
	r.edge("respond", false)
	r.graphEnd()
}

// --- pipeline -------------------------------------------------------------

func pipelineGraph() *graphDef {
	g := &graphDef{
		name: "rag_pipeline", entry: "ingest", stateType: "PipelineState",
		desc: "Retrieval-augmented answer pipeline over a document collection",
		nodes: []gnode{
			{"ingest", "Loads the documents changed since the last run", "tool", []string{"collection"}, []string{"documents"}},
			{"clean_text", "Normalizes and language-tags documents", "transform", []string{"documents"}, []string{"documents"}},
			{"chunk", "Splits documents into overlapping chunks", "transform", []string{"documents"}, []string{"chunks"}},
			{"embed", "Embeds every chunk", "tool", []string{"chunks"}, []string{"chunks"}},
			{"retrieve", "Vector search for the query", "tool", []string{"query", "chunks"}, []string{"retrieved"}},
			{"rerank", "Cross-encoder reranking", "transform", []string{"retrieved"}, []string{"retrieved"}},
			{"generate", "Writes the grounded answer", "llm", []string{"query", "retrieved"}, []string{"answer"}},
			{"validate", "Checks grounding and citations", "validator", []string{"answer", "retrieved"}, []string{"validation"}},
			{"publish", "Publishes the answer", "transform", []string{"answer"}, []string{"published"}},
		},
	}
	g.direct("ingest", "clean_text")
	g.direct("clean_text", "chunk")
	g.direct("chunk", "embed")
	g.direct("embed", "retrieve")
	g.direct("retrieve", "rerank")
	g.direct("rerank", "generate")
	g.direct("generate", "validate")
	g.cond("validate", "needs_revision", "generate", "publish")
	g.direct("publish", endNode)
	return g
}

func (r *run) runPipeline() {
	t := r.t
	st := r.baseState("Answer strictly from the retrieved context and cite chunk ids.", t.question())
	st["collection"] = t.pick([]string{"support-kb", "eng-wiki", "legal-contracts", "sales-playbooks"})
	st["documents"] = []any{}
	st["chunks"] = []any{}
	st["retrieved"] = []any{}
	st["answer"] = nil
	st["attempts"] = num(0)
	r.graphStart(pipelineGraph(), st)
	ndocs := t.between(2, 7)
	ok := r.step("ingest", func(n *nodeRun) {
		docs := make([]any, ndocs)
		for i := range docs {
			docs[i] = map[string]any{"id": "doc_" + t.hexID(4), "title": t.title(), "source": t.url(),
				"text": t.prose(t.between(600, 3500))}
		}
		n.tool("load_documents", map[string]any{"collection": st["collection"], "since": "2025-06-01T00:00:00Z"},
			map[string]any{"count": num(ndocs)}, n.ms(80, 900))
		n.st()["documents"] = docs
	}) && r.step("clean_text", func(n *nodeRun) {
		for i, d := range n.list("documents") {
			dm := d.(map[string]any)
			dm["language"] = "en"
			dm["clean"] = true
			if i%2 == 0 {
				n.progress(fmt.Sprintf("cleaned %d/%d documents", i+1, ndocs), float64(i+1)/float64(ndocs))
			}
			n.work(2, 40)
		}
	}) && r.step("chunk", func(n *nodeRun) {
		var chunks []any
		for _, d := range n.list("documents") {
			dm := d.(map[string]any)
			text := dm["text"].(string)
			for i, off := 0, 0; off < len(text); i++ {
				end := min(off+t.between(300, 600), len(text))
				chunks = append(chunks, map[string]any{"id": fmt.Sprintf("%s#%d", dm["id"], i), "doc_id": dm["id"],
					"text": text[off:end]})
				off = end
			}
		}
		n.st()["chunks"] = chunks
		n.work(5, 60)
	}) && r.step("embed", func(n *nodeRun) {
		chunks := n.list("chunks")
		n.tool("embed_texts", map[string]any{"model": "text-embedding-3-small", "count": num(len(chunks)), "dimensions": num(24)},
			map[string]any{"model": "text-embedding-3-small", "dimensions": num(24), "usage": map[string]any{"total_tokens": num(len(chunks) * 110)}},
			n.ms(150, 1500))
		for _, c := range chunks {
			c.(map[string]any)["embedding"] = t.embedding(24)
		}
		n.metric("chunks_embedded", float64(len(chunks)), "count")
	}) && r.step("retrieve", func(n *nodeRun) {
		chunks := n.list("chunks")
		k := min(t.between(3, 8), len(chunks))
		var matches, retrieved []any
		for i := 0; i < k; i++ {
			c := chunks[t.r.IntN(len(chunks))].(map[string]any)
			score := t.frac(false)
			matches = append(matches, map[string]any{"chunk_id": c["id"], "score": score})
			retrieved = append(retrieved, map[string]any{"chunk_id": c["id"], "score": score, "text": c["text"]})
		}
		n.tool("vector_search", map[string]any{"query": firstUser(st), "top_k": num(k)}, map[string]any{"matches": matches}, n.ms(20, 300))
		n.st()["retrieved"] = retrieved
	}) && r.step("rerank", func(n *nodeRun) {
		ret := n.list("retrieved")
		for i := len(ret) - 1; i > 0; i-- {
			j := t.r.IntN(i + 1)
			ret[i], ret[j] = ret[j], ret[i]
		}
		for _, x := range ret {
			x.(map[string]any)["rerank_score"] = t.frac(false)
		}
		n.work(30, 400)
	})
	if !ok {
		return
	}
	revisions := 0
	if t.chance(0.3) {
		revisions = t.between(1, 2)
	}
	for attempt := 1; ; attempt++ {
		if !r.node("generate", func(n *nodeRun) {
			text := n.llm(t.prose(t.between(300, 1800)), finishStop)
			n.st()["answer"] = text
			n.st()["attempts"] = num(attempt)
			n.appendTo("messages", chatMsg("assistant", text))
		}) {
			return
		}
		r.edge("generate", false)
		again := attempt <= revisions || r.needMore()
		if !r.node("validate", func(n *nodeRun) {
			n.work(20, 300)
			issues := []any{}
			if again {
				issues = append(issues, "claim without citation: "+t.sentence())
			}
			n.st()["validation"] = map[string]any{"grounded": !again, "score": t.frac(false), "issues": issues}
		}) {
			return
		}
		r.edge("validate", true)
		if !again {
			break
		}
	}
	if !r.node("publish", func(n *nodeRun) {
		n.work(5, 50)
		n.st()["published"] = map[string]any{"url": t.url(), "version": num(t.between(1, 40))}
	}) {
		return
	}
	r.edge("publish", false)
	r.graphEnd()
}

func firstUser(st map[string]any) string {
	msgs, _ := st["messages"].([]any)
	for _, m := range msgs {
		if mm, ok := m.(map[string]any); ok && mm["role"] == "user" {
			s, _ := mm["content"].(string)
			return s
		}
	}
	return ""
}

// --- router ---------------------------------------------------------------

var routes = []string{"billing_agent", "tech_support_agent", "sales_agent", "general_qa"}

func routerGraph() *graphDef {
	g := &graphDef{
		name: "support_router", entry: "classify_intent", stateType: "SupportState",
		desc: "Customer-support router: classifies each turn and hands it to a specialist",
		nodes: []gnode{
			{"classify_intent", "Classifies the latest customer message", "router", []string{"messages"}, []string{"route", "confidence"}},
			{"billing_agent", "Answers billing questions using invoice tools", "llm", []string{"messages", "ticket"}, []string{"messages", "account"}},
			{"tech_support_agent", "Troubleshoots using the knowledge base", "llm", []string{"messages"}, []string{"messages", "kb_articles"}},
			{"sales_agent", "Answers pricing and plan questions", "llm", []string{"messages"}, []string{"messages", "quote"}},
			{"general_qa", "Handles everything else", "llm", []string{"messages"}, []string{"messages"}},
			{"compose_reply", "Applies templates and the signature", "transform", []string{"messages"}, []string{"reply_draft"}},
			{"quality_check", "Checks tone, PII and policy", "validator", []string{"reply_draft"}, []string{"qa"}},
		},
	}
	g.cond("classify_intent", "route_by_intent", routes...)
	for _, rt := range routes {
		g.direct(rt, "compose_reply")
	}
	g.direct("compose_reply", "quality_check")
	g.cond("quality_check", "needs_followup", "classify_intent", endNode)
	return g
}

func (r *run) runRouter() {
	t := r.t
	st := r.baseState("You are Acme's support assistant. Be concise and friendly. Never reveal internal notes.", t.question())
	st["ticket"] = map[string]any{
		"id":       fmt.Sprintf("TCK-%07d", t.between(1, 9999999)),
		"customer": map[string]any{"name": t.person(), "email": strings.ToLower(t.pick(firstName)) + "@" + t.pick(domains), "tier": t.pick([]string{"free", "pro", "enterprise"})},
		"priority": t.pick([]string{"low", "normal", "high", "urgent"}),
	}
	st["route"] = nil
	st["routing_history"] = []any{}
	st["turn"] = num(1)
	r.graphStart(routerGraph(), st)
	turns := t.between(1, 3)
	for turn := 1; ; turn++ {
		route := t.pick(routes)
		if !r.node("classify_intent", func(n *nodeRun) {
			conf := t.frac(false)
			n.llm(fmt.Sprintf(`{"intent": "%s", "confidence": %s}`, strings.TrimSuffix(route, "_agent"), conf), finishStop)
			n.st()["route"] = route
			n.st()["confidence"] = conf
			n.appendTo("routing_history", map[string]any{"turn": num(turn), "route": route, "confidence": conf})
		}) {
			return
		}
		r.edge("classify_intent", true)
		if !r.node(route, func(n *nodeRun) {
			switch route {
			case "billing_agent":
				res := t.sqlRows()
				n.tool("get_invoices", map[string]any{"customer": st["ticket"].(map[string]any)["id"], "limit": num(50)}, res, n.ms(30, 600))
				n.st()["account"] = map[string]any{"invoices": res["rows"], "balance_cents": num(t.between(0, 500000))}
			case "tech_support_agent":
				arts := t.kbArticles(t.between(1, 4))
				n.tool("search_kb", map[string]any{"query": t.sentence(), "limit": num(4)}, map[string]any{"articles": arts}, n.ms(50, 900))
				n.st()["kb_articles"] = arts
				if t.chance(0.5) {
					n.tool("get_service_status", map[string]any{"region": t.pick([]string{"us-east-1", "eu-west-1", "ap-south-1"})},
						map[string]any{"status": t.pick([]string{"operational", "degraded"}), "incidents": num(t.between(0, 2))}, n.ms(20, 200))
				}
			case "sales_agent":
				n.st()["quote"] = map[string]any{"plan": t.pick([]string{"pro", "team", "enterprise"}), "seats": num(t.between(1, 500)),
					"price_cents": num(t.between(1000, 9000000)), "valid_until": fmt.Sprintf("2026-%02d-%02d", t.between(1, 12), t.between(1, 28))}
			}
			text := n.llm(t.prose(t.between(200, 1400)), finishStop)
			n.appendTo("messages", chatMsg("assistant", text))
		}) {
			return
		}
		r.edge(route, false)
		if !r.node("compose_reply", func(n *nodeRun) {
			n.work(1, 20)
			msgs := n.list("messages")
			last := msgs[len(msgs)-1].(map[string]any)["content"].(string)
			n.st()["reply_draft"] = "Hi,\n\n" + last + "\n\nBest regards,\nAcme Support"
		}) {
			return
		}
		r.edge("compose_reply", false)
		again := turn < turns || r.needMore()
		if !r.node("quality_check", func(n *nodeRun) {
			n.work(10, 200)
			n.st()["qa"] = map[string]any{"score": t.frac(false), "tone": t.pick([]string{"friendly", "neutral", "formal"}), "pii_detected": false}
			if again {
				n.appendTo("messages", chatMsg("user", t.question()))
				n.st()["turn"] = num(turn + 1)
			}
		}) {
			return
		}
		r.edge("quality_check", true)
		if !again {
			break
		}
	}
	r.graphEnd()
}

// --- large ----------------------------------------------------------------

var (
	searchBranches = []string{"web_search", "arxiv_search", "news_search", "internal_docs_search"}
	draftBranches  = []string{"draft_intro", "draft_body", "draft_conclusion"}
)

func largeGraph() *graphDef {
	g := &graphDef{
		name: "research_report", entry: "intake", stateType: "ResearchState",
		desc: "Multi-source research workflow that writes, critiques and publishes a cited report",
		nodes: []gnode{
			{"intake", "Parses the request", "transform", []string{"messages"}, []string{"topic"}},
			{"input_guardrails", "Screens the request against policy", "validator", []string{"topic"}, []string{"guardrails"}},
			{"planner", "Plans the research", "llm", []string{"topic"}, []string{"plan"}},
			{"query_expansion", "Expands the plan into search queries", "llm", []string{"plan"}, []string{"queries"}},
			{"web_search", "Web search", "tool", []string{"queries"}, []string{"search_results"}},
			{"arxiv_search", "Paper search", "tool", []string{"queries"}, []string{"search_results"}},
			{"news_search", "News search", "tool", []string{"queries"}, []string{"search_results"}},
			{"internal_docs_search", "Internal wiki search", "tool", []string{"queries"}, []string{"search_results"}},
			{"merge_results", "Merges all search results", "aggregator", []string{"search_results"}, []string{"sources"}},
			{"dedupe_sources", "Removes duplicate sources", "transform", []string{"sources"}, []string{"sources"}},
			{"rank_sources", "Ranks sources by relevance and authority", "transform", []string{"sources"}, []string{"sources"}},
			{"fetch_pages", "Fetches the top sources", "tool", []string{"sources"}, []string{"pages"}},
			{"extract_facts", "Extracts atomic facts", "llm", []string{"pages"}, []string{"facts"}},
			{"fact_check", "Cross-checks facts between sources", "validator", []string{"facts"}, []string{"facts"}},
			{"outline", "Writes the outline", "llm", []string{"facts"}, []string{"outline"}},
			{"draft_intro", "Drafts the introduction", "llm", []string{"outline"}, []string{"sections"}},
			{"draft_body", "Drafts the body", "llm", []string{"outline", "facts"}, []string{"sections"}},
			{"draft_conclusion", "Drafts the conclusion", "llm", []string{"outline"}, []string{"sections"}},
			{"assemble_report", "Assembles the sections", "aggregator", []string{"sections"}, []string{"report"}},
			{"cite_sources", "Adds citations", "transform", []string{"report", "sources"}, []string{"citations"}},
			{"critic", "Reviews the report", "llm", []string{"report"}, []string{"critique"}},
			{"revise", "Revises the report", "llm", []string{"report", "critique"}, []string{"report"}},
			{"style_editor", "Edits for style", "llm", []string{"report"}, []string{"report"}},
			{"output_guardrails", "Final policy screen", "validator", []string{"report"}, []string{"guardrails"}},
			{"format_output", "Renders Markdown", "transform", []string{"report"}, []string{"final_report"}},
			{"publish", "Publishes to the wiki", "tool", []string{"final_report"}, []string{"published"}},
		},
	}
	g.direct("intake", "input_guardrails")
	g.direct("input_guardrails", "planner")
	g.direct("planner", "query_expansion")
	g.par("query_expansion", searchBranches...)
	for _, b := range searchBranches {
		g.direct(b, "merge_results")
	}
	g.direct("merge_results", "dedupe_sources")
	g.direct("dedupe_sources", "rank_sources")
	g.direct("rank_sources", "fetch_pages")
	g.direct("fetch_pages", "extract_facts")
	g.direct("extract_facts", "fact_check")
	g.direct("fact_check", "outline")
	g.par("outline", draftBranches...)
	for _, b := range draftBranches {
		g.direct(b, "assemble_report")
	}
	g.direct("assemble_report", "cite_sources")
	g.direct("cite_sources", "critic")
	g.cond("critic", "needs_revision", "revise", "style_editor")
	g.direct("revise", "critic")
	g.direct("style_editor", "output_guardrails")
	g.direct("output_guardrails", "format_output")
	g.direct("format_output", "publish")
	g.direct("publish", endNode)
	return g
}

func (r *run) runLarge() {
	t := r.t
	st := r.baseState("You are a meticulous research analyst. Every claim needs a source.", t.question())
	st["search_results"] = map[string]any{}
	st["sections"] = map[string]any{}
	st["critique"] = []any{}
	st["revision"] = num(0)
	r.graphStart(largeGraph(), st)
	ok := r.step("intake", func(n *nodeRun) {
		n.work(2, 30)
		n.st()["topic"] = t.title()
	}) && r.step("input_guardrails", func(n *nodeRun) {
		n.work(20, 200)
		n.st()["guardrails"] = map[string]any{"input": "pass", "categories": []any{}}
	}) && r.step("planner", func(n *nodeRun) {
		var plan []any
		for i := t.between(3, 6); i > 0; i-- {
			plan = append(plan, t.sentence())
		}
		n.llm(strings.Join(strs2(plan), "\n"), finishStop)
		n.st()["plan"] = plan
	}) && r.node("query_expansion", func(n *nodeRun) {
		var qs []any
		for i := t.between(3, 6); i > 0; i-- {
			qs = append(qs, t.question())
		}
		n.llm(strings.Join(strs2(qs), "\n"), finishStop)
		n.st()["queries"] = qs
	})
	if !ok {
		return
	}
	r.edge("query_expansion", false)
	r.parallel(searchBranches, func(n *nodeRun) {
		res := t.searchResults(t.between(2, 6))
		n.tool(n.name, map[string]any{"queries": n.st()["queries"], "limit": num(6)}, map[string]any{"results": res}, n.ms(100, 1800))
		n.st()["search_results"].(map[string]any)[strings.TrimSuffix(n.name, "_search")] = res
	})
	ok = r.step("merge_results", func(n *nodeRun) {
		var sources []any
		for _, b := range searchBranches {
			res, _ := n.st()["search_results"].(map[string]any)[strings.TrimSuffix(b, "_search")].([]any)
			for _, x := range res {
				xm := x.(map[string]any)
				sources = append(sources, map[string]any{"url": xm["url"], "title": xm["title"], "origin": b, "score": xm["score"]})
			}
		}
		n.st()["sources"] = sources
		n.work(1, 10)
	}) && r.step("dedupe_sources", func(n *nodeRun) {
		src := n.list("sources")
		if len(src) > 4 {
			n.st()["sources"] = src[:len(src)-t.between(1, 3)]
		}
		n.work(1, 10)
	}) && r.step("rank_sources", func(n *nodeRun) {
		for i, s := range n.list("sources") {
			s.(map[string]any)["rank"] = num(i + 1)
		}
		n.work(5, 80)
	}) && r.step("fetch_pages", func(n *nodeRun) {
		src := n.list("sources")
		var pages []any
		for i := 0; i < min(t.between(2, 5), len(src)); i++ {
			u, _ := src[i].(map[string]any)["url"].(string)
			p := t.page(u, t.between(1500, 6000))
			n.tool("fetch_url", map[string]any{"url": u}, p, n.ms(80, 2500))
			n.progress(fmt.Sprintf("fetched %d pages", i+1), float64(i+1)/5)
			pages = append(pages, p)
		}
		n.st()["pages"] = pages
	}) && r.step("extract_facts", func(n *nodeRun) {
		var facts []any
		for i := t.between(6, 16); i > 0; i-- {
			facts = append(facts, map[string]any{"claim": t.sentence(), "source": t.url(), "confidence": t.frac(false)})
		}
		n.llm(t.prose(t.between(300, 900)), finishStop)
		n.st()["facts"] = facts
	}) && r.step("fact_check", func(n *nodeRun) {
		for _, f := range n.list("facts") {
			f.(map[string]any)["verified"] = t.chance(0.85)
		}
		n.work(50, 900)
	}) && r.node("outline", func(n *nodeRun) {
		var ol []any
		for i := t.between(4, 8); i > 0; i-- {
			ol = append(ol, t.title())
		}
		n.llm(strings.Join(strs2(ol), "\n"), finishStop)
		n.st()["outline"] = ol
	})
	if !ok {
		return
	}
	r.edge("outline", false)
	r.parallel(draftBranches, func(n *nodeRun) {
		text := n.llm(t.prose(t.between(300, 1500)), finishStop)
		n.st()["sections"].(map[string]any)[strings.TrimPrefix(n.name, "draft_")] = text
	})
	ok = r.step("assemble_report", func(n *nodeRun) {
		sec := n.st()["sections"].(map[string]any)
		intro, _ := sec["intro"].(string)
		body, _ := sec["body"].(string)
		concl, _ := sec["conclusion"].(string)
		n.st()["report"] = "# " + fmt.Sprint(n.st()["topic"]) + "\n\n" + intro + "\n\n" + body + "\n\n" + concl
		n.work(1, 10)
	}) && r.step("cite_sources", func(n *nodeRun) {
		var cites []any
		for i, s := range n.list("sources") {
			if i >= 8 {
				break
			}
			cites = append(cites, map[string]any{"n": num(i + 1), "url": s.(map[string]any)["url"]})
		}
		n.st()["citations"] = cites
		n.work(1, 20)
	})
	if !ok {
		return
	}
	revisions := t.between(0, 2)
	for rev := 0; ; rev++ {
		again := rev < revisions || r.needMore()
		if !r.node("critic", func(n *nodeRun) {
			c := n.llm(t.prose(t.between(150, 600)), finishStop)
			n.appendTo("critique", map[string]any{"revision": num(rev), "text": c, "approved": !again})
		}) {
			return
		}
		r.edge("critic", true)
		if !again {
			break
		}
		if !r.step("revise", func(n *nodeRun) {
			text := n.llm(t.prose(t.between(400, 1600)), finishStop)
			rep, _ := n.st()["report"].(string)
			if len(rep) > 12000 {
				rep = rep[:6000]
			}
			n.st()["report"] = rep + "\n\n" + text
			n.st()["revision"] = num(rev + 1)
		}) {
			return
		}
	}
	ok = r.step("style_editor", func(n *nodeRun) {
		n.llm(t.prose(t.between(200, 700)), finishStop)
		rep, _ := n.st()["report"].(string)
		n.st()["report"] = rep + "\n"
	}) && r.step("output_guardrails", func(n *nodeRun) {
		n.work(20, 300)
		n.st()["guardrails"].(map[string]any)["output"] = "pass"
	}) && r.step("format_output", func(n *nodeRun) {
		rep, _ := n.st()["report"].(string)
		fr := map[string]any{"format": "markdown", "length": num(len(rep)), "sha": t.hexID(8)}
		if t.chance(0.5) {
			fr["charts"] = []any{t.pngAttachment(t.between(2000, 20000))}
		}
		n.st()["final_report"] = fr
		n.work(2, 40)
	}) && r.step("publish", func(n *nodeRun) {
		u := t.url()
		n.tool("wiki_publish", map[string]any{"space": "RESEARCH", "title": n.st()["topic"]}, map[string]any{"url": u, "revision": num(1)}, n.ms(100, 900))
		n.st()["published"] = map[string]any{"url": u}
	})
	if ok {
		r.graphEnd()
	}
}

func strs2(l []any) []string {
	out := make([]string, len(l))
	for i, v := range l {
		out[i], _ = v.(string)
	}
	return out
}
