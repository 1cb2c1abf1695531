// The variables panel: what the kernel holds after the latest runs (name, type, a short
// summary), the cell that defines each name and the cells that read it; clicking a cell
// jumps to it. The table comes from GET /variables when a notebook opens and from `variables`
// broadcasts after each run.
import { request } from "./api.js";
import { $, h } from "./dom.js";

export class VariablesPanel {
  constructor() {
    document.head.append(h("link", { rel: "stylesheet", href: "/introspect.css" }));
    this.controller = null;
    this.variables = [];
    this.button = h(
      "button.btn",
      {
        id: "btn-variables",
        "aria-label": "Show or hide the variables",
        "aria-controls": "variables",
        "aria-expanded": "false",
        title: "Variables in the kernel",
        onclick: () => this.toggle(),
      },
      h("span.label", {}, "Variables"),
    );
    $(".topbar-actions").insertBefore(this.button, $("#btn-help"));
    this.list = h("div.variables-list");
    this.panel = h(
      "aside.variables-panel",
      { id: "variables", "aria-label": "Variables", hidden: true },
      h(
        "div.variables-head",
        {},
        h("h2", {}, "Variables"),
        h("button.icon-btn", { "aria-label": "Close the variables", onclick: () => this.toggle(false) }, "×"),
      ),
      this.list,
    );
    $("#app").append(this.panel);
  }

  /** Follows the open notebook (`null` when none). */
  async setNotebook(controller) {
    this.controller = controller;
    this.variables = [];
    this.render();
    if (!controller) return;
    try {
      const answer = await request("GET", `/api/notebooks/${encodeURIComponent(controller.id)}/variables`);
      if (this.controller === controller) this.update(answer.variables);
    } catch {
      // The broadcasts after the next run fill it in.
    }
  }

  /** A new table from the server. */
  update(variables) {
    this.variables = Array.isArray(variables) ? variables : [];
    this.render();
  }

  toggle(open = this.panel.hidden) {
    this.panel.hidden = !open;
    this.button.setAttribute("aria-expanded", String(open));
    if (open) this.render();
  }

  /** Number and label of a cell, e.g. "[3]". */
  cellLabel(id) {
    const index = this.controller?.order.indexOf(id) ?? -1;
    return index < 0 ? "?" : `[${index + 1}]`;
  }

  cellLink(id) {
    return h(
      "button.var-cell",
      { type: "button", "data-cell-id": id, title: "Go to the cell", onclick: () => this.jump(id) },
      this.cellLabel(id),
    );
  }

  jump(id) {
    const view = this.controller?.views.get(id);
    if (!view) return;
    view.el.scrollIntoView({ block: "center", behavior: "smooth" });
    view.editor.focus();
    view.el.classList.add("flash");
    setTimeout(() => view.el.classList.remove("flash"), 1200);
  }

  render() {
    if (this.panel.hidden) return;
    if (!this.variables.length) {
      this.list.replaceChildren(h("p.muted", {}, "No variables yet: run a cell."));
      return;
    }
    const readers = (name) =>
      (this.controller?.order ?? []).filter((id) => this.controller.views.get(id)?.cell?.reads?.includes(name));
    this.list.replaceChildren(
      h(
        "table.variables-table",
        {},
        h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Type"), h("th", {}, "Defined"), h("th", {}, "Read by"))),
        h(
          "tbody",
          {},
          this.variables.map((v) =>
            h(
              "tr",
              { "data-name": v.name },
              h("td.var-name", {}, h("code", {}, v.name), h("div.var-summary", { title: v.summary }, v.summary)),
              h("td.var-type", {}, v.type),
              h("td", {}, v.cell_id ? this.cellLink(v.cell_id) : ""),
              h("td.var-readers", {}, readers(v.name).map((id) => this.cellLink(id))),
            ),
          ),
        ),
      ),
    );
  }
}
