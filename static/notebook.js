// The open notebook: owns its cells on screen, applies live broadcasts in `seq` order,
// re-fetches when it may have missed some, and saves edits (debounced, serialized per cell,
// with expected_revision so a concurrent edit elsewhere is detected instead of overwritten).
//
// Conflict detection: the server refuses a save when the cell's code changed after
// `expected_revision`. So for each cell we remember `synced = {code, base}`: the server code
// our edits start from, and a notebook revision at which the server still had that code.
// Broadcasts carry no revision, so after a remote change `base` is unknown (null) until the
// next fetch fills it in. A save sends `base`; if someone else changed the cell meanwhile
// (their code never became our `synced.code`), the server answers 409.
import { api, ApiError } from "./api.js";
import { $, toast, debounce } from "./dom.js";
import { CellView } from "./cells.js";
import { LiveConnection } from "./ws.js";
import { PackagePanel, normalizeName } from "./packages.js";
import { CellMoves } from "./cell_moves.js";
import { Collab } from "./coedit.js";

const SAVE_DELAY_MS = 500;
const POLL_MS = 1000;

export class NotebookController {
  /** hooks: { onName(name), onConnState(state, detail), onDeleted(), onFatal(msg), onDb(masked) } */
  constructor(id, hooks) {
    this.id = id;
    this.hooks = hooks;
    this.views = new Map(); // cell id -> CellView
    this.order = []; // cell ids in notebook order
    this.revision = null;
    this.seq = null;
    this.loading = null;
    this.buffer = []; // broadcasts that arrived while a fetch was in flight
    this.saves = new Map(); // cell id -> { debounced, inflight, sentText }
    this.synced = new Map(); // cell id -> { code, base } (see the top of this file)
    this.focusWhenCreated = null;
    this.container = $("#cells");
    this.container.replaceChildren();
    this.refetchSoon = debounce(() => this.refresh(), 300);
    this.conn = null;
    this.packages = new PackagePanel($("#packages"));
    this.rerunAfterInstall = new Map(); // package name -> cell ids to run once it is installed
    this.moves = new CellMoves(this);
    this.collab = new Collab((msg) => this.conn?.send(msg));
  }

  async open() {
    await this.load();
    this.conn = new LiveConnection(this.id, {
      onEvent: (msg) => this.onBroadcast(msg),
      onState: (state, detail) => {
        this.hooks.onConnState(state, detail);
        if (state !== "live") {
          this.collab.suspend();
          this.startPollingIfBusy();
        }
      },
      // (Re)joined: broadcasts may have been missed while we were away.
      onReady: () => {
        this.refresh();
      },
      onFatal: (msg) => this.hooks.onFatal?.(msg),
    });
  }

  close() {
    this.closed = true;
    this.conn?.close();
    clearTimeout(this.pollTimer);
    for (const save of this.saves.values()) save.debounced.flush();
    for (const view of this.views.values()) view.destroy();
    this.views.clear();
  }

  // --- Loading and reconciling -------------------------------------------------------

  /** GET the notebook and make the screen match it. Concurrent calls share one fetch. */
  load() {
    if (this.loading) {
      this.loadAgain = true;
      return this.loading;
    }
    this.loading = (async () => {
      try {
        do {
          this.loadAgain = false;
          const nb = await api.getNotebook(this.id);
          if (this.closed) return;
          this.apply(nb);
        } while (this.loadAgain);
      } finally {
        this.loading = null;
      }
      // Broadcasts newer than the snapshot still apply, in order.
      const pending = this.buffer.sort((a, b) => a.seq - b.seq);
      this.buffer = [];
      for (const msg of pending) this.onBroadcast(msg);
    })();
    return this.loading;
  }

  /** A background re-fetch nobody awaits: a failure (the notebook was just deleted, the
   * server is restarting) is left to the next broadcast, poll or reconnect instead of
   * surfacing as an unhandled rejection. */
  refresh() {
    this.load().catch((err) => {
      if (!this.closed) console.warn("re-fetch failed:", err.message);
    });
  }

