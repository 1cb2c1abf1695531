// End-to-end test of the web UI in Debian's chromium, driven by playwright-core.
// Usage: node tests/browser/ui.test.mjs <base_url> <token> <output_dir> <pg_url> <env_base> <env_token>
// (<env_base>: a server whose managed Python environment fails to provision; <editor_token>,
// <viewer_token>: two other users the notebook is shared with.)
// Run by tests/browser.rs against a real server; exits non-zero on the first failure.
// Screenshots of every step go to <output_dir> (look at them: they are part of the test).
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const [base, token, outDir, pgUrl, envBase, envToken, editorToken, viewerToken] = process.argv.slice(2);
if (!base || !token || !outDir || !pgUrl || !envBase || !envToken || !editorToken || !viewerToken) {
  console.error("usage: ui.test.mjs <base_url> <token> <output_dir> <pg_url> <env_base> <env_token> <editor_token> <viewer_token>");
  process.exit(2);
}
mkdirSync(outDir, { recursive: true });

// A hung step must not hang CI: give up (and let playwright kill chromium) after 8 minutes.
setTimeout(() => {
  console.error("FAIL: the whole test took longer than 8 minutes");
  process.exit(1);
}, 8 * 60_000).unref();

const RUN_TIMEOUT = 90_000; // the first run starts a kernel and imports pandas/matplotlib
let shot = 0;
const log = (...args) => console.log(`[ui-test ${new Date().toISOString().slice(11, 19)}]`, ...args);

async function screenshot(page, name) {
  shot += 1;
  const file = join(outDir, `${String(shot).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  log("screenshot", file);
}

/** The n-th cell (0-based) on a page. */
const cell = (page, n) => page.locator("section.cell").nth(n);
/** Defines `window.__cellCode(i)` in every page of a context: the code shown in the i-th cell's
 *  editor without other users' carets, which y-codemirror.next draws inside the text (their
 *  name and zero-width joiners would otherwise be part of `innerText`). */
function cellCodeScript() {
  window.__cellCode = (i) => {
    const content = document.querySelectorAll("section.cell .cm-content")[i];
    if (!content) return null;
    return [...content.querySelectorAll(".cm-line")]
      .map((line) => {
        let text = "";
        const walker = document.createTreeWalker(line, NodeFilter.SHOW_TEXT);
        for (let node = walker.nextNode(); node; node = walker.nextNode()) {
          if (!node.parentElement.closest(".cm-ySelectionCaret")) text += node.data;
        }
        return text;
      })
      .join("\n");
  };
}
/** The code shown in cell `n` of `page` (see `cellCodeScript`). */
const code = (page, n) => page.evaluate((i) => window.__cellCode(i), n);

/** Scrolls so the whole cell, results included, is on screen for the screenshot. */
async function showCell(page, n) {
  await cell(page, n).evaluate((c) => c.scrollIntoView({ block: c.offsetHeight > innerHeight - 60 ? "start" : "end" }));
}

async function cellCount(page) {
  return page.locator("section.cell").count();
}

/** Replaces a cell's code by typing into its editor, as a user would. */
async function setCode(page, n, code) {
  const editor = cell(page, n).locator(".cm-content");
  await editor.click();
  await page.keyboard.press("ControlOrMeta+a");
  await page.keyboard.press("Backspace");
  // insertText: one input event, so auto-closing brackets do not double up.
  await page.keyboard.insertText(code);
}

/** Waits until no cell has unsaved or in-flight edits. */
async function waitSaved(page) {
  await page.waitForFunction(
    () => ![...document.querySelectorAll("section.cell")].some((c) => ["dirty", "saving"].includes(c.dataset.save)),
    null,
    { timeout: 15_000 },
  );
}

/** Waits for a cell to settle; fails at once if it settles on another final status. */
async function waitStatus(page, n, status, timeout = RUN_TIMEOUT) {
  const el = await cell(page, n).elementHandle();
  const describe = () => el.evaluate((c) => `${c.dataset.status}: ${c.querySelector(".cell-result")?.innerText.slice(0, 800)}`);
  await page
    .waitForFunction(
      ([c, s]) => c.dataset.status === s || (["success", "error", "blocked"].includes(c.dataset.status) && c.dataset.status !== s && c.dataset.save === "saved"),
      [el, status],
      { timeout },
    )
    .catch(async (err) => {
      throw new Error(`cell ${n} never reached status ${status} (now ${await describe()}): ${err.message}`);
    });
  const actual = await el.evaluate((c) => c.dataset.status);
  if (actual !== status) throw new Error(`cell ${n} ended ${await describe()}, expected ${status}`);
}

/** Waits until a cell's result area contains `text`. */
async function waitOutput(page, n, text, timeout = RUN_TIMEOUT) {
  const el = await cell(page, n).elementHandle();
  await page
    .waitForFunction(([c, t]) => c.querySelector(".cell-result")?.innerText.includes(t), [el, text], { timeout })
    .catch(async (err) => {
      const actual = await el.evaluate((c) => `${c.dataset.status}: ${c.querySelector(".cell-result")?.innerText}`);
      throw new Error(`cell ${n} never showed ${JSON.stringify(text)} (shows ${actual}): ${err.message}`);
    });
}

async function addPythonCellAtEnd(page) {
  const before = await cellCount(page);
  await page.getByRole("button", { name: "Add a Python cell at the end" }).click();
  await page.waitForFunction((n) => document.querySelectorAll("section.cell").length === n + 1, before);
  return before;
}

/** Waits until a locator matches exactly `count` elements. */
async function waitCount(locator, count, what, timeout = 15_000) {
  const deadline = Date.now() + timeout;
  let found = await locator.count();
  while (found !== count && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    found = await locator.count();
  }
  assert(found === count, `${what}: expected ${count}, found ${found}`);
}

function assert(cond, message) {
  if (!cond) throw new Error(`assertion failed: ${message}`);
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
await context.addInitScript(cellCodeScript);
const consoleErrors = [];
function watch(page, name) {
  page.on("pageerror", (err) => consoleErrors.push(`${name}: ${err.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error") consoleErrors.push(`${name}: ${msg.text()}`);
  });
}

