// The notebook list: switch, create, rename (inline), delete (after confirming).
import { api } from "./api.js";
import { $, h, toast, confirmDialog } from "./dom.js";
import { icon } from "./icons.js";

export class Sidebar {
  /** hooks: { open(id), currentId(), deleted(id) } */
  constructor(hooks) {
    this.hooks = hooks;
    this.list = $("#notebook-list");
    this.notebooks = [];
    $("#btn-new-notebook").addEventListener("click", () => this.create());
  }

  async refresh() {
    const res = await api.listNotebooks();
    this.notebooks = res.notebooks;
    this.render();
    return this.notebooks;
  }

  render() {
    const current = this.hooks.currentId();
    this.list.replaceChildren(
      ...this.notebooks.map((nb) =>
        h(
          "li",
          { class: nb.id === current ? "current" : "" },
          h(
            "a.nb-link",
            {
              href: `/notebooks/${encodeURIComponent(nb.id)}`,
              "aria-current": nb.id === current ? "page" : undefined,
              onclick: (ev) => {
                if (ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.button !== 0) return; // new tab
                ev.preventDefault();
                this.hooks.open(nb.id);
              },
            },
            nb.name || "Untitled",
          ),
          h("button.icon-btn.nb-delete", {
            type: "button",
            "aria-label": `Delete notebook ${nb.name}`,
            title: "Delete notebook",
            onclick: () => this.remove(nb),
          }, icon("trash")),
        ),
      ),
    );
  }

  /** A name changed (renamed here, in another tab, or by the assistant). */
  setName(id, name) {
    const nb = this.notebooks.find((n) => n.id === id);
    if (nb && nb.name !== name) {
      nb.name = name;
      this.render();
    }
  }

  async create() {
    try {
      const res = await api.createNotebook("Untitled notebook");
      await this.refresh();
      this.hooks.open(res.notebook_id, { focusName: true });
    } catch (err) {
      toast(`Could not create a notebook: ${err.message}`, "error");
    }
  }

  async rename(id, name) {
    await api.renameNotebook(id, name);
    this.setName(id, name);
  }

  async remove(nb) {
    const ok = await confirmDialog(
      "Delete this notebook?",
      `“${nb.name}” and all its cells and outputs will be deleted. This cannot be undone.`,
    );
    if (!ok) return;
    try {
      await api.deleteNotebook(nb.id);
      this.notebooks = this.notebooks.filter((n) => n.id !== nb.id);
      this.render();
      this.hooks.deleted(nb.id);
    } catch (err) {
      toast(`Could not delete: ${err.message}`, "error");
    }
  }
}