  apply(nb) {
    this.revision = Math.max(this.revision ?? 0, nb.revision ?? 0);
    if (typeof nb.seq === "number") this.seq = nb.seq;
    this.hooks.onName(nb.name);
    this.hooks.onDb(nb.db_conn_string);
    this.hooks.onRole?.(nb.role);
    this.packages.setAll(nb.packages);
    this.hooks.onLazy?.(nb.lazy);
    const seen = new Set();
    this.order = nb.cells.map((c) => c.id);
    for (const cell of nb.cells) {
      seen.add(cell.id);
      const view = this.views.get(cell.id);
      const local = this.hasLocalEdits(cell.id);
      const synced = this.synced.get(cell.id);
      if (!local || synced?.code === cell.code) {
        // Either the editor shows the server's code, or the user's edits start from it.
        this.synced.set(cell.id, { code: cell.code, base: nb.revision });
      }
      if (view) view.update(cell, { code: !local && !this.collab.bound(cell.id) });
      else this.views.set(cell.id, this.makeView(cell));
    }
    for (const [id, view] of this.views) {
      if (!seen.has(id)) {
        this.collab.detach(id);
        view.destroy();
        this.views.delete(id);
      }
    }
    this.layout();
    if (this.focusWhenCreated && this.views.has(this.focusWhenCreated)) {
      this.views.get(this.focusWhenCreated).focusEditor();
      this.focusWhenCreated = null;
    }
    this.startPollingIfBusy();
  }

  makeView(cell) {
    const view = this.makeCellView(cell);
    this.collab.attach(cell.id, view.editor);
    return view;
  }

  makeCellView(cell) {
    return new CellView(cell, {
      run: (id, opts) => this.run(id, opts),
      add: (id, type, where) => this.addCell(type, id, where),
      remove: (id) => this.deleteCell(id),
      edited: (id, text) => this.edited(id, text),
      saveNow: (id) => this.saves.get(id)?.debounced.flush(),
      renameResult: (id, name) => this.renameResult(id, name),
      focusSibling: (id, delta, edit = false) => this.focusSibling(id, delta, edit),
      install: (id, name) => this.installPackage(id, name),
      move: (id, delta) => this.moves.step(id, delta),
      moveTo: (id, targetId, where) => this.moves.moveTo(id, targetId, where),
      focusCell: (index) => this.views.get(this.order[index])?.reveal(),
    });
  }

  /** Puts the cell elements in notebook order (moving only those out of place, so the
   *  focused editor keeps its focus). */
  layout() {
    let prev = null;
    this.order.forEach((id) => {
      const el = this.views.get(id).el;
      const want = prev ? prev.nextSibling : this.container.firstChild;
      if (want !== el) this.container.insertBefore(el, want);
      prev = el;
    });
    $("#cells").dataset.count = String(this.order.length);
  }

  // --- Live broadcasts ---------------------------------------------------------------

