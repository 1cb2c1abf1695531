// The assistant panel: sends the conversation to POST /api/chat/{id} and renders the
// Server-Sent Events stream as it arrives (fetch + reader, since EventSource cannot POST).
// Edits the assistant makes to cells arrive through the notebook's WebSocket like anyone's.
import { auth } from "./auth.js";
import { $, h } from "./dom.js";

export class ChatPanel {
  constructor() {
    this.panel = $("#chat");
    this.log = $("#chat-log");
    this.input = $("#chat-input");
    this.messages = [];
    this.notebookId = null;
    this.abort = null;
    $("#chat-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.send();
    });
    this.input.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        this.send();
      }
    });
    $("#chat-stop").addEventListener("click", () => this.abort?.abort());
    $("#chat-clear").addEventListener("click", () => this.reset());
  }

  /** A different notebook: a new conversation (the assistant's context is per notebook). */
  setNotebook(id) {
    if (id === this.notebookId) return;
    this.abort?.abort();
    this.notebookId = id;
    this.reset();
  }

  reset() {
    this.abort?.abort();
    this.messages = [];
    this.log.replaceChildren(
      h("p.chat-hint.muted", {}, "Ask the assistant to explain, write, fix or run cells. Everyone with this notebook open sees its edits live."),
    );
  }

  async send() {
    const text = this.input.value.trim();
    if (!text || this.abort || !this.notebookId) return;
    this.input.value = "";
    this.log.querySelector(".chat-hint")?.remove();
    this.messages.push({ role: "user", content: text });
    this.log.append(h("div.msg.user", {}, h("div.msg-body", {}, text)));
    const reply = new ReplyView(this.log);
    this.abort = new AbortController();
    $("#chat-stop").hidden = false;
    $("#chat-send").disabled = true;
    try {
      const res = await fetch(`/api/chat/${encodeURIComponent(this.notebookId)}`, {
        method: "POST",
        headers: {
          "Content-Type": "application/json",
          Accept: "text/event-stream",
          Authorization: `Bearer ${await auth.token()}`,
        },
        body: JSON.stringify({ messages: this.messages }),
        signal: this.abort.signal,
      });
      if (!res.ok) {
        const body = await res.json().catch(() => ({}));
        throw new Error(body.detail || `HTTP ${res.status}`);
      }
      for await (const event of readEvents(res.body)) reply.handle(event);
    } catch (err) {
      if (err.name === "AbortError") reply.note("Stopped.");
      else reply.error(err.message);
    } finally {
      reply.finish();
      const answer = reply.text();
      // The API wants alternating roles; an empty answer still takes its turn.
      this.messages.push({ role: "assistant", content: answer || "(no answer)" });
      this.abort = null;
      $("#chat-stop").hidden = true;
      $("#chat-send").disabled = false;
      this.input.focus();
    }
  }
}

/** Yields each `data:` payload of an SSE stream, parsed as JSON. */
async function* readEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.search(/\r?\n\r?\n/)) !== -1) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
      const data = block
        .split(/\r?\n/)
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).replace(/^ /, ""))
        .join("\n");
      if (!data) continue;
      try {
        yield JSON.parse(data);
      } catch {
        /* not ours; skip */
      }
    }
  }
}

/** One assistant reply: text segments interleaved with tool calls, in arrival order. */
class ReplyView {
  constructor(log) {
    this.log = log;
    this.body = h("div.msg-body");
    this.el = h("div.msg.assistant", { "aria-busy": "true" }, this.body);
    log.append(this.el);
    this.segment = null;
    this.tools = new Map();
    this.parts = [];
    this.typing = h("span.typing", { "aria-label": "The assistant is answering" }, "…");
    this.body.append(this.typing);
  }

  handle({ event, data = {} }) {
    switch (event) {
      case "text_start":
        this.segment = null;
        break;
      case "text_delta":
        if (!this.segment) {
          this.segment = h("div.msg-text");
          this.body.insertBefore(this.segment, this.typing);
        }
        this.segment.textContent += data.text || "";
        this.parts.push(data.text || "");
        break;
      case "content_block_stop":
        this.segment = null;
        break;
      case "tool_start":
        this.tool(data.tool_name, data.tool_id);
        break;
      case "tool_execute": {
        const tool = this.lastTool(data.tool_name);
        tool.input.textContent = pretty(data.tool_input);
        tool.status.textContent = "running…";
        break;
      }
      case "tool_result": {
        const tool = this.lastTool(data.tool_name);
        tool.result.textContent = pretty(data.result);
        tool.result.hidden = false;
        const failed = isFailure(data.result);
        tool.status.textContent = failed ? "failed" : "done";
        tool.el.classList.toggle("failed", failed);
        break;
      }
      case "turn_start":
        if (data.turn > 1) this.body.insertBefore(h("div.turn.muted", {}, `turn ${data.turn} of ${data.max_turns}`), this.typing);
        break;
      case "error":
        this.error(data.error || "The assistant failed.");
        break;
      case "done":
        this.finish();
        break;
      default:
        break;
    }
    this.log.scrollTop = this.log.scrollHeight;
  }

  tool(name, id) {
    const status = h("span.tool-status", {}, "preparing…");
    const input = h("pre.tool-input");
    const result = h("pre.tool-result", { hidden: true });
    const el = h(
      "details.tool",
      { open: true },
      h("summary", {}, h("code", {}, name || "tool"), " ", status),
      h("div.tool-label", {}, "input"),
      input,
      h("div.tool-label", {}, "result"),
      result,
    );
    this.body.insertBefore(el, this.typing);
    const tool = { el, status, input, result, name };
    this.tools.set(id || `${name}-${this.tools.size}`, tool);
    this.segment = null;
    return tool;
  }

  /** tool_execute/tool_result name the tool, not its id: use the latest call of that name. */
  lastTool(name) {
    const all = [...this.tools.values()].filter((t) => t.name === name);
    return all.at(-1) || this.tool(name);
  }

  note(text) {
    this.body.insertBefore(h("div.muted", {}, text), this.typing);
  }

  error(text) {
    this.body.insertBefore(h("div.chat-error", { role: "alert" }, text), this.typing);
  }

  finish() {
    this.typing.remove();
    this.el.removeAttribute("aria-busy");
    // Tool details collapse once the answer is complete, to keep the log readable.
    for (const tool of this.tools.values()) tool.el.open = false;
  }

  text() {
    return this.parts.join("");
  }
}

function pretty(value) {
  if (typeof value === "string") {
    try {
      return JSON.stringify(JSON.parse(value), null, 2);
    } catch {
      return value;
    }
  }
  return JSON.stringify(value, null, 2);
}

function isFailure(result) {
  const v = typeof result === "string" ? safeParse(result) : result;
  return Boolean(v && typeof v === "object" && (v.error || v.is_error || v.status === "error"));
}

function safeParse(s) {
  try {
    return JSON.parse(s);
  } catch {
    return null;
  }
}
