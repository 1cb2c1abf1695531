// One cell on screen: editor, status (with elapsed time while running), reads/writes,
// live stdout, outputs and error. It knows nothing about the network: user intentions go to
// the controller through `actions`, and the controller pushes server state in.
import { h } from "./dom.js";
import { icon } from "./icons.js";
import { createEditor } from "./editor.js";
import { renderOutput, stripAnsi } from "./outputs.js";
import { missingModule, distributionFor } from "./packages.js";
import { renderMarkdownInto } from "./markdown.js";

const TYPE_NAMES = { python: "Python", sql: "SQL", markdown: "Markdown" };
const BADGES = { python: "PY", sql: "SQL", markdown: "MD" };
/** Drag-and-drop payload type: a cell id being moved. */
const DRAG_TYPE = "application/x-notebook-cell";


export class CellView {
  /**
   * actions: { run(id, {advance}), add(id, type, where), remove(id), edited(id, text),
   *            saveNow(id), focusSibling(id, delta), renameResult(id, name), install(id, name), help(),
   *            move(id, delta), moveTo(id, targetId, "before"|"after"), focusCell(index) }
   */
  constructor(cell, actions) {
    this.id = cell.id;
    this.type = cell.type;
    this.actions = actions;
    this.runStartedAt = null;
    this.tick = null;
    this.build();
    this.update(cell, { code: true });
  }

  build() {
    const a = this.actions;
    const id = this.id;
    const typeName = TYPE_NAMES[this.type] || "Python";
    const markdown = this.type === "markdown";
    const btn = (label, text, onclick, extra = "") =>
      h(`button.icon-btn.cell-btn${extra}`, { type: "button", "aria-label": label, title: label, onclick }, text);

    this.statusEl = h("span.status", { role: "status", "aria-live": "polite" });
    this.namesEl = h("span.names");
    this.saveEl = h("span.save-state", { "aria-live": "polite" });
    // SQL cells bind their result to a Python name; committed on Enter or blur.
    this.resultNameEl = null;
    if (this.type === "sql") {
      const commit = () => {
        const name = this.resultNameEl.value.trim();
        if (name && name !== (this.cell?.result_name || "")) a.renameResult(id, name);
        else this.resultNameEl.value = this.cell?.result_name || "";
      };
      this.resultNameEl = h("input.result-name", {
        type: "text",
        size: 8,
        spellcheck: false,
        "aria-label": "Python name of the query result",
        title: "The query's result is bound to this Python name",
        onchange: commit,
        onkeydown: (ev) => {
          if (ev.key === "Enter") {
            ev.preventDefault();
            ev.stopPropagation();
            this.resultNameEl.blur(); // fires change, which commits
          }
        },
      });
    }
    this.aboveBtn = btn(`Add a Python cell above`, "+Py↑", () => a.add(id, "python", "above"));
    this.aboveSqlBtn = btn(`Add an SQL cell above`, "+SQL↑", () => a.add(id, "sql", "above"));
    this.toolbar = h(
      "div.cell-toolbar",
      { role: "toolbar", "aria-label": `${typeName} cell actions` },
      !markdown && btn("Run cell (Ctrl+Enter)", icon("play"), () => a.run(id, { advance: false }), ".run"),
      this.aboveBtn,
      btn(`Add a Python cell below`, "+Py↓", () => a.add(id, "python", "below")),
      this.aboveSqlBtn,
      btn(`Add an SQL cell below`, "+SQL↓", () => a.add(id, "sql", "below")),
      btn(`Add a markdown cell below`, "+MD↓", () => a.add(id, "markdown", "below")),
      btn("Delete cell", icon("trash"), () => a.remove(id), ".danger"),
    );
    this.editorHost = h("div.editor");
    // Parse errors found by the server while typing (before any run).
    this.syntaxEl = h("div.syntax-note", { hidden: true, role: "status" });
    // A markdown cell shows its rendered text until edited (double-click or Enter).
    this.mdView = markdown
      ? h("div.md-view", {
          title: "Double-click to edit",
          ondblclick: () => this.editMarkdown(),
        })
      : null;
    this.dragHandle = h(
      "span.drag-handle",
      { draggable: "true", title: "Drag to move the cell (or Ctrl+Shift+↑/↓)", "aria-hidden": "true" },
      "⠿",
    );
    this.stdoutEl = h("pre.stdout", { hidden: true, "aria-label": "Printed output" });
    this.outputsEl = h("div.outputs");
    this.errorEl = h("pre.cell-error", { hidden: true, role: "alert" });
    this.installEl = h("div.install-offer", { hidden: true });
    this.blockedEl = h("div.blocked-note", { hidden: true }, "Not run: a cell it depends on failed. Fix that cell and run it again.");

    this.el = h(
      `section.cell.${this.type}`,
      { tabindex: -1, "data-cell-id": id, "aria-label": `${typeName} cell` },
      h(
        "div.cell-head",
        {},
        this.dragHandle,
        h(`span.badge.${this.type}`, {}, BADGES[this.type] || "PY"),
        this.statusEl,
        this.resultNameEl && h("label.result-name-label", {}, "→ ", this.resultNameEl),
        this.namesEl,
        this.saveEl,
        this.toolbar,
      ),
      this.mdView,
      this.editorHost,
      this.syntaxEl,
      h("div.cell-result", {}, this.blockedEl, this.stdoutEl, this.outputsEl, this.errorEl, this.installEl),
    );

    this.editor = createEditor(this.editorHost, {
      doc: "",
      language: this.type,
      label: markdown ? "Markdown text" : `${typeName} code`,
      placeholder: markdown ? "Markdown: *emphasis*, lists, $math$ …" : undefined,
      onChange: (text) => a.edited(id, text),
      keys: [
        { key: "Shift-Enter", run: () => (markdown ? this.renderMarkdownNow(true) : a.run(id, { advance: true }), true) },
        { key: "Mod-Enter", run: () => (markdown ? this.renderMarkdownNow(false) : a.run(id, { advance: false }), true) },
        { key: "Mod-s", run: () => (a.saveNow(id), true), preventDefault: true },
        {
          key: "Escape",
          run: () => {
            this.el.focus();
            return true;
          },
        },
      ],
    });

    // Cell-level shortcuts work both in the editor and with the cell itself focused
    // ("command mode" after Escape). Matched on event.code so Option/Alt on a Mac, which
    // types special characters, still works.
    this.el.addEventListener("keydown", (ev) => this.onKey(ev), true);
    this.setUpDragging();
    if (markdown) {
      this.editing = false;
      this.editorHost.hidden = true;
      // Leaving the editor renders the text again.
      this.editorHost.addEventListener("focusout", (ev) => {
        if (!this.editorHost.contains(ev.relatedTarget)) this.renderMarkdownNow(false, false);
      });
    }
  }

