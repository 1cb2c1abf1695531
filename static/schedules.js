// Scheduled runs: a Schedules button in the top bar opens a panel with the notebook's cron
// schedules (add, delete), a "Run now" button, and the run history; a finished run's snapshot
// opens read-only (the server's HTML rendering, in a sandboxed frame where no script runs).
import { api } from "./api.js";
import { $, h, toast } from "./dom.js";

/** How often the history refreshes while the panel is open. */
const POLL_MS = 3000;

/** hooks: { currentId(), cellLabel(cellId) } */
export function installSchedules(hooks) {
  const panel = new SchedulePanel(hooks);
  const button = h("button.btn", {
    id: "btn-schedules",
    type: "button",
    "aria-label": "Schedules and run history",
    "aria-haspopup": "dialog",
    title: "Run this notebook on a schedule; see past runs",
    onclick: () => panel.open(),
  }, h("span.label", {}, "Schedules"));
  $(".topbar-actions").insertBefore(button, $("#btn-help"));
}

/** Local date and time of an RFC 3339 string ("" for none). */
function when(text) {
  if (!text) return "";
  const d = new Date(text);
  return Number.isNaN(d.getTime()) ? text : d.toLocaleString();
}

/** The browser's IANA time zone, the default for a new schedule. */
function localZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch {
    return "UTC";
  }
}

class SchedulePanel {
  constructor(hooks) {
    this.hooks = hooks;
    this.timer = null;
    this.schedules = h("ul.schedule-list", { "aria-label": "Schedules" });
    this.runs = h("tbody");
    this.error = h("p.error-text", { role: "alert", id: "schedule-error" });
    this.cron = h("input", {
      id: "schedule-cron",
      autocomplete: "off",
      spellcheck: false,
      placeholder: "*/15 * * * *",
      required: true,
    });
    this.zone = h("input", { id: "schedule-zone", autocomplete: "off", spellcheck: false, value: localZone() });
    // Never any script in the frame (the sandbox has no allow-scripts, and the page's own CSP
    // forbids them); same origin only so Chromium paints it in-process.
    this.viewer = h("iframe.run-snapshot", {
      title: "Snapshot of a past run",
      sandbox: "allow-same-origin",
      hidden: true,
    });
    const form = h("form.schedule-form", { onsubmit: (ev) => (ev.preventDefault(), this.add()) },
      h("label", { for: "schedule-cron" }, "Cron (minute hour day-of-month month day-of-week)"),
      this.cron,
      h("label", { for: "schedule-zone" }, "Time zone (IANA name)"),
      this.zone,
      h("div.dialog-actions", {}, h("button.btn.primary", { type: "submit", id: "schedule-add" }, "Add schedule")),
    );
    this.dialog = h("dialog.schedules-dialog", { id: "schedules-dialog", "aria-labelledby": "schedules-title" },
      h("h2", { id: "schedules-title" }, "Schedules and runs"),
      h("p.muted", {}, "Each run executes the whole notebook in a fresh kernel; open tabs are not affected."),
      this.schedules,
      form,
      this.error,
      h("div.run-head", {},
        h("h3", {}, "Run history"),
        h("button.btn", { type: "button", id: "run-now", onclick: () => this.runNow() }, "Run now"),
      ),
      h("table.run-table", {},
        h("thead", {}, h("tr", {}, ...["Status", "Trigger", "Started", "Finished", "Failed cell", ""].map((t) => h("th", {}, t)))),
        this.runs,
      ),
      this.viewer,
      h("div.dialog-actions", {}, h("button.btn", { type: "button", onclick: () => this.dialog.close() }, "Close")),
    );
    this.dialog.addEventListener("close", () => this.stopPolling());
    document.body.append(this.dialog);
  }

  get id() {
    return this.hooks.currentId();
  }

  async open() {
    if (!this.id) {
      toast("Open a notebook first.");
      return;
    }
    this.error.textContent = "";
    this.viewer.hidden = true;
    this.viewer.srcdoc = "";
    this.dialog.showModal();
    await this.refresh();
    this.stopPolling();
    this.timer = setInterval(() => this.refreshRuns(), POLL_MS);
  }

  stopPolling() {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  async refresh() {
    await Promise.all([this.refreshSchedules(), this.refreshRuns()]);
  }

  async refreshSchedules() {
    try {
      const list = await api.listSchedules(this.id);
      this.schedules.replaceChildren(
        ...(list.length ? list.map((s) => this.scheduleItem(s)) : [h("li.muted", {}, "No schedules.")]),
      );
    } catch (err) {
      this.error.textContent = `Could not list schedules: ${err.message}`;
    }
  }

  scheduleItem(s) {
    return h("li.schedule", { "data-id": s.id },
      h("code", {}, s.cron), " ", h("span.muted", {}, s.timezone),
      h("span.schedule-next", {}, ` next: ${when(s.next_fire_at)}`),
      h("button.btn.small.danger.subtle", {
        type: "button",
        "aria-label": `Delete schedule ${s.cron}`,
        onclick: () => this.remove(s),
      }, "Delete"),
    );
  }

  async add() {
    this.error.textContent = "";
    try {
      await api.createSchedule(this.id, this.cron.value.trim(), this.zone.value.trim() || undefined);
      this.cron.value = "";
      await this.refreshSchedules();
    } catch (err) {
      this.error.textContent = err.message;
    }
  }

  async remove(s) {
    this.error.textContent = "";
    try {
      await api.deleteSchedule(this.id, s.id);
      await this.refreshSchedules();
    } catch (err) {
      this.error.textContent = err.message;
    }
  }

  async runNow() {
    this.error.textContent = "";
    try {
      await api.startRun(this.id, "manual");
      await this.refreshRuns();
    } catch (err) {
      this.error.textContent = err.message;
    }
  }

  async refreshRuns() {
    if (!this.id) return;
    try {
      const list = await api.listRuns(this.id);
      this.runs.replaceChildren(
        ...(list.length
          ? list.map((r) => this.runRow(r))
          : [h("tr", {}, h("td.muted", { colSpan: 6 }, "No runs yet."))]),
      );
    } catch (err) {
      this.error.textContent = `Could not list runs: ${err.message}`;
    }
  }

  runRow(r) {
    const failed = r.failed_cell ? this.hooks.cellLabel(r.failed_cell) : "";
    const viewable = r.status !== "running" && r.status !== "skipped";
    return h("tr.run", { "data-id": r.id, "data-status": r.status },
      h("td", {}, h(`span.run-status.${r.status}`, { title: r.detail || "" }, r.status)),
      h("td", {}, r.trigger),
      h("td", {}, when(r.started_at)),
      h("td", {}, when(r.finished_at)),
      h("td", { title: r.detail || "" }, failed),
      h("td", {}, viewable
        ? h("button.btn.small", { type: "button", "aria-label": "View this run's outputs", onclick: () => this.view(r) }, "View")
        : ""),
    );
  }

  async view(r) {
    try {
      const page = await api.runSnapshotHtml(this.id, r.id);
      this.viewer.srcdoc = typeof page === "string" ? page : JSON.stringify(page);
      this.viewer.hidden = false;
      this.viewer.scrollIntoView({ block: "nearest" });
    } catch (err) {
      this.error.textContent = `Could not open the run: ${err.message}`;
    }
  }
}