try {
  // --- Sign in with a local token ------------------------------------------------------
  const page = await context.newPage();
  watch(page, "tab1");
  await page.goto(`${base}/`);
  await page.locator("#signin-local").waitFor();
  assert((await page.locator("#signin-local").innerText()).includes("reactive-notebook token --user"), "sign-in page explains how to get a token");
  await screenshot(page, "signin-without-token");

  await page.goto(`${base}/#token=${token}`);
  await page.locator("#app").waitFor();
  assert(!page.url().includes("token="), `token stripped from the URL (${page.url()})`);
  assert((await page.evaluate(() => localStorage.getItem("rn.token"))) === token, "token kept in localStorage");
  await page.locator("#conn[data-state=live]").waitFor({ timeout: 15_000 });
  log("signed in; live");

  // --- Create a notebook ---------------------------------------------------------------
  // With no notebook in the URL the app opens the first one; wait for that, then create.
  await page.waitForURL(/\/notebooks\/[^/]+$/);
  const firstUrl = page.url();
  await page.getByRole("button", { name: "New notebook" }).click();
  await page.waitForURL((url) => /\/notebooks\/[^/]+$/.test(url.pathname) && url.href !== firstUrl);
  const notebookUrl = page.url();
  await page.locator("#notebook-name").fill("Browser test");
  await page.locator("#notebook-name").press("Enter");
  await page.locator("#notebook-list li.current a", { hasText: "Browser test" }).waitFor();
  await page.waitForFunction(() => document.querySelectorAll("section.cell").length === 1);
  log("created notebook", notebookUrl);

  // --- x = 1, y = x + 1, y * 10 ----------------------------------------------------------
  await setCode(page, 0, "x = 1");
  await page.keyboard.press("Alt+b"); // add a Python cell below (keyboard shortcut)
  await page.waitForFunction(() => document.querySelectorAll("section.cell").length === 2);
  await page.waitForFunction(() => document.activeElement?.closest("section.cell") === document.querySelectorAll("section.cell")[1]);
  await page.keyboard.insertText("y = x + 1");
  await addPythonCellAtEnd(page);
  await setCode(page, 2, "y * 10");
  await waitSaved(page);
  await screenshot(page, "three-cells-typed");

  // Shift+Enter: run the first cell and move to the next one.
  await cell(page, 0).locator(".cm-content").click();
  await page.keyboard.press("Shift+Enter");
  await page.waitForFunction(() => document.activeElement?.closest("section.cell") === document.querySelectorAll("section.cell")[1]);
  await waitStatus(page, 0, "success");
  await waitOutput(page, 2, "20");
  await waitStatus(page, 2, "success");
  assert((await cell(page, 1).innerText()).includes("reads"), "reads/writes shown");
  log("third cell shows 20 without being run by hand");
  await screenshot(page, "reactive-20");

  // --- A second tab on the same notebook ----------------------------------------------------
  const page2 = await context.newPage();
  watch(page2, "tab2");
  await page2.goto(notebookUrl);
  await page2.locator("#conn[data-state=live]").waitFor({ timeout: 15_000 });
  await waitOutput(page2, 2, "20");

  // --- x = 2, run in place (Ctrl+Enter) -> 30, in both tabs -------------------------------
  await setCode(page, 0, "x = 2");
  await page.keyboard.press("Control+Enter");
  await waitOutput(page, 2, "30");
  log("tab 1 shows 30");
  await page2.waitForFunction(() => window.__cellCode(0)?.trim() === "x = 2", null, { timeout: 15_000 });
  await waitOutput(page2, 2, "30");
  log("tab 2 sees the edit and 30 without reloading");
  await screenshot(page, "tab1-after-x2");
  await screenshot(page2, "tab2-live-update");
  await page2.close();

  // --- matplotlib -> image ----------------------------------------------------------------------
  let n = await addPythonCellAtEnd(page);
  await setCode(page, n, [
    "import matplotlib",
    "matplotlib.use('Agg')",
    "import matplotlib.pyplot as plt",
    "fig1, ax1 = plt.subplots(figsize=(5, 2.5))",
    "ax1.plot([1, 2, 3, 4], [1, 4, 9, 16], marker='o')",
    "ax1.set_title('squares')",
    "fig1",
  ].join("\n"));
  await page.keyboard.press("Control+Enter");
  await waitStatus(page, n, "success");
  await cell(page, n).locator("img.out-image").waitFor();
  const imgWidth = await cell(page, n).locator("img.out-image").evaluate((img) => img.naturalWidth);
  assert(imgWidth > 100, `matplotlib image decoded (naturalWidth ${imgWidth})`);
  await showCell(page, n);
  await screenshot(page, "matplotlib-image");

  // --- pandas -> table ---------------------------------------------------------------------------
  n = await addPythonCellAtEnd(page);
  await setCode(page, n, [
    "import pandas as pd",
    "df = pd.DataFrame({'city': ['Oslo', 'Lima', 'Pune'], 'temp': [3.5, 19.0, 31.2], 'y': [y, y * 2, y * 3]})",
    "print('rows:', len(df))",
    "df",
  ].join("\n"));
  await page.keyboard.press("Control+Enter");
  await waitStatus(page, n, "success");
  await waitOutput(page, n, "rows: 3"); // stdout
  await cell(page, n).locator("table.out-table").waitFor();
  assert((await cell(page, n).locator("table.out-table th").allInnerTexts()).includes("city"), "pandas table has its columns");
  assert((await cell(page, n).locator("table.out-table tbody tr").count()) === 3, "pandas table has 3 rows");
  await showCell(page, n);
  await screenshot(page, "pandas-table");

  // --- plotly -> SVG chart -------------------------------------------------------------------------
  n = await addPythonCellAtEnd(page);
  await setCode(page, n, [
    "import plotly.express as px",
    "px.bar(df, x='city', y='temp', title='temperature')",
  ].join("\n"));
  await page.keyboard.press("Control+Enter");
  await waitStatus(page, n, "success");
  await cell(page, n).locator(".out-chart.plotly svg.main-svg").first().waitFor({ timeout: 30_000 });
  // Plotly adds the SVG first and draws into it asynchronously: wait for the bars themselves.
  await waitCount(cell(page, n).locator(".out-chart.plotly .bars path"), 3, "plotly bars");
  await showCell(page, n);
  await screenshot(page, "plotly-chart");

  // --- Vega-Lite (altair) -> SVG chart; HTML -> sandboxed iframe --------------------------------------------
  n = await addPythonCellAtEnd(page);
  await setCode(page, n, [
    "import altair as alt",
    "alt.Chart(df).mark_bar().encode(x='city', y='temp')",
  ].join("\n"));
  await page.keyboard.press("Control+Enter");
  await waitStatus(page, n, "success");
  await cell(page, n).locator(".out-chart.vega svg").first().waitFor({ timeout: 30_000 });
  await waitCount(cell(page, n).locator(".out-chart.vega svg .mark-rect path"), 3, "vega-lite bars");

  n = await addPythonCellAtEnd(page);
  await setCode(page, n, [
    "class Badge:",
    "    def _repr_html_(self):",
    "        return '<p id=\"inside\"><b>bold</b> HTML output</p><script>document.body.append(\"script ran\")</script>'",
    "Badge()",
  ].join("\n"));
  await page.keyboard.press("Control+Enter");
  await waitStatus(page, n, "success");
  const frame = cell(page, n).locator("iframe.out-html");
  await frame.waitFor();
  assert((await frame.getAttribute("sandbox")) === "allow-scripts", "HTML output is sandboxed (no same-origin)");
  const inner = await frame.contentFrame().locator("#inside").innerText();
  assert(inner.includes("bold HTML output"), `HTML rendered in the iframe (${inner})`);
  // The frame's opaque origin keeps the page's token out of reach.
  const leaked = await frame.contentFrame().locator("body").evaluate(() => {
    try {
      return String(parent.localStorage.getItem("rn.token"));
    } catch {
      return "blocked";
    }
  });
  assert(leaked === "blocked", "the iframe cannot read the parent page");
  await showCell(page, n);
  await screenshot(page, "vega-and-html");

  // --- SQL against PostgreSQL -> table ---------------------------------------------------------------
  await page.getByRole("button", { name: "PostgreSQL connection" }).click();
  await page.locator("#db-input").fill(pgUrl);
  await page.locator("#db-save").click();
  await page.locator("#db-dialog").waitFor({ state: "hidden" });
  await page.waitForFunction(() => document.querySelector("#btn-db").classList.contains("set"));
  await page.getByRole("button", { name: "PostgreSQL connection" }).click();
  const masked = await page.locator("#db-current").innerText();
  assert(masked.startsWith("postgres"), `connection shown (${masked})`);
  assert(!/:[^*@/]+@/.test(masked.replace(/^postgres(ql)?:\/\//, "")) || masked.includes("***"), `password masked (${masked})`);
  await page.keyboard.press("Escape");

  const before = await cellCount(page);
  await page.getByRole("button", { name: "Add an SQL cell at the end" }).click();
  await page.waitForFunction((c) => document.querySelectorAll("section.cell").length === c + 1, before);
  n = before;
  assert(await cell(page, n).evaluate((c) => c.classList.contains("sql")), "the new cell is an SQL cell");
  await setCode(page, n, "SELECT n, n * {y} AS scaled, 'row ' || n AS label\nFROM generate_series(1, 4) AS n");
  await page.keyboard.press("Control+Enter");
  await waitStatus(page, n, "success");
  await cell(page, n).locator("table.out-table").waitFor();
  await waitCount(cell(page, n).locator("table.out-table tbody tr"), 4, "SQL table rows");
  await waitOutput(page, n, "12"); // 4 * y where y = 3
  await showCell(page, n);
  await screenshot(page, "sql-table");

  // --- An error and the blocked dependent -------------------------------------------------------------
  n = await addPythonCellAtEnd(page);
  await setCode(page, n, "def explode():\n    return 1 / 0\n\nboom = explode()");
  const dep = await addPythonCellAtEnd(page);
  await setCode(page, dep, "boom + 1");
  await waitSaved(page);
  await cell(page, n).getByRole("button", { name: /^Run cell/ }).click();
  await waitStatus(page, n, "error");
  await waitOutput(page, n, "ZeroDivisionError");
  await waitOutput(page, n, "Traceback");
  await waitStatus(page, dep, "blocked");
  await showCell(page, dep);
  await screenshot(page, "error-and-blocked");

  // --- A concurrent edit: someone else saves the cell (REST) while this tab types in it ------------------
  // The tab's typing travels as Yjs updates and the REST save as a Yjs change: they merge, and
  // nobody gets a conflict (REST clients still get 409 for a stale expected_revision).
  n = await addPythonCellAtEnd(page);
  await setCode(page, n, "conflict_a = 1");
  await waitSaved(page);
  const cellId = await cell(page, n).getAttribute("data-cell-id");
  const notebookId = notebookUrl.split("/").pop();
  await cell(page, n).locator(".cm-editor[data-collab=on]").waitFor({ timeout: 15_000 });
  await cell(page, n).locator(".cm-content").click();
  await page.keyboard.press("End");
  await page.keyboard.insertText("  # mine");
  const put = await fetch(`${base}/api/notebooks/${notebookId}/cells/${cellId}`, {
    method: "PUT",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ code: "conflict_a = 2  # theirs" }),
  });
  assert(put.ok, `the other writer saved (${put.status})`);
  // The tab ends up showing exactly what the server holds, which includes the other save.
  let serverCode = null;
  for (let i = 0; i < 100; i++) {
    const nb = await (await fetch(`${base}/api/notebooks/${notebookId}`, { headers: { Authorization: `Bearer ${token}` } })).json();
    serverCode = nb.cells.find((c) => c.id === cellId).code;
    const shown = await code(page, n);
    if (shown === serverCode && serverCode.includes("# theirs")) break;
    await page.waitForTimeout(100);
  }
  assert((await code(page, n)) === serverCode, `the tab shows the merged code ${JSON.stringify(serverCode)}`);
  assert(serverCode.includes("# theirs"), `the other save is in the merged code ${JSON.stringify(serverCode)}`);
  assert((await page.locator(".toast.error", { hasText: "changed elsewhere" }).count()) === 0, "no conflict toast");
  log("concurrent edit merged:", JSON.stringify(serverCode));
  await screenshot(page, "conflict-reloaded");

  // --- Help dialog, dark theme, narrow window ------------------------------------------------------------
  await page.keyboard.press("F1");
  await page.locator("#help-dialog").waitFor();
  await screenshot(page, "help-dialog");
  await page.keyboard.press("Escape");

  await page.emulateMedia({ colorScheme: "dark" });
  await page.evaluate(() => document.querySelector("#main").scrollTo(0, 0));
  await screenshot(page, "dark-theme");
  await page.setViewportSize({ width: 420, height: 800 });
  await screenshot(page, "narrow-window");
  await page.getByRole("button", { name: "Show or hide the notebook list" }).click();
  await page.locator("#sidebar").waitFor();
  await screenshot(page, "narrow-window-notebook-list");
  await page.getByRole("button", { name: "Show or hide the notebook list" }).click();

  // --- Survives a reload (the URL names the notebook) -------------------------------------------------------
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.emulateMedia({ colorScheme: "light" });
  await page.reload();
  await page.locator("#conn[data-state=live]").waitFor({ timeout: 15_000 });
  await waitOutput(page, 2, "30");
  assert((await page.locator("#notebook-name").inputValue()) === "Browser test", "reload reopens the same notebook");

  // --- Delete a notebook (after confirming) ----------------------------------------------------------------
  await page.getByRole("button", { name: "New notebook" }).click();
  await page.waitForURL((url) => url.href !== notebookUrl);
  const doomed = page.url();
  await page.locator("#notebook-name").fill("Doomed");
  await page.locator("#notebook-name").press("Enter");
  await page.locator("#notebook-list li.current a", { hasText: "Doomed" }).waitFor();
  await page.getByRole("button", { name: "Delete notebook Doomed" }).click();
  await page.locator("#confirm-dialog").waitFor();
  await screenshot(page, "confirm-delete");
  await page.locator("#confirm-ok").click();
  await page.locator("#notebook-list a", { hasText: "Doomed" }).waitFor({ state: "detached" });
  assert(page.url() !== doomed, "left the deleted notebook");
  await page.goto(notebookUrl);
  await page.locator("#conn[data-state=live]").waitFor({ timeout: 15_000 });

  // --- Assistant panel ------------------------------------------------------------------------------------------
  // The assistant's backend is tested against a fake Anthropic server in the Rust suite; here
  // the browser gets a canned stream in the exact wire format, to check how the panel shows
  // streamed text, tool calls and their results.
  const chatPage = await context.newPage();
  watch(chatPage, "chat");
  await chatPage.route("**/api/config", async (route) => {
    const res = await route.fetch();
    await route.fulfill({ response: res, json: { ...(await res.json()), assistant_enabled: true } });
  });
  let chatRequest = null;
  await chatPage.route("**/api/chat/*", async (route) => {
    chatRequest = route.request().postDataJSON();
    const events = [
      ["turn_start", { turn: 1, max_turns: 10 }],
      ["text_start", {}],
      ["text_delta", { text: "I'll add a cell " }],
      ["text_delta", { text: "that doubles y." }],
      ["content_block_stop", {}],
      ["tool_start", { tool_id: "toolu_1", tool_name: "create_cell" }],
      ["tool_execute", { tool_name: "create_cell", tool_input: { type: "python", code: "z = y * 2" } }],
      ["tool_result", { tool_name: "create_cell", result: { cell_id: "c-123", status: "created" } }],
      ["turn_start", { turn: 2, max_turns: 10 }],
      ["text_start", {}],
      ["text_delta", { text: "Done: z is defined." }],
      ["content_block_stop", {}],
      ["done", {}],
    ];
    await route.fulfill({
      status: 200,
      headers: { "content-type": "text/event-stream" },
      body: events.map(([event, data]) => `data: ${JSON.stringify({ event, data })}\n\n`).join(""),
    });
  });
  await chatPage.goto(notebookUrl);
  await chatPage.getByRole("button", { name: "Show or hide the assistant" }).click();
  await chatPage.locator("#chat-input").fill("Add a cell that doubles y");
  await chatPage.keyboard.press("Enter");
  await chatPage.locator(".msg.assistant .msg-text", { hasText: "Done: z is defined." }).waitFor();
  assert(chatRequest?.messages?.[0]?.content === "Add a cell that doubles y", "chat request carries the conversation");
  assert((await chatPage.locator(".tool code").innerText()) === "create_cell", "tool call shown");
  await chatPage.locator(".tool summary").click(); // collapsed once the answer is complete
  assert((await chatPage.locator(".tool-result").innerText()).includes("c-123"), "tool result shown");
  await screenshot(chatPage, "assistant-panel");
  await chatPage.close();

  // --- Packages: a missing module offers its install, then the cell runs again ---------
  {
    const pkgPage = await context.newPage();
    watch(pkgPage, "packages");
    await pkgPage.goto(notebookUrl);
    await pkgPage.locator("#conn[data-state=live]").waitFor({ timeout: 15_000 });
    const n = await cellCount(pkgPage);
    await addPythonCellAtEnd(pkgPage);
    await setCode(pkgPage, n, "import rn_probe\nrn_probe.VALUE");
    await waitSaved(pkgPage);
    await pkgPage.keyboard.press("Control+Enter");
    await waitStatus(pkgPage, n, "error");
    const offer = cell(pkgPage, n).locator(".install-btn");
    await offer.waitFor();
    assert((await offer.innerText()) === "Install rn-probe", `install offer names the distribution: ${await offer.innerText()}`);
    await showCell(pkgPage, n);
    await screenshot(pkgPage, "install-offer");
    await offer.click();
    await pkgPage.locator('#packages li.package[data-name="rn-probe"]').waitFor();
    // Installed, then the cell runs again by itself.
    await waitOutput(pkgPage, n, "42");
    await waitStatus(pkgPage, n, "success");
    await pkgPage.locator('#packages li.package[data-name="rn-probe"][data-state="installed"]').waitFor();
    await screenshot(pkgPage, "installed-and-rerun");
    await pkgPage.close();
    log("package install from the ModuleNotFoundError offer");
  }

  // --- The environment banner: provisioning failed, pip's error and Retry -------------
  {
    const envPage = await context.newPage();
    watch(envPage, "environment");
    await envPage.goto(`${envBase}/#token=${envToken}`);
    await envPage.locator("#app").waitFor();
    const banner = envPage.locator("#env-banner[data-state=failed]");
    await banner.waitFor({ timeout: 60_000 });
    const text = await banner.innerText();
    assert(text.includes("could not be set up"), `banner says provisioning failed: ${text}`);
    assert(/No matching distribution|Could not find|pip/i.test(text), `banner shows pip's error: ${text}`);
    await banner.getByRole("button", { name: "Retry" }).waitFor();
    await screenshot(envPage, "environment-failed-banner");
    await banner.getByRole("button", { name: "Retry" }).click();
    // A retry provisions again (and fails again here); the banner comes back with the error.
    await envPage.locator("#env-banner[data-state=failed]").waitFor({ timeout: 60_000 });
    await envPage.close();
    log("environment banner: failure and retry");
  }
  await cellsFeatureScenarios(page, notebookUrl);
  await importExportScenario(context, notebookUrl); // export/import block at the end of this file
  await introspectionScenario(context, notebookUrl);
  await staleScenario(page);
  await coEditingScenario(browser, notebookUrl); // Yjs block at the end of this file

  const unexpected = consoleErrors.filter((e) => !/Failed to load resource/.test(e));
  assert(unexpected.length === 0, `no JavaScript errors: ${unexpected.join(" | ")}`);
  log("PASS");
  await browser.close();
} catch (err) {
  console.error("FAIL:", err.stack || err.message);
  if (consoleErrors.length) console.error("console errors:", consoleErrors.join("\n"));
  try {
    const pages = context.pages();
    if (pages.length) await pages[0].screenshot({ path: join(outDir, "failure.png"), fullPage: true });
  } catch {
    /* best effort */
  }
  await browser.close();
  process.exit(1);
}

// ===== Cells helper: markdown, moving cells, undo delete, notebook delete confirmation, =====
// ===== clearer errors, tables. Called once from the main flow above.                      =====

/** Cell ids on screen, in order. */
async function cellIds(page) {
  return page.locator("section.cell").evaluateAll((els) => els.map((e) => e.dataset.cellId));
}

/** Waits until the page shows the cells in `ids` order; the error says what it shows instead. */
async function waitOrder(p, ids, what) {
  await p
    .waitForFunction((want) => [...document.querySelectorAll("section.cell")].map((e) => e.dataset.cellId).join() === want.join(), ids, {
      timeout: 15_000,
    })
    .catch(async (err) => {
      throw new Error(`${what}: want ${ids.join()}, shows ${(await cellIds(p)).join()}: ${err.message}`);
    });
}

async function cellsFeatureScenarios(page, notebookUrl) {
  // A fresh notebook keeps positions simple.
  await page.getByRole("button", { name: "New notebook" }).click();
  await page.waitForURL((url) => url.href !== notebookUrl);
  await page.locator("#notebook-name").fill("Cells features");
  await page.locator("#notebook-name").press("Enter");
  await page.locator("#notebook-list li.current a", { hasText: "Cells features" }).waitFor();
  await page.waitForFunction(() => document.querySelectorAll("section.cell").length === 1);

  // --- Markdown cell: KaTeX renders, XSS is sanitized ------------------------------------------
  await page.getByRole("button", { name: "Add a markdown cell at the end" }).click();
  await page.waitForFunction(() => document.querySelectorAll("section.cell").length === 2);
  const md = cell(page, 1);
  assert(await md.evaluate((c) => c.classList.contains("markdown")), "the new cell is a markdown cell");
  // An empty new markdown cell opens in edit mode.
  await md.locator(".cm-content").waitFor({ state: "visible" });
  await md.locator(".cm-content").click();
  await page.keyboard.insertText([
    "# Heading **bold**",
    "",
    "Euler: $e^{i\\pi} + 1 = 0$ and `$HOME` stays code.",
    "",
    "$$\\int_0^1 x^2\\,dx$$",
    "",
    "<img src=x onerror=\"window.__xss = 1\"> <script>window.__xss = 2</script>",
    "<a href=\"javascript:window.__xss = 3\">bad link</a> [good](https://example.com)",
  ].join("\n"));
  await page.keyboard.press("Shift+Enter");
  await md.locator(".md-view h1", { hasText: "Heading" }).waitFor();
  await md.locator(".md-view .katex").first().waitFor();
  assert((await md.locator(".md-view .katex-display").count()) === 1, "display math rendered");
  assert((await md.locator(".md-view code", { hasText: "$HOME" }).count()) === 1, "dollars in code stay code");
  assert((await md.locator(".md-view script").count()) === 0, "no script element survives");
  assert((await md.locator(".md-view [onerror]").count()) === 0, "no event handler attribute survives");
  const badHref = await md.locator(".md-view a", { hasText: "bad link" }).getAttribute("href").catch(() => null);
  assert(!badHref || !/^javascript:/i.test(badHref), `javascript: link removed (${badHref})`);
  await md.locator(".md-view a", { hasText: "bad link" }).click().catch(() => {});
  await page.waitForTimeout(300);
  assert((await page.evaluate(() => window.__xss)) === undefined, "no markdown XSS ran");
  await waitSaved(page);
  await showCell(page, 1);
  await screenshot(page, "markdown-rendered");
  // Double-click edits; blur renders again; the text survives a reload.
  await md.locator(".md-view").dblclick();
  await md.locator(".cm-content").waitFor({ state: "visible" });
  await page.keyboard.press("ControlOrMeta+End");
  await page.keyboard.insertText("\n\nAdded *later*.");
  await cell(page, 0).locator(".cm-content").click();
  await md.locator(".md-view em", { hasText: "later" }).waitFor();
  await waitSaved(page);
  await page.reload();
  await page.locator("#conn[data-state=live]").waitFor({ timeout: 15_000 });
  await cell(page, 1).locator(".md-view em", { hasText: "later" }).waitFor();
  await cell(page, 1).locator(".md-view .katex").first().waitFor();

  // --- text/markdown output and a table with NaN/None, sorting and paging --------------------------
  await setCode(page, 0, [
    "import numpy as np, pandas as pd",
    "class Note:",
    "    def _repr_markdown_(self):",
    "        return '**from the kernel** $x^2$'",
    "display(Note())",
    "v = pd.Series([1/3] * 118 + [np.nan, None], dtype=object)",
    "t = pd.DataFrame({'k': range(120), 'v': v, 'w': [None] * 119 + ['z']})",
    "t['k'] = 119 - t['k']",
    "t",
  ].join("\n"));
  await page.keyboard.press("Control+Enter");
  await waitStatus(page, 0, "success");
  const out = cell(page, 0);
  await out.locator(".out-markdown strong", { hasText: "from the kernel" }).waitFor();
  await out.locator(".out-markdown .katex").first().waitFor();
  const table = out.locator("table.out-table");
  await table.waitFor();
  const note = await out.locator(".table-note").innerText();
  assert(/120 rows/.test(note) && /page 1 of 3/.test(note), `row count and pages shown (${note})`);
  assert((await table.locator("tbody tr").count()) === 50, "a page of 50 rows");
  const firstV = await table.locator("tbody tr").first().locator("td").nth(1).innerText();
  assert(firstV === "0.333333", `floats rounded to 6 significant digits (${firstV})`);
  // Sort by k ascending: the last rows (NaN and None in v) come first.
  await table.locator("th button", { hasText: "k" }).click();
  const firstRow = await table.locator("tbody tr").first().locator("td").allInnerTexts();
  assert(firstRow[0] === "0" && firstRow[1] === "None", `sorted by k, None shown (${firstRow})`);
  const second = await table.locator("tbody tr").nth(1).locator("td").allInnerTexts();
  assert(second[1] === "NaN", `NaN shown apart from None (${second})`);
  await out.getByRole("button", { name: "Next page" }).click();
  const pageTwo = await table.locator("tbody tr").first().locator("td").first().innerText();
  assert(pageTwo === "50", `second page starts at k = 50 (${pageTwo})`);
  await showCell(page, 0);
  await screenshot(page, "table-sorted-paged");

  // --- Moving cells: keyboard shortcut and drag handle; another tab follows ----------------------------
  await addPythonCellAtEnd(page);
  await setCode(page, 2, "third = 3");
  await waitSaved(page);
  const page2 = await page.context().newPage();
  await page2.goto(page.url());
  await page2.locator("#conn[data-state=live]").waitFor({ timeout: 15_000 });
  const [c0, c1, c2] = await cellIds(page);
  await cell(page, 2).locator(".cm-content").click();
  await page.keyboard.press("Control+Shift+ArrowUp");
  await waitOrder(page, [c0, c2, c1], "moved up by the shortcut");
  await waitOrder(page2, [c0, c2, c1], "the other tab follows the shortcut move");
  assert(await cell(page, 1).evaluate((c) => c.contains(document.activeElement)), "the moved cell keeps the focus");
  // Drag the markdown cell (now last) onto the upper half of the one above it.
  await showCell(page, 2);
  await cell(page, 2).locator(".drag-handle").dragTo(cell(page, 1), { targetPosition: { x: 100, y: 5 } });
  await waitOrder(page, [c0, c1, c2], "dragged up");
  await waitOrder(page2, [c0, c1, c2], "the other tab follows the drag");
  await screenshot(page, "cells-moved");

  // --- Clearer errors: "cell N" links, syntax error marked while typing, traceback line -----------------
  await setCode(page, 2, "x_dup = 1");
  await addPythonCellAtEnd(page);
  await setCode(page, 3, "x_dup = 2\ny = (1,");
  await waitSaved(page);
  await cell(page, 3).locator(".syntax-note", { hasText: "syntax error" }).waitFor();
  await cell(page, 3).locator(".cm-lintRange-error").first().waitFor();
  await screenshot(page, "syntax-error-marked");
  await setCode(page, 3, "x_dup = 2");
  await waitSaved(page);
  await cell(page, 3).locator(".syntax-note").waitFor({ state: "hidden" });
  const link = cell(page, 3).locator(".cell-error a.cell-link", { hasText: "cell 3" });
  await link.waitFor();
  await link.click();
  await page.waitForFunction(() => document.querySelectorAll("section.cell")[2].contains(document.activeElement));
  await setCode(page, 3, "def f():\n    return missing_name\nf()");
  await page.keyboard.press("Control+Enter");
  await waitStatus(page, 3, "error");
  await waitOutput(page, 3, "return missing_name");

  // --- Undo a cell delete ---------------------------------------------------------------------------------
  const before = await cellIds(page);
  const doomedCode = await code(page, 2);
  await cell(page, 2).getByRole("button", { name: "Delete cell" }).click();
  await page.waitForFunction((n) => document.querySelectorAll("section.cell").length === n - 1, before.length);
  await page.locator(".toast", { hasText: "Cell deleted" }).getByRole("button", { name: "Undo" }).click();
  await page.waitForFunction((n) => document.querySelectorAll("section.cell").length === n, before.length);
  const restored = cell(page, 2);
  assert((await restored.getAttribute("data-cell-id")) !== before[2], "undo re-creates the cell (new id)");
  assert((await code(page, 2)) === doomedCode, "with its code");
  assert(await restored.evaluate((c) => c.classList.contains("python")), "and its type, at its position");
  await page2.waitForFunction((n) => document.querySelectorAll("section.cell").length === n, before.length);
  await page2.close();

  // --- Deleting a notebook asks first; Cancel keeps it ----------------------------------------------------
  await page.getByRole("button", { name: "Delete this notebook" }).click();
  await page.locator("#confirm-dialog").waitFor();
  await page.keyboard.press("Escape");
  await page.locator("#confirm-dialog").waitFor({ state: "hidden" });
  assert((await page.locator("#notebook-list a", { hasText: "Cells features" }).count()) === 1, "cancel keeps the notebook");
  await page.getByRole("button", { name: "Delete this notebook" }).click();
  await page.locator("#confirm-ok").click();
  await page.locator("#notebook-list a", { hasText: "Cells features" }).waitFor({ state: "detached" });
  log("cells features: markdown, moves, undo, errors, tables");
}

// --- Export and import (helper D) ---------------------------------------------------------------
// The Download menu saves each format; the Import button's file picker and a file dropped on the
// page create notebooks and open them.

async function importExportScenario(context, notebookUrl) {
  const { readFile } = await import("node:fs/promises");
  const page = await context.newPage();
  watch(page, "transfer");
  await page.goto(notebookUrl);
  await page.locator("#conn[data-state=live]").waitFor({ timeout: 15_000 });
  const cellsBefore = await cellCount(page);
  const menuButton = page.getByRole("button", { name: "Download this notebook" });
  for (const [label, ext, check] of [
    ["Jupyter notebook (.ipynb)", ".ipynb", (text) => {
      const nb = JSON.parse(text);
      assert(nb.nbformat === 4 && nb.nbformat_minor === 5, "ipynb is nbformat 4.5");
      assert(nb.cells.length === cellsBefore, `ipynb has every cell (${nb.cells.length} vs ${cellsBefore})`);
    }],
    ["Python script, percent format (.py)", ".py", (text) => assert(text.split("\n# %%").length - 1 === cellsBefore, "one # %% per cell")],
    ["Web page (.html)", ".html", (text) => assert(text.startsWith("<!DOCTYPE html>") && !text.includes("<script"), "standalone html without scripts")],
  ]) {
    await menuButton.click();
    assert((await menuButton.getAttribute("aria-expanded")) === "true", "menu opens");
    if (ext === ".ipynb") await screenshot(page, "export-menu");
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.getByRole("menuitem", { name: label }).click(),
    ]);
    const name = download.suggestedFilename();
    assert(name === `Browser test${ext}`, `download named ${name}`);
    check(await readFile(await download.path(), "utf8"));
    assert(await page.locator("#export-menu").isHidden(), "menu closes after a choice");
  }

  // Import through the file picker.
  const ipynb = {
    nbformat: 4, nbformat_minor: 5,
    metadata: { kernelspec: { name: "python3", display_name: "Python 3", language: "python" } },
    cells: [
      { id: "m1", cell_type: "markdown", metadata: {}, source: ["# Imported\n", "from Jupyter"] },
      { id: "c1", cell_type: "code", metadata: {}, execution_count: null, outputs: [], source: "%matplotlib inline\nimport math" },
      { id: "c2", cell_type: "code", metadata: {}, execution_count: null, outputs: [], source: "a = 41\na + 1" },
    ],
  };
  const before = page.url();
  const [chooser] = await Promise.all([
    page.waitForEvent("filechooser"),
    page.getByRole("button", { name: "Import a notebook" }).click(),
  ]);
  await chooser.setFiles({ name: "Imported demo.ipynb", mimeType: "application/json", buffer: Buffer.from(JSON.stringify(ipynb)) });
  await page.waitForURL((url) => url.href !== before && /\/notebooks\/[^/]+$/.test(url.pathname));
  await page.locator("#notebook-list li.current a", { hasText: "Imported demo" }).waitFor();
  await waitCount(page.locator("section.cell"), 3, "imported cells");
  await page.locator(".toast", { hasText: "IPython magics" }).waitFor();
  assert((await code(page, 1)).includes("# [import]"), "the magic cell is flagged");
  await setCode(page, 2, "a = 41\na + 1");
  await page.keyboard.press("Control+Enter");
  await waitOutput(page, 2, "42");
  await screenshot(page, "imported-notebook");

  // Import by dropping a .py file on the page.
  const dropped = page.url();
  await page.evaluate(() => {
    const dt = new DataTransfer();
    dt.items.add(new File(["# %%\nb = 2\n\n# %% [markdown]\n# dropped\n"], "Dropped script.py", { type: "text/x-python" }));
    document.querySelector("#main").dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
  });
  await page.waitForURL((url) => url.href !== dropped);
  await page.locator("#notebook-list li.current a", { hasText: "Dropped script" }).waitFor();
  await waitCount(page.locator("section.cell"), 2, "dropped script cells");
  await screenshot(page, "dropped-import");
  await page.close();
}
// ==== Completion, docs and the variables panel (helper C) ==================================// The notebook's first cells ran `x = 2` and `y = x + 1`, so the kernel holds x and y.
async function introspectionScenario(context, notebookUrl) {
  const page = await context.newPage();
  watch(page, "introspect");
  await page.goto(notebookUrl);
  await page.locator("#conn[data-state=live]").waitFor({ timeout: 15_000 });
  await waitOutput(page, 2, "30");

  // Ctrl+Space completes an attribute of a live value; Enter takes the highlighted one.
  const n = await addPythonCellAtEnd(page);
  await setCode(page, n, "y.bit_len");
  await page.keyboard.press("Control+Space");
  const option = page.locator(".cm-tooltip-autocomplete li", { hasText: "bit_length" });
  await option.waitFor({ timeout: 30_000 });
  await screenshot(page, "completion-popup");
  // CodeMirror ignores Enter for a moment after the popup opens (its interactionDelay), so
  // a key pressed while the popup is still appearing types instead of picking.
  await page.waitForTimeout(200);
  await page.keyboard.press("Enter");
  await page.waitForFunction(
    (i) => window.__cellCode(i)?.trim() === "y.bit_length",
    n,
  );
  // Tab after a dot completes too.
  await page.keyboard.insertText("\nx.as_integer_r");
  await page.keyboard.press("Tab");
  await page.locator(".cm-tooltip-autocomplete li", { hasText: "as_integer_ratio" }).waitFor({ timeout: 30_000 });
  await page.waitForTimeout(200);
  await page.keyboard.press("Enter");
  await page.waitForFunction(
    (i) => window.__cellCode(i)?.trim() === "y.bit_length\nx.as_integer_ratio",
    n,
  );
  // Shift+Tab on a name shows its signature and docstring.
  await page.mouse.move(5, 400); // hover docs elsewhere must not replace it
  await page.keyboard.press("Shift+Tab");
  const docs = page.locator(".doc-tooltip");
  await docs.waitFor({ timeout: 30_000 });
  assert((await docs.innerText()).includes("as_integer_ratio"), "docs tooltip names the method");
  await screenshot(page, "docs-tooltip");

  // The variables panel lists x with its defining cell and the cells that read it.
  await page.getByRole("button", { name: "Show or hide the variables" }).click();
  const row = page.locator("#variables tr[data-name=x]");
  await row.waitFor({ timeout: 15_000 });
  assert((await row.locator(".var-type").innerText()) === "int", "x is an int");
  assert((await row.locator(".var-summary").innerText()) === "2", "x's summary is its value");
  assert((await row.locator(".var-readers .var-cell").count()) >= 1, "the cell reading x is listed");
  await screenshot(page, "variables-panel");
  // Clicking the defining cell jumps to it.
  await row.locator("td:nth-child(3) .var-cell").click();
  await page.waitForFunction(() => document.activeElement?.closest("section.cell") === document.querySelectorAll("section.cell")[0]);
  await page.close();
}
// ==== end of helper C's block ====================================================================
// ===== Stale cells, Run all / Run stale / Restart and run all, lazy mode (helper A) =====

