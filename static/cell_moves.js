// Moving cells (keyboard steps, drag and drop, `cell_moved` broadcasts) and undoing a cell's
// deletion, for one open notebook. The server owns the order: a move is a request, and the
// screen follows its broadcast (or a re-fetch when the socket is down).
import { api } from "./api.js";
import { toast } from "./dom.js";

export class CellMoves {
  /** `nb` is the NotebookController (its id, order, views, conn, layout and load). */
  constructor(nb) {
    this.nb = nb;
  }

  /** Moves a cell one place up (-1) or down (+1); at either end nothing happens. */
  step(id, delta) {
    const order = this.nb.order;
    const index = order.indexOf(id);
    const target = order[index + delta];
    if (index < 0 || !target) return;
    this.moveTo(id, target, delta < 0 ? "before" : "after");
  }

  async moveTo(id, targetId, where) {
    if (id === targetId) return;
    try {
      await api.moveCell(this.nb.id, id, where === "before" ? { before_cell_id: targetId } : { after_cell_id: targetId });
      if (!this.nb.conn?.live) await this.nb.load();
    } catch (err) {
      toast(`Could not move the cell: ${err.message}`, "error");
    }
  }

  /** A `cell_moved` broadcast: the cell now sits at `index`. */
  apply(id, index) {
    const view = this.nb.views.get(id);
    if (!view) {
      this.nb.refetchSoon();
      return;
    }
    // Moving an element out of the document drops its focus: give it back.
    const active = view.el.contains(document.activeElement) ? document.activeElement : null;
    const order = this.nb.order.filter((c) => c !== id);
    order.splice(Math.max(0, Math.min(index, order.length)), 0, id);
    this.nb.order = order;
    this.nb.layout();
    if (active && !view.el.contains(document.activeElement)) active.focus({ preventScroll: true });
    view.el.scrollIntoView({ block: "nearest" });
  }

  /** What it takes to re-create a cell about to be deleted. */
  snapshot(id) {
    const view = this.nb.views.get(id);
    if (!view) return null;
    const index = this.nb.order.indexOf(id);
    return {
      type: view.type,
      code: view.editor.getText(),
      resultName: view.cell?.result_name || null,
      prev: this.nb.order[index - 1] ?? null,
      next: this.nb.order[index + 1] ?? null,
    };
  }

  offerUndo(undo) {
    toast("Cell deleted", "info", { action: { label: "Undo", run: () => this.restore(undo) } });
  }

  /** Re-creates a deleted cell with its type and text, where it was (next to a neighbour
   *  that still exists, else at the end). Its outputs are gone: it has to run again. */
  async restore(undo) {
    const has = (id) => id && this.nb.views.has(id);
    const after = has(undo.prev) ? undo.prev : has(undo.next) ? undefined : this.nb.order.at(-1);
    const before = !has(undo.prev) && has(undo.next) ? undo.next : undefined;
    try {
      const res = await api.createCell(this.nb.id, undo.type, after, undo.code, before);
      if (undo.type === "sql" && undo.resultName) {
        await api.setResultName(this.nb.id, res.cell_id, undo.resultName).catch(() => {
          /* the name may be taken by now; the default one stays */
        });
      }
      if (this.nb.views.has(res.cell_id)) this.nb.views.get(res.cell_id).el.focus();
      else this.nb.focusWhenCreated = res.cell_id;
      if (!this.nb.conn?.live) await this.nb.load();
    } catch (err) {
      toast(`Could not restore the cell: ${err.message}`, "error");
    }
  }
}
