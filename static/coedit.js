// Co-editing cell text with Yjs: one Y.Doc per cell (its Y.Text "code"), fed by the room's
// `yjs` events and bound to the cell's editor with y-codemirror.next. Local edits go out as
// `{"type":"yjs","cellId","update"}` (base64 Yjs v1 updates) on the notebook's socket.
// The room sends every cell's full state (without `seq`) on each (re)join. Documents survive
// a dropped connection, so what was typed meanwhile is merged on rejoin: if the room still
// has the same history, as Yjs updates; if it restarted (a new history), as a text change
// onto its text when nobody else changed the cell meanwhile, else the user is told.
import { Y, yCollab, yUndoManagerKeymap } from "./vendor/codemirror.js";
import { Cursors } from "./cursors.js";
import { toast } from "./dom.js";

/** The origin of updates that came from the room (they are not sent back). */
const REMOTE = "remote";

function toBase64(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

function fromBase64(text) {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

/** Whether the room's state (`server`, a decoded state vector) holds everything this
 *  document got from others: if not, the room's document is a new history. */
function sameHistory(doc, server) {
  for (const [client, clock] of Y.decodeStateVector(Y.encodeStateVector(doc))) {
    if (client !== doc.clientID && (server.get(client) ?? 0) < clock) return false;
  }
  return true;
}

/** The text a full-state update holds. */
function textOf(update) {
  const doc = new Y.Doc();
  try {
    Y.applyUpdate(doc, update);
    return doc.getText("code").toString();
  } finally {
    doc.destroy();
  }
}

/** Replaces `text`'s content by `want` with one minimal change (shared prefix and suffix kept). */
function replaceText(text, want) {
  const have = text.toString();
  let start = 0;
  while (start < have.length && start < want.length && have[start] === want[start]) start++;
  let end = 0;
  while (end < have.length - start && end < want.length - start && have[have.length - 1 - end] === want[want.length - 1 - end]) end++;
  text.doc.transact(() => {
    if (have.length - start - end > 0) text.delete(start, have.length - start - end);
    if (want.length - start - end > 0) text.insert(start, want.slice(start, want.length - end));
  });
}

export class Collab {
  /** send(msg): puts a message on the socket (dropped while it is not live). */
  constructor(send) {
    this.send = send;
    this.docs = new Map(); // cell id -> { doc, text, editor, edited, away, textWhenAway }
    this.editors = new Map(); // cell id -> editor (see editor.js)
    this.cursors = new Cursors(send);
  }

  /** The connection dropped: documents wait for the room's full state on rejoin, to merge
   *  with it; each text is remembered as the room last saw it. */
  suspend() {
    this.cursors.clear();
    for (const entry of this.docs.values()) {
      if (entry.away) continue;
      entry.away = true;
      entry.textWhenAway = entry.text.toString();
    }
  }

  /** Whether the cell's editor is bound to its document (its edits travel as Yjs updates). */
  bound(id) {
    return Boolean(this.docs.get(id)?.editor);
  }

  /** A `cursor` event from the room. */
  onCursor(msg) {
    this.cursors.onMessage(msg);
  }

  /** A new document for `cellId`, whose local edits go to the room. */
  create(cellId) {
    const doc = new Y.Doc();
    const entry = { doc, text: doc.getText("code"), editor: null, edited: false, away: false, textWhenAway: null };
    doc.on("update", (update, origin) => {
      if (origin === REMOTE) return;
      entry.edited = true;
      this.send({ type: "yjs", cellId, update: toBase64(update) });
    });
    this.docs.set(cellId, entry);
    return entry;
  }

  /** A `yjs` event from the room. */
  onUpdate(msg) {
    if (typeof msg.cellId !== "string" || typeof msg.update !== "string") return;
    let update;
    try {
      update = fromBase64(msg.update);
    } catch (err) {
      console.warn("bad yjs update:", err);
      return;
    }
    let entry = this.docs.get(msg.cellId);
    if (entry?.away && typeof msg.seq !== "number") {
      entry = this.merge(msg.cellId, entry, update);
    } else {
      entry ??= this.create(msg.cellId);
      try {
        Y.applyUpdate(entry.doc, update, REMOTE);
      } catch (err) {
        console.warn("bad yjs update:", err);
        return;
      }
    }
    const editor = this.editors.get(msg.cellId);
    if (editor && !entry.editor) this.bind(msg.cellId, entry, editor);
  }

  /** Merges the room's full state into a document kept over a reconnect; answers the entry
   *  to use from now on. */
  merge(cellId, entry, update) {
    entry.away = false;
    let server;
    try {
      server = Y.decodeStateVector(Y.encodeStateVectorFromUpdate(update));
    } catch (err) {
      console.warn("bad yjs update:", err);
      return entry;
    }
    if (sameHistory(entry.doc, server)) {
      Y.applyUpdate(entry.doc, update, REMOTE);
      // What the room lacks (typed while away, or lost in flight) goes to it now.
      if (entry.edited && entry.text.toString() !== textOf(update)) {
        const missing = Y.encodeStateAsUpdate(entry.doc, Y.encodeStateVectorFromUpdate(update));
        this.send({ type: "yjs", cellId, update: toBase64(missing) });
      }
      return entry;
    }
    // The room restarted with a new history: start over from its document.
    const mine = entry.text.toString();
    const before = entry.textWhenAway;
    const editor = entry.editor;
    editor?.unbindCollab();
    entry.doc.destroy();
    const fresh = this.create(cellId);
    Y.applyUpdate(fresh.doc, update, REMOTE);
    if (editor) this.bind(cellId, fresh, editor);
    const theirs = fresh.text.toString();
    if (mine !== theirs && mine !== before) {
      if (theirs === before) replaceText(fresh.text, mine);
      else toast("Your edits made while disconnected could not be merged: someone changed the cell meanwhile.", "error");
    }
    return fresh;
  }

  /** A cell's editor appeared; bound as soon as its document is known. */
  attach(id, editor) {
    this.editors.set(id, editor);
    const entry = this.docs.get(id);
    if (entry && entry.editor !== editor) this.bind(id, entry, editor);
  }

  /** The cell (or its editor) is gone. */
  detach(id) {
    this.editors.delete(id);
    this.cursors.forget(id);
    const entry = this.docs.get(id);
    if (entry) {
      entry.doc.destroy();
      this.docs.delete(id);
    }
  }

  bind(cellId, entry, editor) {
    entry.editor = editor;
    const undo = new Y.UndoManager(entry.text);
    // The caret is reported while the user is in this editor (even if the window is not
    // focused: others still see where they were typing).
    const inEditor = () => editor.view.contentDOM === document.activeElement;
    const awareness = this.cursors.awareness(cellId, entry.doc, inEditor);
    editor.bindCollab(entry.text.toString(), [
      yCollab(entry.text, awareness, { undoManager: undo }),
      yUndoManagerKeymap,
    ]);
  }
}