/** Waits until cell `n` shows `status` (any status, including stale). */
async function waitShownStatus(page, n, status, timeout = RUN_TIMEOUT) {
  const el = await cell(page, n).elementHandle();
  await page.waitForFunction(([c, s]) => c.dataset.status === s, [el, status], { timeout }).catch(async (err) => {
    const now = await el.evaluate((c) => c.dataset.status);
    throw new Error(`cell ${n} never showed ${status} (now ${now}): ${err.message}`);
  });
}

async function staleScenario(page) {
  const before = page.url();
  await page.getByRole("button", { name: "New notebook" }).click();
  await page.waitForURL((url) => /\/notebooks\/[^/]+$/.test(url.pathname) && url.href !== before);
  await page.locator("#notebook-name").fill("Stale test");
  await page.locator("#notebook-name").press("Enter");
  await page.locator("#notebook-list li.current a", { hasText: "Stale test" }).waitFor();
  // A new notebook comes with one empty Python cell.
  await page.waitForFunction(() => document.querySelectorAll("section.cell").length === 1);
  await setCode(page, 0, "a = 3");
  await addPythonCellAtEnd(page);
  await setCode(page, 1, "b = a * 2\nb");
  await waitSaved(page);
  assert(!(await page.locator("#lazy-toggle").isChecked()), "lazy mode is off by default");

  // "Run all" runs every cell.
  await page.getByRole("button", { name: "Run all cells", exact: true }).click();
  await waitStatus(page, 0, "success");
  await waitOutput(page, 1, "6");
  await waitStatus(page, 1, "success");
  log("run all: 6");

  // Editing a cell makes it and its dependent stale; the old output stays, dimmed.
  await setCode(page, 0, "a = 4");
  await waitSaved(page);
  await waitShownStatus(page, 0, "stale", 15_000);
  await waitShownStatus(page, 1, "stale", 15_000);
  assert((await cell(page, 1).locator(".status").innerText()).includes("stale"), "status label says stale");
  assert((await cell(page, 1).locator(".cell-result").innerText()).includes("6"), "stale output kept");
  const opacity = await cell(page, 1).locator(".cell-result").evaluate((e) => Number(getComputedStyle(e).opacity));
  assert(opacity < 1, `stale output is dimmed (opacity ${opacity})`);
  await screenshot(page, "stale-cells");

  // "Run stale" brings both up to date.
  await page.getByRole("button", { name: "Run stale cells", exact: true }).click();
  await waitOutput(page, 1, "8");
  await waitStatus(page, 1, "success");
  log("run stale: 8");

  // Lazy mode: running the first cell marks the second stale instead of running it.
  await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/lazy") && r.request().method() === "PUT" && r.ok()),
    page.locator("#lazy-toggle").check(),
  ]);
  await setCode(page, 0, "a = 5");
  await waitSaved(page);
  await cell(page, 0).locator(".cm-content").click();
  await page.keyboard.press("ControlOrMeta+Enter");
  await waitStatus(page, 0, "success");
  await waitShownStatus(page, 1, "stale", 15_000);
  assert((await cell(page, 1).locator(".cell-result").innerText()).includes("8"), "lazy: the dependent did not run");
  log("lazy: dependent stale, not run");

  // "Restart & run all" (after confirming) runs everything in a fresh kernel.
  await page.getByRole("button", { name: "Restart the kernel and run all cells", exact: true }).click();
  await page.locator("#confirm-dialog").waitFor();
  await page.locator("#confirm-ok").click();
  await waitOutput(page, 1, "10");
  await waitStatus(page, 1, "success");
  // The lazy setting is the notebook's: a reload shows it.
  await page.reload();
  await page.locator("#conn[data-state=live]").waitFor({ timeout: 15_000 });
  await page.waitForFunction(() => document.querySelector("#lazy-toggle")?.checked === true);
  await screenshot(page, "restart-and-run-all");
  log("restart and run all: 10; lazy persisted");
}

