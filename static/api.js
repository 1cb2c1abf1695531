// REST client: adds the bearer token, parses JSON, turns {"detail"} errors into ApiError.
import { auth } from "./auth.js";

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
  }
}

/** Listeners for 401s (the app sends the user back to sign-in). */
export const unauthorized = new EventTarget();

export async function request(method, path, body) {
  const headers = { Accept: "application/json" };
  const token = await auth.token();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new ApiError(0, "The server cannot be reached.");
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  if (!res.ok) {
    if (res.status === 401) unauthorized.dispatchEvent(new Event("unauthorized"));
    throw new ApiError(res.status, data?.detail || (typeof data === "string" ? data : ""));
  }
  return data;
}

const nb = (id) => `/api/notebooks/${encodeURIComponent(id)}`;
const cell = (id, cellId) => `${nb(id)}/cells/${encodeURIComponent(cellId)}`;

export const api = {
  config: () => request("GET", "/api/config"),
  environment: () => request("GET", "/api/environment"),
  retryEnvironment: () => request("POST", "/api/environment/retry"),
  listNotebooks: () => request("GET", "/api/notebooks"),
  createNotebook: (name) => request("POST", "/api/notebooks", name ? { name } : {}),
  getNotebook: (id) => request("GET", nb(id)),
  renameNotebook: (id, name) => request("PUT", `${nb(id)}/name`, { name }),
  setDatabase: (id, connection_string) => request("PUT", `${nb(id)}/db`, { connection_string }),
  deleteNotebook: (id) => request("DELETE", nb(id)),
  createCell: (id, type, afterCellId, code, beforeCellId) =>
    request("POST", `${nb(id)}/cells`, {
      type,
      after_cell_id: afterCellId ?? undefined,
      before_cell_id: beforeCellId ?? undefined,
      code,
    }),
  updateCell: (id, cellId, code, expectedRevision) =>
    request("PUT", cell(id, cellId), { code, expected_revision: expectedRevision }),
  setResultName: (id, cellId, resultName) =>
    request("PUT", cell(id, cellId), { result_name: resultName }),
  deleteCell: (id, cellId) => request("DELETE", cell(id, cellId)),
  /** where: {before_cell_id} or {after_cell_id}. */
  moveCell: (id, cellId, where) => request("POST", `${cell(id, cellId)}/move`, where),
  runCell: (id, cellId) => request("POST", `${cell(id, cellId)}/run`),
  interrupt: (id) => request("POST", `${nb(id)}/interrupt`),
  restart: (id) => request("POST", `${nb(id)}/restart`),
  installPackage: (id, name, version) => request("POST", `${nb(id)}/packages`, { name, version }),
  runAll: (id, onlyStale) => request("POST", `${nb(id)}/run${onlyStale ? "?only=stale" : ""}`),
  setLazy: (id, lazy) => request("PUT", `${nb(id)}/lazy`, { lazy }),
  listSchedules: (id) => request("GET", `${nb(id)}/schedules`),
  createSchedule: (id, cron, timezone) => request("POST", `${nb(id)}/schedules`, { cron, timezone }),
  deleteSchedule: (id, scheduleId) => request("DELETE", `${nb(id)}/schedules/${encodeURIComponent(scheduleId)}`),
  listRuns: (id) => request("GET", `${nb(id)}/runs`),
  /** trigger: "manual" from the Run now button. */
  startRun: (id, trigger) => request("POST", `${nb(id)}/runs`, { trigger }),
  /** The run's snapshot rendered as an HTML page (text). */
  runSnapshotHtml: (id, runId) => request("GET", `${nb(id)}/runs/${encodeURIComponent(runId)}?format=html`),
};