  onBroadcast(msg) {
    // Cursors are ephemeral (no seq).
    if (msg.type === "cursor") {
      this.collab.onCursor(msg);
      return;
    }
    // Yjs updates commute and repeat harmlessly: applied at once, whatever the seq order.
    if (msg.type === "yjs") {
      this.collab.onUpdate(msg);
      if (typeof msg.seq !== "number") return;
    }
    if (this.loading) {
      if (typeof msg.seq === "number") this.buffer.push(msg);
      return;
    }
    if (typeof msg.seq === "number" && this.seq !== null) {
      if (msg.seq <= this.seq) return; // already in the snapshot
      if (msg.seq !== this.seq + 1) {
        // A gap: something was missed. The snapshot is the truth.
        this.buffer.push(msg);
        this.refresh();
        return;
      }
    }
    if (typeof msg.seq === "number") this.seq = msg.seq;
    const view = msg.cellId ? this.views.get(msg.cellId) : null;
    switch (msg.type) {
      case "cell_status":
        view?.setStatus(msg.status, msg.reason);
        if (view && msg.status === "running") view.clearResults();
        break;
      case "cell_stdout":
        view?.appendStdout(msg.data);
        break;
      case "cell_output":
        view?.addOutput(msg.output);
        break;
      case "cell_error":
        view?.setError(msg.error);
        break;
      case "cell_updated":
        if (!view) {
          this.refetchSoon();
          break;
        }
        if (this.collab.bound(msg.cellId)) {
          // The text arrives as Yjs updates; the rest (names, errors) from here.
          view.update(msg.cell, { code: false });
          break;
        }
        {
          const local = this.hasLocalEdits(msg.cellId);
          const synced = this.synced.get(msg.cellId);
          if (!local && synced?.code !== msg.cell.code && !this.isOwnSave(msg.cellId, msg.cell.code)) {
            // Someone else changed the code and the editor takes it; the revision that goes
            // with it comes from a fetch. (With local edits, the next save gets the 409.)
            this.synced.set(msg.cellId, { code: msg.cell.code, base: null });
            this.refetchSoon();
          }
          view.update(msg.cell, { code: !local });
        }
        break;
      case "cell_created":
        if (!this.synced.has(msg.cellId)) {
          this.synced.set(msg.cellId, { code: msg.cell.code, base: null });
          this.refetchSoon();
        }
        if (!this.views.has(msg.cellId)) {
          this.views.set(msg.cellId, this.makeView(msg.cell));
          const index = Math.max(0, Math.min(msg.index ?? this.order.length, this.order.length));
          this.order.splice(index, 0, msg.cellId);
          this.layout();
        }
        if (this.focusWhenCreated === msg.cellId) {
          this.views.get(msg.cellId).focusEditor();
          this.focusWhenCreated = null;
        }
        break;
      case "cell_deleted":
        this.removeView(msg.cellId);
        break;
      case "cell_moved":
        this.moves.apply(msg.cellId, msg.index);
        break;
      case "notebook_updated":
        if (msg.name !== undefined) this.hooks.onName(msg.name);
        if (msg.lazy !== undefined) this.hooks.onLazy?.(msg.lazy);
        // The DB setting changes the revision and the masked string: fetch both.
        this.refetchSoon();
        break;
      case "package_install":
        this.packages.onEvent(msg);
        this.afterInstall(msg);
        break;
      case "notebook_deleted":
        this.hooks.onDeleted();
        break;
      case "variables":
        this.hooks.onVariables?.(msg.variables);
        break;
      case "presence":
        this.hooks.onPresence?.(msg.users);
        break;
      case "error":
        toast(msg.message, "error");
        break;
      default:
        break;
    }
  }

  /** Installs `name` for the notebook, then runs `cellId` again once it is installed. */
  async installPackage(cellId, name) {
    const key = normalizeName(name);
    const waiting = this.rerunAfterInstall.get(key) || new Set();
    waiting.add(cellId);
    this.rerunAfterInstall.set(key, waiting);
    try {
      await api.installPackage(this.id, name);
      toast(`Installing ${name}…`);
    } catch (err) {
      // 409: already installing; its end re-runs the cell all the same.
      if (!(err instanceof ApiError && err.status === 409)) {
        this.rerunAfterInstall.delete(key);
        toast(`Cannot install ${name}: ${err.message}`, "error");
      }
    }
  }

  afterInstall(msg) {
    if (msg.state === "installing") return;
    const cells = this.rerunAfterInstall.get(msg.name);
    if (!cells) return;
    this.rerunAfterInstall.delete(msg.name);
    if (msg.state === "failed") {
      toast(`Installing ${msg.name} failed`, "error");
      return;
    }
    for (const id of cells) if (this.views.has(id)) this.run(id, { advance: false });
  }

