// Remote cursors inside cell editors. y-codemirror.next draws other people's selections from
// an "awareness" object; ours is a small stand-in per cell fed by the room's `cursor` events
// (who, colour and name come from the server, so nobody can pose as someone else) and
// reporting the local selection as a `cursor` message while the editor has focus.
import { Y } from "./vendor/codemirror.js";

/** Most cursor reports per second from this tab. */
const REPORT_EVERY_MS = 50;

/** The awareness interface y-codemirror.next uses, for one cell's document. */
class CellAwareness {
  constructor(doc, report) {
    this.doc = doc;
    this.report = report;
    this.local = {};
    this.remote = new Map(); // -session -> { user, cursor }
    this.listeners = new Set();
  }

  getLocalState() {
    return this.local;
  }

  setLocalStateField(field, value) {
    this.local = { ...this.local, [field]: value };
    if (field === "cursor") this.report(value);
  }

  getStates() {
    const states = new Map(this.remote);
    states.set(this.doc.clientID, this.local);
    return states;
  }

  on(event, fn) {
    if (event === "change") this.listeners.add(fn);
  }

  off(event, fn) {
    this.listeners.delete(fn);
  }

  /** Sets (or with null, removes) a remote session's state and tells the editor. */
  setRemote(key, state) {
    const had = this.remote.has(key);
    if (state) this.remote.set(key, state);
    else if (!had) return;
    else this.remote.delete(key);
    const change = { added: had || !state ? [] : [key], updated: had && state ? [key] : [], removed: state ? [] : [key] };
    for (const fn of this.listeners) fn(change, "remote");
  }
}

/** A position another client sent, as a Y.RelativePosition if it resolves in `doc` (else null:
 *  never hand the editor one that throws). The editor needs the object form: the JSON form
 *  leaves out null fields, which Yjs reads as present. */
function resolvable(json, doc) {
  try {
    const pos = Y.createRelativePositionFromJSON(json);
    return Y.createAbsolutePositionFromRelativePosition(pos, doc) ? pos : null;
  } catch {
    return null;
  }
}

export class Cursors {
  /** send(msg): puts a message on the socket. */
  constructor(send) {
    this.send = send;
    this.cells = new Map(); // cell id -> CellAwareness
    this.where = new Map(); // remote session -> cell id
    this.pending = null; // { cellId, cursor } waiting for the next report slot
    this.timer = null;
  }

  /** The awareness for a cell's (new) document; `hasFocus()` tells if its editor has focus. */
  awareness(cellId, doc, hasFocus) {
    const old = this.cells.get(cellId);
    const awareness = new CellAwareness(doc, (cursor) => {
      if (hasFocus()) this.queue(cellId, cursor);
    });
    if (old) for (const [key, state] of old.remote) awareness.remote.set(key, state);
    this.cells.set(cellId, awareness);
    return awareness;
  }

  /** The cell is gone. */
  forget(cellId) {
    this.cells.delete(cellId);
  }

  queue(cellId, cursor) {
    this.pending = { cellId, cursor };
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      const { cellId: id, cursor: c } = this.pending;
      this.pending = null;
      if (c) this.send({ type: "cursor", cellId: id, anchor: Y.relativePositionToJSON(c.anchor), head: Y.relativePositionToJSON(c.head) });
      else this.send({ type: "cursor", cellId: null });
    }, REPORT_EVERY_MS);
  }

  /** A `cursor` event from the room. */
  onMessage(msg) {
    if (typeof msg.session !== "number") return;
    const key = -msg.session; // never a Yjs client id (those are positive)
    const before = this.where.get(key);
    if (before && before !== msg.cellId) this.cells.get(before)?.setRemote(key, null);
    const awareness = msg.cellId ? this.cells.get(msg.cellId) : null;
    if (!awareness) {
      this.where.delete(key);
      return;
    }
    const anchor = resolvable(msg.anchor, awareness.doc);
    const head = resolvable(msg.head, awareness.doc);
    if (!anchor || !head) return;
    this.where.set(key, msg.cellId);
    const color = /^#[0-9a-fA-F]{6}$/.test(msg.color) ? msg.color : "#30bced";
    const name = String(msg.name || msg.user_id || "someone");
    awareness.setRemote(key, { user: { name, color, colorLight: `${color}33` }, cursor: { anchor, head } });
  }

  /** The connection dropped: others' cursors are unknown until they move again. */
  clear() {
    for (const [key, cellId] of this.where) this.cells.get(cellId)?.setRemote(key, null);
    this.where.clear();
  }
}