// ===== end of helper A's block =====

// ==== helper H's block: co-editing cell text with Yjs ==============================================
/** Two users in two browser contexts type into the same cell at the same time; both see both. */
/** Creates an invite to the open notebook as its owner (from the owner's page). */
async function createInvite(ownerPage, notebookId, role) {
  const invite = await ownerPage.evaluate(
    async ([id, r]) => {
      const res = await fetch(`/api/notebooks/${id}/invites`, {
        method: "POST",
        headers: { Authorization: `Bearer ${localStorage.getItem("rn.token")}`, "Content-Type": "application/json" },
        body: JSON.stringify({ role: r }),
      });
      return { status: res.status, body: await res.json() };
    },
    [notebookId, role],
  );
  assert(invite.status === 201 && invite.body.code, `invite created: ${JSON.stringify(invite)}`);
  return invite.body.code;
}

/** A new browser context signed in as another user, who accepts `code` and opens the notebook. */
async function joinByInvite(browser, name, userToken, code, notebookUrl) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await ctx.addInitScript(cellCodeScript);
  const p = await ctx.newPage();
  watch(p, name);
  await p.goto(`${base}/#token=${userToken}`);
  await p.locator("#app").waitFor();
  await p.goto("about:blank");
  await p.goto(`${base}/#invite=${code}`);
  await p.locator("#app").waitFor();
  await p.waitForURL((url) => url.pathname === new URL(notebookUrl).pathname, { timeout: 15_000 });
  await p.locator("#conn[data-state=live]").waitFor({ timeout: 15_000 });
  return p;
}