  removeView(id) {
    const view = this.views.get(id);
    if (!view) return;
    const hadFocus = view.el.contains(document.activeElement);
    const index = this.order.indexOf(id);
    this.collab.detach(id);
    view.destroy();
    this.views.delete(id);
    this.saves.get(id)?.debounced.cancel();
    this.saves.delete(id);
    this.synced.delete(id);
    this.order = this.order.filter((c) => c !== id);
    this.layout();
    if (hadFocus && this.order.length) {
      this.views.get(this.order[Math.min(index, this.order.length - 1)]).el.focus();
    }
  }

  // --- Saving ------------------------------------------------------------------------

  saveState(id) {
    if (!this.saves.has(id)) {
      this.saves.set(id, {
        inflight: null,
        sentText: null,
        debounced: debounce(() => this.save(id), SAVE_DELAY_MS),
      });
    }
    return this.saves.get(id);
  }

  edited(id) {
    if (this.collab.bound(id)) {
      // Already on its way to the room as a Yjs update, which stores it.
      this.views.get(id)?.setSaveState("saved");
      return;
    }
    this.views.get(id)?.setSaveState("dirty");
    this.saveState(id).debounced();
  }

  hasLocalEdits(id) {
    const s = this.saves.get(id);
    return Boolean(s && (s.debounced.pending() || s.inflight));
  }

  hasUnsavedEdits() {
    return [...this.saves.keys()].some((id) => this.hasLocalEdits(id));
  }

  isOwnSave(id, code) {
    return this.saves.get(id)?.sentText === code;
  }

  /** Saves the editor text; one request per cell at a time (a second one in flight would
   *  carry a stale expected_revision and be refused). */
  async save(id) {
    const s = this.saveState(id);
    if (s.inflight) {
      await s.inflight;
      return this.save(id);
    }
    const view = this.views.get(id);
    if (!view) return;
    const text = view.editor.getText();
    if (text === this.synced.get(id)?.code) {
      if (!s.debounced.pending()) view.setSaveState("saved");
      return;
    }
    s.sentText = text;
    view.setSaveState("saving");
    s.inflight = (async () => {
      try {
        if (this.loading || this.synced.get(id)?.base == null) await this.load();
        const base = this.synced.get(id)?.base ?? this.revision ?? undefined;
        const res = await api.updateCell(this.id, id, text, base);
        this.revision = Math.max(this.revision ?? 0, res.revision);
        this.synced.set(id, { code: text, base: res.revision });
        // Typing may have continued while the request was out; that edit has its own timer.
        view.setSaveState(s.debounced.pending() ? "dirty" : "saved");
      } catch (err) {
        view.setSaveState(err instanceof ApiError && err.status === 409 ? "saved" : "error");
        if (err instanceof ApiError && err.status === 409) {
          s.debounced.cancel();
          s.inflight = null;
          await this.reloadCell(id);
          // Their version is on screen now; the user may still put theirs back on purpose
          // (it then saves against the revision just fetched).
          toast("This cell was changed elsewhere (another tab or the assistant). It now shows the latest version; your edit was not saved.", "error", {
            action: {
              label: "Use mine",
              run: () => {
                const v = this.views.get(id);
                if (!v) return;
                v.editor.setText(text);
                this.edited(id);
              },
            },
          });
        } else if (err instanceof ApiError && err.status === 404) {
          // The cell was deleted meanwhile; the broadcast removes it.
        } else {
          toast(`Could not save: ${err.message}`, "error");
        }
      } finally {
        s.inflight = null;
      }
    })();
    await s.inflight;
  }

  async reloadCell(id) {
    const nb = await api.getNotebook(this.id);
    const cell = nb.cells.find((c) => c.id === id);
    const view = this.views.get(id);
    if (cell && view) {
      this.synced.set(id, { code: cell.code, base: nb.revision });
      view.update(cell, { code: true });
      view.el.classList.add("flash");
      setTimeout(() => view.el.classList.remove("flash"), 1500);
    }
    this.apply(nb);
  }

