// One cell on screen: editor, status (with elapsed time while running), reads/writes,
// live stdout, outputs and error. It knows nothing about the network: user intentions go to
// the controller through `actions`, and the controller pushes server state in.
import { h } from "./dom.js";
import { icon } from "./icons.js";
import { createEditor } from "./editor.js";
import { renderOutput, stripAnsi } from "./outputs.js";
import { missingModule, distributionFor } from "./packages.js";


export class CellView {
  /**
   * actions: { run(id, {advance}), add(id, type, where), remove(id), edited(id, text),
   *            saveNow(id), focusSibling(id, delta), renameResult(id, name), install(id, name), help() }
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
    const typeName = this.type === "sql" ? "SQL" : "Python";
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
      btn("Run cell (Ctrl+Enter)", icon("play"), () => a.run(id, { advance: false }), ".run"),
      this.aboveBtn,
      btn(`Add a Python cell below`, "+Py↓", () => a.add(id, "python", "below")),
      this.aboveSqlBtn,
      btn(`Add an SQL cell below`, "+SQL↓", () => a.add(id, "sql", "below")),
      btn("Delete cell", icon("trash"), () => a.remove(id), ".danger"),
    );
    this.editorHost = h("div.editor");
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
        h(`span.badge.${this.type}`, {}, this.type === "sql" ? "SQL" : "PY"),
        this.statusEl,
        this.resultNameEl && h("label.result-name-label", {}, "→ ", this.resultNameEl),
        this.namesEl,
        this.saveEl,
        this.toolbar,
      ),
      this.editorHost,
      h("div.cell-result", {}, this.blockedEl, this.stdoutEl, this.outputsEl, this.errorEl, this.installEl),
    );

    this.editor = createEditor(this.editorHost, {
      doc: "",
      language: this.type,
      label: `${typeName} code`,
      onChange: (text) => a.edited(id, text),
      keys: [
        { key: "Shift-Enter", run: () => (a.run(id, { advance: true }), true) },
        { key: "Mod-Enter", run: () => (a.run(id, { advance: false }), true) },
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
  }

  onKey(ev) {
    const a = this.actions;
    const inEditor = ev.target !== this.el;
    const plainAlt = ev.altKey && !ev.ctrlKey && !ev.metaKey;
    const stop = () => {
      ev.preventDefault();
      ev.stopPropagation();
    };
    if (plainAlt && (ev.code === "KeyA" || ev.code === "KeyB")) {
      stop();
      a.add(this.id, ev.shiftKey ? "sql" : "python", ev.code === "KeyA" ? "above" : "below");
    } else if (plainAlt && ev.shiftKey && ev.code === "Backspace") {
      stop();
      a.remove(this.id);
    } else if (!inEditor) {
      // Command mode only: plain keys that would otherwise type into the editor.
      if (ev.key === "Enter" && !ev.shiftKey && !ev.ctrlKey && !ev.metaKey) {
        stop();
        this.editor.focus();
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

  setError(error) {
    this.errorEl.textContent = stripAnsi(error || "");
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