  /** Drag by the handle, drop on another cell's upper or lower half. */
  setUpDragging() {
    this.dragHandle.addEventListener("dragstart", (ev) => {
      ev.dataTransfer.setData(DRAG_TYPE, this.id);
      ev.dataTransfer.effectAllowed = "move";
      ev.dataTransfer.setDragImage(this.el, 20, 20);
      this.el.classList.add("dragging");
    });
    this.dragHandle.addEventListener("dragend", () => this.el.classList.remove("dragging"));
    const where = (ev) => {
      const box = this.el.getBoundingClientRect();
      return ev.clientY < box.top + box.height / 2 ? "before" : "after";
    };
    this.el.addEventListener("dragover", (ev) => {
      if (!ev.dataTransfer.types.includes(DRAG_TYPE)) return;
      ev.preventDefault();
      ev.dataTransfer.dropEffect = "move";
      this.el.dataset.drop = where(ev);
    });
    this.el.addEventListener("dragleave", (ev) => {
      if (!this.el.contains(ev.relatedTarget)) delete this.el.dataset.drop;
    });
    this.el.addEventListener("drop", (ev) => {
      const moved = ev.dataTransfer.getData(DRAG_TYPE);
      delete this.el.dataset.drop;
      if (!moved) return;
      ev.preventDefault();
      if (moved !== this.id) this.actions.moveTo(moved, this.id, where(ev));
    });
  }

  /** Puts the caret in the cell; a markdown cell with text stays rendered (focused). */
  focusEditor() {
    if (this.type !== "markdown") this.editor.focus();
    else if (this.editor.getText().trim()) this.el.focus();
    else this.editMarkdown();
  }

  /** Markdown: shows the editor in place of the rendered text. */
  editMarkdown() {
    if (this.type !== "markdown") return;
    this.editing = true;
    this.mdView.hidden = true;
    this.editorHost.hidden = false;
    this.editor.focus(true);
  }

