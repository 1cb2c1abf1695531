// A result table: sticky header, scrolls both ways, floats rounded to 6 significant digits,
// None and NaN told apart, sorting by a click on a header, paging over the rows the server
// sent, and one footer saying how many rows there are (and how many the server cut).
import { h } from "./dom.js";

const PAGE_SIZE = 50;

/** The kernel tags NaN and infinities ({"type":"float","value":"NaN"}) so they differ from None. */
function tagged(v) {
  return v !== null && typeof v === "object" && v.type === "float" && typeof v.value === "string";
}

/** None or NaN: sorted last whichever the direction. */
function isMissing(v) {
  return v === null || v === undefined || (tagged(v) && v.value === "NaN");
}

/** The text of one value. */
export function formatValue(v) {
  if (v === null || v === undefined) return "None";
  if (tagged(v)) return v.value === "NaN" ? "NaN" : v.value === "Infinity" ? "inf" : "-inf";
  if (typeof v === "number") {
    if (Number.isInteger(v)) return String(v);
    // Up to 6 significant digits, no trailing zeros; very large/small numbers in e-notation.
    const abs = Math.abs(v);
    if (abs !== 0 && (abs >= 1e15 || abs < 1e-4)) return v.toExponential(5).replace(/\.?0+e/, "e");
    return String(Number(v.toPrecision(6)));
  }
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

function numberOf(v) {
  if (typeof v === "number") return v;
  if (tagged(v)) return v.value === "Infinity" ? Infinity : v.value === "-Infinity" ? -Infinity : NaN;
  return null;
}

/** Ascending comparison of two present values: numbers before text. */
function compare(a, b) {
  const na = numberOf(a);
  const nb = numberOf(b);
  if (na !== null && nb !== null) return na - nb;
  if (na !== null) return -1;
  if (nb !== null) return 1;
  return formatValue(a).localeCompare(formatValue(b), undefined, { numeric: true });
}

/** "N rows" / "showing X of N rows", from the server's truncation note when it cut rows. */
function totalRows(rows, truncated) {
  const m = typeof truncated === "string" ? truncated.match(/of\s+([\d,]+)\s+rows/) : null;
  return m ? Number(m[1].replace(/,/g, "")) : rows.length;
}

const plural = (n, word) => `${n.toLocaleString("en-US")} ${word}${n === 1 ? "" : "s"}`;

export function renderTable({ columns = [], rows = [], truncated } = {}) {
  const state = { sortCol: null, dir: 1, page: 0 };
  const total = totalRows(rows, truncated);
  const thead = h("thead");
  const tbody = h("tbody");
  const table = h("table.out-table", {}, thead, tbody);
  const pager = h("span.table-pager");
  const note = h(`div.table-note${truncated ? ".truncated" : ""}`);
  const pages = Math.max(1, Math.ceil(rows.length / PAGE_SIZE));

  const sorted = () => {
    if (state.sortCol === null) return rows;
    const c = state.sortCol;
    // Stable sort of indices keeps equal rows in their original order.
    return rows
      .map((row, i) => [row, i])
      .sort((x, y) => {
        const a = x[0][c];
        const b = y[0][c];
        if (isMissing(a) || isMissing(b)) return isMissing(a) - isMissing(b) || x[1] - y[1];
        return state.dir * compare(a, b) || x[1] - y[1];
      })
      .map(([row]) => row);
  };

  const draw = () => {
    thead.replaceChildren(
      h(
        "tr",
        {},
        columns.map((name, c) => {
          const active = state.sortCol === c;
          const sort = active ? (state.dir > 0 ? "ascending" : "descending") : "none";
          return h(
            "th",
            { scope: "col", "aria-sort": sort },
            h(
              "button.th-sort",
              {
                type: "button",
                title: `Sort by ${name}`,
                onclick: () => {
                  if (state.sortCol === c && state.dir < 0) {
                    state.sortCol = null; // third click: back to the original order
                  } else {
                    state.dir = state.sortCol === c ? -1 : 1;
                    state.sortCol = c;
                  }
                  state.page = 0;
                  draw();
                },
              },
              String(name),
              h("span.sort-mark", { "aria-hidden": "true" }, active ? (state.dir > 0 ? " ▲" : " ▼") : ""),
            ),
          );
        }),
      ),
    );
    const start = state.page * PAGE_SIZE;
    const shown = sorted().slice(start, start + PAGE_SIZE);
    tbody.replaceChildren(
      ...shown.map((row) =>
        h(
          "tr",
          {},
          row.map((v) => {
            const cls = typeof v === "number" || tagged(v) ? ".num" : "";
            const miss = v === null || v === undefined ? ".null" : tagged(v) ? ".nan" : "";
            return h(`td${cls}${miss}`, {}, formatValue(v));
          }),
        ),
      ),
    );
    const parts = [];
    if (rows.length < total) parts.push(`showing ${rows.length.toLocaleString("en-US")} of ${plural(total, "row")}`);
    else parts.push(plural(total, "row"));
    parts.push(plural(columns.length, "column"));
    if (pages > 1) parts.push(`rows ${start + 1}–${start + shown.length}`);
    note.replaceChildren(h("span.table-count", {}, parts.join(" · ")), pager);
    pager.hidden = pages <= 1;
    pager.replaceChildren(
      h("button.btn.small", { type: "button", "aria-label": "Previous page", disabled: state.page === 0, onclick: () => go(-1) }, "‹"),
      h("span.page-of", {}, ` page ${state.page + 1} of ${pages} `),
      h("button.btn.small", { type: "button", "aria-label": "Next page", disabled: state.page >= pages - 1, onclick: () => go(1) }, "›"),
    );
  };
  const go = (delta) => {
    state.page = Math.min(pages - 1, Math.max(0, state.page + delta));
    draw();
  };
  draw();
  return h(
    "div.out-table-wrap",
    {},
    h("div.table-scroll", { tabindex: 0, role: "region", "aria-label": "Result table" }, table),
    note,
  );
}
