// Who the user is: a local-mode token kept in localStorage, or a Clerk session.
// Everything else asks `auth.token()` for a current token and never stores one itself.

const STORAGE_KEY = "rn.token";
const CLERK_REFRESH_MS = 50_000; // Clerk session tokens live 60 s; refresh well before.

class Auth {
  constructor() {
    this.mode = "local";
    this.clerk = null;
    this.current = null;
    this.listeners = new Set();
    this.timer = null;
  }

  /** Reads the config and any token; returns true when signed in. */
  async init(config) {
    this.mode = config.auth_mode;
    if (this.mode === "clerk") return this.initClerk(config.clerk_publishable_key);
    // The sign-in URL carries the token in the fragment (never sent to the server in logs):
    // keep it, then strip it so it is not bookmarked or shared by accident.
    const match = location.hash.match(/(?:^#|&)token=([^&]+)/);
    if (match) {
      this.setLocalToken(decodeURIComponent(match[1]));
      history.replaceState(null, "", location.pathname + location.search);
    }
    this.current = localStorage.getItem(STORAGE_KEY);
    if (this.current && tokenExpired(this.current)) {
      this.signOutLocal();
      this.expiredNotice = true;
    }
    return Boolean(this.current);
  }

  setLocalToken(token) {
    localStorage.setItem(STORAGE_KEY, token.trim());
    this.current = token.trim();
  }

  signOutLocal() {
    localStorage.removeItem(STORAGE_KEY);
    this.current = null;
  }

  /** The token for the next request. */
  async token() {
    if (this.mode === "clerk" && this.clerk?.session) {
      this.current = await this.clerk.session.getToken();
    }
    return this.current;
  }

  /** Called with each fresh token (the WebSocket forwards it as refresh_auth). */
  onRefresh(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  async signOut() {
    clearInterval(this.timer);
    if (this.mode === "clerk" && this.clerk) await this.clerk.signOut();
    this.signOutLocal();
  }

  // --- Clerk ---------------------------------------------------------------------------
  //
  // ClerkJS is loaded from the instance's Frontend API, as Clerk documents for script tags:
  // the host is encoded in the publishable key. It is not vendored because clerk-js 6 loads
  // its UI components and lazy chunks from Clerk's servers anyway (and the sign-in itself
  // talks to Clerk), so a vendored copy would still not work offline.

  async initClerk(publishableKey) {
    if (!publishableKey) throw new Error("The server is in Clerk mode but has no publishable key.");
    await loadClerk(publishableKey);
    this.clerk = window.Clerk;
    await this.clerk.load();
    if (!this.clerk.user) return false;
    this.current = await this.clerk.session.getToken();
    this.timer = setInterval(() => this.refreshClerk(), CLERK_REFRESH_MS);
    return true;
  }

  async refreshClerk() {
    try {
      const token = await this.clerk.session?.getToken({ skipCache: true });
      if (!token) return;
      this.current = token;
      for (const fn of this.listeners) fn(token);
    } catch (err) {
      console.warn("token refresh failed", err);
    }
  }

  /** Mounts Clerk's sign-in component; the page reloads once signed in. */
  mountClerkSignIn(el) {
    this.clerk.mountSignIn(el, { forceRedirectUrl: location.href });
    this.clerk.addListener(({ user }) => {
      if (user) location.reload();
    });
  }
}

/** The Frontend API host is base64 in the key: pk_test_<base64("host$")>. */
export function clerkFrontendApi(publishableKey) {
  const encoded = publishableKey.split("_").slice(2).join("_");
  return atob(encoded).replace(/\$$/, "");
}

function loadClerk(publishableKey) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = `https://${clerkFrontendApi(publishableKey)}/npm/@clerk/clerk-js@6/dist/clerk.browser.js`;
    script.async = true;
    script.crossOrigin = "anonymous";
    script.dataset.clerkPublishableKey = publishableKey;
    script.onload = resolve;
    script.onerror = () => reject(new Error(`Could not load Clerk's sign-in script from ${new URL(script.src).host}. This server signs users in with Clerk, so the browser must be able to reach it.`));
    document.head.append(script);
  });
}

/** True when a JWT's exp is in the past (no signature check: the server does that). */
function tokenExpired(token) {
  try {
    const payload = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    return typeof payload.exp === "number" && payload.exp * 1000 < Date.now();
  } catch {
    return false; // Not a JWT we can read; let the server decide.
  }
}

export const auth = new Auth();