async function coEditingScenario(browser, notebookUrl) {
  log("co-editing: two users type into one cell; a viewer cannot");
  const notebookId = new URL(notebookUrl).pathname.split("/").pop();
  const ownerCtx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await ownerCtx.addInitScript(cellCodeScript);
  const a = await ownerCtx.newPage();
  watch(a, "coeditOwner");
  // The owner's socket goes through a route the test can cut, to type while disconnected.
  const outage = { blocked: false, drop: () => {} };
  await a.routeWebSocket(/\/api\/ws\//, (ws) => {
    if (outage.blocked) {
      ws.close({ code: 4000, reason: "test outage" });
      return;
    }
    const server = ws.connectToServer();
    outage.drop = () => {
      ws.close({ code: 4000, reason: "test outage" });
      server.close();
    };
  });
  await a.goto(`${base}/#token=${token}`);
  await a.locator("#app").waitFor();
  await a.goto(notebookUrl);
  await a.locator("#conn[data-state=live]").waitFor({ timeout: 15_000 });
  const b = await joinByInvite(browser, "coeditEditor", editorToken, await createInvite(a, notebookId, "editor"), notebookUrl);
  const pages = [a, b];
  await addPythonCellAtEnd(a);
  const n = (await cellCount(a)) - 1;
  await b.waitForFunction((i) => document.querySelectorAll("section.cell").length === i + 1, n, { timeout: 15_000 });
  for (const p of pages) {
    await cell(p, n).locator(".cm-editor[data-collab=on]").waitFor({ timeout: 15_000 });
    await cell(p, n).locator(".cm-content").click();
  }
  // Both type at once, key by key.
  await Promise.all([
    a.keyboard.type("alpha = 1\n", { delay: 40 }),
    b.keyboard.type("beta = 2\n", { delay: 40 }),
  ]);
  const both = (i) => {
    const t = window.__cellCode(i) || "";
    return t.includes("alpha = 1") && t.includes("beta = 2");
  };
  for (const p of pages) await p.waitForFunction(both, n, { timeout: 15_000 });
  const texts = await Promise.all(pages.map((p) => code(p, n)));
  assert(texts[0] === texts[1], `both tabs show the same text: ${JSON.stringify(texts)}`);
  // Each tab shows the other's caret in the cell (remote cursors).
  for (const p of pages) {
    await cell(p, n).locator(".cm-ySelectionCaret").first().waitFor({ state: "attached", timeout: 15_000 });
  }
  await screenshot(a, "coedit-tab-a");
  await screenshot(b, "coedit-tab-b");

  log("co-editing: what was typed while disconnected merges on reconnect");
  outage.blocked = true;
  outage.drop();
  await a.locator("#conn:not([data-state=live])").waitFor({ timeout: 15_000 });
  await cell(a, n).locator(".cm-content").click();
  await a.keyboard.press("Control+Home");
  await a.keyboard.type("# typed offline\n");
  await cell(b, n).locator(".cm-content").click();
  await b.keyboard.press("Control+End");
  await b.keyboard.type("# typed meanwhile");
  outage.blocked = false;
  await a.evaluate(() => window.dispatchEvent(new Event("online")));
  await a.locator("#conn[data-state=live]").waitFor({ timeout: 15_000 });
  const merged = (i) => {
    const t = window.__cellCode(i) || "";
    return ["alpha = 1", "beta = 2", "# typed offline", "# typed meanwhile"].every((s) => t.includes(s));
  };
  for (const p of pages) await p.waitForFunction(merged, n, { timeout: 15_000 });
  await screenshot(a, "coedit-merged-after-reconnect");
  // The room stored the merged text: a fresh load shows it.
  await a.reload();
  await a.locator("#conn[data-state=live]").waitFor({ timeout: 15_000 });
  await a.waitForFunction(merged, n, { timeout: 15_000 });

  // A viewer sees the notebook and the co-edited text live, but the notebook is not editable.
  const v = await joinByInvite(browser, "viewer", viewerToken, await createInvite(a, notebookId, "viewer"), notebookUrl);
  await v.waitForFunction(both, n, { timeout: 15_000 });
  assert(await v.locator("#notebook").evaluate((e) => e.inert), "the viewer's notebook is inert");
  await v.keyboard.type("hacked = 1");
  await cell(a, n).locator(".cm-content").click();
  await a.keyboard.press("End");
  await a.keyboard.type("# owner");
  await v.waitForFunction((i) => (window.__cellCode(i) || "").includes("# owner"), n, { timeout: 15_000 });
  const after = await code(v, n);
  assert(!after.includes("hacked"), `the viewer could not type: ${after}`);
  await screenshot(v, "viewer-read-only");
  for (const p of [...pages, v]) await p.context().close();
}
// ==== end of helper H's block =====================================================================