  /** Markdown: renders the editor's text and saves it; `advance` moves to the next cell. */
  renderMarkdownNow(advance, refocus = true) {
    if (this.type !== "markdown" || !this.editing) return;
    this.editing = false;
    this.actions.saveNow(this.id);
    this.showMarkdown(this.editor.getText());
    // Selects the next cell (never adds one: a text cell is often the last).
    if (advance) this.actions.focusSibling(this.id, +1, false);
    else if (refocus) this.el.focus();
  }

  showMarkdown(text) {
    this.editorHost.hidden = true;
    this.mdView.hidden = false;
    if (text.trim()) renderMarkdownInto(this.mdView, text);
    else this.mdView.replaceChildren(h("p.md-empty", {}, "Empty markdown cell: double-click or press Enter to write."));
  }

  onKey(ev) {
    const a = this.actions;
    const inEditor = ev.target !== this.el;
    const plainAlt = ev.altKey && !ev.ctrlKey && !ev.metaKey;
    const stop = () => {
      ev.preventDefault();
      ev.stopPropagation();
    };
    const moveKey = ev.ctrlKey && ev.shiftKey && !ev.altKey && (ev.key === "ArrowUp" || ev.key === "ArrowDown");
    if (moveKey) {
      stop();
      a.move(this.id, ev.key === "ArrowUp" ? -1 : +1);
    } else if (plainAlt && (ev.code === "KeyA" || ev.code === "KeyB")) {
      stop();
      a.add(this.id, ev.shiftKey ? "sql" : "python", ev.code === "KeyA" ? "above" : "below");
    } else if (plainAlt && ev.shiftKey && ev.code === "Backspace") {
      stop();
      a.remove(this.id);
    } else if (!inEditor) {
      // Command mode only: plain keys that would otherwise type into the editor.
      if (ev.key === "Enter" && !ev.shiftKey && !ev.ctrlKey && !ev.metaKey) {
        stop();
        if (this.type === "markdown") this.editMarkdown();
        else this.editor.focus();
      } else if (ev.key === "Enter" && (ev.shiftKey || ev.ctrlKey || ev.metaKey)) {
        stop();
        a.run(this.id, { advance: ev.shiftKey });
      } else if (ev.key === "ArrowDown" || ev.key === "j") {
        stop();
        a.focusSibling(this.id, +1, false);
      } else if (ev.key === "ArrowUp" || ev.key === "k") {
        stop();
        a.focusSibling(this.id, -1, false);
      }
    }
  }

  /** Applies server state. `code: true` also replaces the editor text (not while the user
   *  has unsaved typing in it, which would be lost). */
  update(cell, { code = false } = {}) {
    this.cell = cell;
    if (code) this.editor.setText(cell.code || "");
    if (this.type === "markdown" && code && !this.editing) this.showMarkdown(cell.code || "");
    this.setSyntaxError(cell.syntax_error);
    if (this.resultNameEl && document.activeElement !== this.resultNameEl) {
      this.resultNameEl.value = cell.result_name || "";
    }
    this.setStatus(cell.status);
    this.setNames(cell.reads || [], cell.writes || []);
    this.stdoutEl.textContent = "";
    this.appendStdout(cell.stdout || "");
    // Re-render outputs only when they changed: charts and iframes are costly and flicker.
    const outputsKey = JSON.stringify(cell.outputs || []);
    if (outputsKey !== this.outputsKey) {
      this.outputsKey = outputsKey;
      this.outputsEl.replaceChildren(...(cell.outputs || []).map(wrapOutput));
    }
    this.setError(cell.error);
  }

  setStatus(status, reason) {
    const previous = this.el.dataset.status;
    this.el.dataset.status = status || "idle";
    // Why a cell waits (e.g. the Python environment is still being set up).
    this.statusReason = status === "queued" ? reason || "" : "";
    if (status === "running" && previous !== "running") {
      this.runStartedAt = performance.now();
      clearInterval(this.tick);
      this.tick = setInterval(() => this.renderStatus(), 100);
    } else if (status !== "running" && previous === "running") {
      clearInterval(this.tick);
      this.tick = null;
      this.lastDuration = this.runStartedAt === null ? null : performance.now() - this.runStartedAt;
      this.runStartedAt = null;
    } else if (status !== "running" && status !== previous) {
      this.lastDuration = null;
    }
    this.blockedEl.hidden = status !== "blocked";
    this.renderStatus();
  }

