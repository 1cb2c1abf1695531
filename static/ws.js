// The live connection to one notebook: authenticate in-band, relay broadcasts, reconnect
// with backoff, and forward fresh Clerk tokens as refresh_auth.
import { auth } from "./auth.js";

const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000];

export class LiveConnection {
  /**
   * handlers: onEvent(msg) for each broadcast, onState(state, detail) with state one of
   * "connecting" | "live" | "reconnecting" | "offline", onReady() after each successful
   * (re)authentication (the caller re-fetches: it may have missed broadcasts), onFatal(msg).
   */
  constructor(notebookId, handlers) {
    this.notebookId = notebookId;
    this.handlers = handlers;
    this.socket = null;
    this.attempt = 0;
    this.closed = false;
    this.retryTimer = null;
    this.unsubscribe = auth.onRefresh((token) => this.send({ type: "refresh_auth", token }));
    this.onOnline = () => this.reconnectNow();
    window.addEventListener("online", this.onOnline);
    this.connect();
  }

  get live() {
    return this.socket?.readyState === WebSocket.OPEN && this.authenticated;
  }

  connect() {
    if (this.closed) return;
    this.authenticated = false;
    this.handlers.onState(this.attempt ? "reconnecting" : "connecting");
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const url = `${scheme}://${location.host}/api/ws/notebooks/${encodeURIComponent(this.notebookId)}`;
    const socket = new WebSocket(url);
    this.socket = socket;
    socket.onopen = async () => {
      const token = await auth.token();
      if (socket === this.socket) socket.send(JSON.stringify({ type: "authenticate", token }));
    };
    socket.onmessage = (ev) => {
      if (socket !== this.socket) return;
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (msg.type === "authenticated") {
        this.authenticated = true;
        this.attempt = 0;
        this.handlers.onState("live");
        this.handlers.onReady();
      } else if (msg.type === "auth_refreshed") {
        // Nothing to do: the session keeps going with the new token.
      } else if (msg.type === "error") {
        this.lastError = msg.message;
        if (this.authenticated) this.handlers.onEvent(msg);
      } else {
        this.handlers.onEvent(msg);
      }
    };
    socket.onclose = (ev) => {
      if (socket !== this.socket) return;
      this.socket = null;
      this.authenticated = false;
      this.onClosed(ev.code, ev.reason || this.lastError);
    };
  }

  onClosed(code, reason) {
    if (this.closed) return;
    if (code === 1008) {
      // Auth failed or the notebook is not ours: retrying with the same token cannot help.
      this.handlers.onState("offline", reason || "not allowed");
      this.handlers.onFatal?.(reason || "The live connection was refused.");
      return;
    }
    // 4001 (token expired): the next connect asks auth.token() for a fresh one.
    // 1013 (too slow) and 1001 (server going away): reconnect; onReady re-fetches.
    const delay = code === 4001 ? 0 : BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    // Jitter so many tabs do not hammer a restarting server in lockstep.
    const wait = Math.round(delay * (0.8 + Math.random() * 0.4));
    this.attempt += 1;
    this.handlers.onState("reconnecting", wait);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), wait);
  }

  /** Skips the backoff wait (the browser came back online, or the user clicked). */
  reconnectNow() {
    if (this.closed || this.socket) return;
    clearTimeout(this.retryTimer);
    this.connect();
  }

  send(msg) {
    if (this.live) this.socket.send(JSON.stringify(msg));
  }

  close() {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.unsubscribe();
    window.removeEventListener("online", this.onOnline);
    if (this.socket) {
      const socket = this.socket;
      this.socket = null;
      socket.close(1000, "bye");
    }
  }
}