  /** Flushes pending edits (before a run, so the server runs what the user sees). */
  async flush(id) {
    const s = this.saves.get(id);
    if (!s) return;
    s.debounced.flush();
    if (s.inflight) await s.inflight;
  }

  async flushAll() {
    await Promise.all([...this.saves.keys()].map((id) => this.flush(id)));
  }

  // --- Commands ----------------------------------------------------------------------

  async run(id, { advance = false } = {}) {
    if (advance) this.focusSibling(id, +1, true);
    try {
      // Descendants run too, so every pending edit must reach the server first.
      await this.flushAll();
      if (this.collab.bound(id) && this.conn?.live) {
        // On the socket that carried the edits, so the run sees every one of them.
        this.conn.send({ type: "run_cell", cellId: id });
      } else {
        await api.runCell(this.id, id);
      }
      this.startPollingIfBusy(true);
    } catch (err) {
      toast(`Could not run the cell: ${err.message}`, "error");
    }
  }

  /** Moves focus to the next/previous cell's editor; past the end, adds a Python cell. */
  focusSibling(id, delta, edit = true) {
    const index = this.order.indexOf(id) + delta;
    if (index >= 0 && index < this.order.length) {
      const view = this.views.get(this.order[index]);
      if (edit) view.focusEditor();
      else view.el.focus();
      view.el.scrollIntoView({ block: "nearest", behavior: "smooth" });
    } else if (index >= this.order.length && edit) {
      this.addCell("python", id, "below");
    }
  }

  async addCell(type, refId, where = "below", { focus = true } = {}) {
    const after = where === "above" ? undefined : refId;
    const before = where === "above" ? refId : undefined;
    try {
      const res = await api.createCell(this.id, type, after ?? undefined, "", before);
      if (!focus) {
        if (!this.conn?.live) await this.load();
        return;
      }
      this.focusWhenCreated = res.cell_id;
      if (this.views.has(res.cell_id)) {
        this.views.get(res.cell_id).focusEditor();
        this.focusWhenCreated = null;
      } else if (!this.conn?.live) {
        await this.load();
      }
    } catch (err) {
      toast(`Could not add a cell: ${err.message}`, "error");
    }
  }

  /** Renames a SQL cell's result; an invalid name is refused by the server (422). */
  async renameResult(id, name) {
    try {
      await api.setResultName(this.id, id, name);
      if (!this.conn?.live) await this.load();
    } catch (err) {
      toast(`Could not rename the result: ${err.message}`, "error");
      await this.load();
    }
  }

  async deleteCell(id) {
    // What undo needs to put the cell back: its type, text and neighbours.
    const undo = this.moves.snapshot(id);
    try {
      await api.deleteCell(this.id, id);
      if (!this.conn?.live) this.removeView(id);
      if (undo) this.moves.offerUndo(undo);
    } catch (err) {
      toast(`Could not delete the cell: ${err.message}`, "error");
    }
  }

  async interrupt() {
    try {
      await api.interrupt(this.id);
    } catch (err) {
      toast(`Could not interrupt: ${err.message}`, "error");
    }
  }

  async restart() {
    try {
      await api.restart(this.id);
      toast("Kernel restarting; variables were cleared.");
      this.startPollingIfBusy(true);
    } catch (err) {
      toast(`Could not restart: ${err.message}`, "error");
    }
  }

  // --- Without a live connection -----------------------------------------------------

  /** While the socket is down, keeps the screen current by polling until nothing runs. */
  startPollingIfBusy(force = false) {
    if (this.closed || this.conn?.live || this.pollTimer) return;
    const busy = [...this.views.values()].some((v) => ["queued", "running"].includes(v.el.dataset.status));
    if (!busy && !force) return;
    this.pollTimer = setTimeout(async () => {
      this.pollTimer = null;
      if (this.closed || this.conn?.live) return;
      try {
        await this.load();
      } catch {
        /* the next poll or reconnect will try again */
      }
    }, POLL_MS);
  }
}