  renderStatus() {
    const status = this.el.dataset.status;
    let text = status;
    if (status === "queued" && this.statusReason) {
      text += " · waiting for the Python environment";
    } else if (status === "running" && this.runStartedAt !== null) {
      text += ` ${formatSeconds(performance.now() - this.runStartedAt)}`;
    } else if ((status === "success" || status === "error") && this.lastDuration >= 100) {
      text += ` · ${formatSeconds(this.lastDuration)}`;
    }
    this.statusEl.textContent = text;
    this.statusEl.className = `status ${status}`;
    this.statusEl.title = this.statusReason ? `Status: ${status} (${this.statusReason})` : `Status: ${status}`;
  }

  setNames(reads, writes) {
    const chips = (label, names, cls) =>
      names.length ? h(`span.chips.${cls}`, { title: `${label}: ${names.join(", ")}` }, `${label} `, names.map((n) => h("code", {}, n))) : null;
    this.namesEl.replaceChildren(...[chips("defines", writes, "writes"), chips("reads", reads, "reads")].filter(Boolean));
  }

  appendStdout(data) {
    if (!data) return;
    this.stdoutEl.textContent += stripAnsi(data);
    this.stdoutEl.hidden = !this.stdoutEl.textContent;
  }

  addOutput(output) {
    this.outputsKey = null; // the screen is now ahead of the last full update
    this.outputsEl.append(wrapOutput(output));
  }

  /** The error text; "cell N" in it (graph errors) links to that cell. */
  setError(error) {
    const text = stripAnsi(error || "");
    const parts = [];
    let last = 0;
    for (const m of text.matchAll(/\bcell (\d+)\b/g)) {
      const index = Number(m[1]) - 1;
      parts.push(text.slice(last, m.index));
      parts.push(
        h("a.cell-link", { href: "#", title: `Go to cell ${m[1]}`, onclick: (ev) => (ev.preventDefault(), this.actions.focusCell(index)) }, m[0]),
      );
      last = m.index + m[0].length;
    }
    parts.push(text.slice(last));
    this.errorEl.replaceChildren(...parts);
    this.errorEl.hidden = !error;
    this.offerInstall(missingModule(error));
  }

  /** After a ModuleNotFoundError: a button installing the module's distribution for this
   *  notebook and re-running the cell. */
  offerInstall(module) {
    this.installEl.hidden = !module;
    if (!module) return this.installEl.replaceChildren();
    const dist = distributionFor(module);
    const button = h("button.btn.small.install-btn", { type: "button" }, `Install ${dist}`);
    button.onclick = () => {
      button.disabled = true;
      button.textContent = `Installing ${dist}…`;
      this.actions.install(this.id, dist);
    };
    this.installEl.replaceChildren(button);
  }

  /** Marks the server's parse error in the editor and says where it is. */
  setSyntaxError(syntaxError) {
    const key = syntaxError ? `${syntaxError.line}:${syntaxError.col}:${syntaxError.message}` : "";
    if (key === this.syntaxKey) return;
    this.syntaxKey = key;
    this.editor.markError(syntaxError || null);
    this.syntaxEl.hidden = !syntaxError;
    this.syntaxEl.textContent = syntaxError ? `⚠ ${syntaxError.message}` : "";
  }

  /** Brings the cell into view and focuses it, with a short highlight. */
  reveal() {
    this.el.scrollIntoView({ block: "center", behavior: "smooth" });
    this.el.focus({ preventScroll: true });
    this.el.classList.add("flash");
    setTimeout(() => this.el.classList.remove("flash"), 1500);
  }

  /** A run is starting: old results go (the server resets them too). */
  clearResults() {
    this.stdoutEl.textContent = "";
    this.stdoutEl.hidden = true;
    this.outputsEl.replaceChildren();
    this.outputsKey = "[]";
    this.setError(null);
  }

  /** "dirty" (typing), "saving", "saved" or "error": shown so nobody closes a tab on
   *  unsaved work, and so tests can wait for the server to have the code. */
  setSaveState(state) {
    this.el.dataset.save = state;
    this.saveEl.textContent = { dirty: "unsaved", saving: "saving…", error: "not saved" }[state] || "";
    this.saveEl.className = `save-state ${state}`;
  }

  destroy() {
    clearInterval(this.tick);
    this.editor.destroy();
    this.el.remove();
  }
}

function wrapOutput(output) {
  return h("div.output", { "data-mime": output?.mime_type || "" }, renderOutput(output));
}

function formatSeconds(ms) {
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  return `${Math.floor(s / 60)}m${String(Math.floor(s % 60)).padStart(2, "0")}s`;
}
