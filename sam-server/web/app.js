// Shared by every page: API calls with JSON errors, the header, escaping.

/** An API error: the status and the `{error, message, field}` body. */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} message
   * @param {string | undefined} code
   * @param {string | undefined} field
   */
  constructor(status, message, code, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

/**
 * The landing page's note for `?signin=<reason>`.
 * @type {Record<string, string>}
 */
export const SIGNIN_NOTES = {
  declined: "Sign-in was cancelled at GitHub.",
  expired: "Your GitHub sign-in has expired: sign in again.",
  refused: "This SAM deployment is limited to the GitHub users and organizations its operator listed. Ask the operator to add you.",
};

/**
 * The note explaining a private GitHub App, or null for a public one.
 * @param {{ public: boolean }} install
 * @returns {string | null}
 */
export function privateAppNote(install) {
  return install.public ? null : "This deployment's GitHub App is private: only the account that owns it can install it. To use SAM with another account or organization, ask the operator.";
}

/**
 * Calls the API; a non-2xx answer throws an {@link ApiError}.
 * @param {string} path
 * @param {{ method?: string, body?: unknown, headers?: Record<string, string> }} [options]
 * @returns {Promise<any>} the JSON answer, or null for 204
 */
export async function api(path, options = {}) {
  /** @type {Record<string, string>} */
  const headers = { ...options.headers };
  let body = options.body;
  if (body !== undefined && typeof body !== "string") {
    body = JSON.stringify(body);
    headers["content-type"] = "application/json";
  }
  const response = await fetch(path, {
    method: options.method,
    credentials: "same-origin",
    headers,
    body: /** @type {string | undefined} */ (body),
  });
  if (response.status === 204) return null;
  let data = null;
  try { data = await response.json(); } catch { data = null; }
  if (!response.ok) {
    // The GitHub sign-in died, or the deployment no longer admits the user:
    // the session is over, and the landing page says why.
    const over = { signin_required: "expired", not_allowed: "refused" }[data && data.error];
    if (over && path !== "/api/auth/me") {
      location.href = `/?signin=${over}`;
      return new Promise(() => {});
    }
    throw new ApiError(
      response.status,
      (data && data.message) || `Request failed (${response.status})`,
      data && data.error,
      data && data.field,
    );
  }
  return data;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  const s = Math.round((Date.now() - d.getTime()) / 1000);
  if (s < 60) return "just now";
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return d.toLocaleString();
}

export const REASONS = {
  user: "By you", provisioning: "Provisioning", provider_error: "Provider error", provision_timeout: "Provisioning timed out",
  idle_timeout: "Idle timeout", agent_unreachable: "Agent unreachable", server_gone: "Server deleted outside SAM",
};

// The reason shown under a status: a running workspace got there by
// provisioning, which reads better as "Ready".
export function reasonText(ws) {
  if (ws.status === "running" && ws.statusReason === "provisioning") return "Ready";
  return REASONS[ws.statusReason] || ws.statusReason;
}

export function statusBadge(status) {
  return el("span", { class: `status ${status}` }, status);
}

// Renders the header and returns the signed-in user, or sends the visitor to
// the landing page.
export async function requireUser(current) {
  let me;
  try { me = await api("/api/auth/me"); } catch (e) {
    if (e.status === 401) { location.href = "/"; return new Promise(() => {}); }
    throw e;
  }
  renderHeader(me, current);
  return me;
}

export function renderHeader(me, current) {
  const links = [["/", "Workspaces"], ["/workspaces/new", "New workspace"], ["/settings", "Settings"]];
  const header = el("header", { class: "top" }, el("div", { class: "inner" },
    el("a", { class: "brand", href: "/" }, "SAM"),
    el("nav", { "aria-label": "Main" }, links.map(([href, label]) =>
      el("a", { href, "aria-current": href === current ? "page" : false }, label))),
    me ? el("div", { class: "who" },
      me.avatarUrl ? el("img", { src: me.avatarUrl, alt: "", onerror: (e) => e.target.remove() }) : null,
      el("span", {}, me.login),
      el("button", { type: "button", onclick: signOut }, "Sign out")) : null));
  document.body.prepend(header);
}

async function signOut() {
  try { await api("/api/auth/logout", { method: "POST" }); } finally { location.href = "/"; }
}

export function showError(container, error) {
  container.replaceChildren(el("div", { class: "notice bad", role: "alert" }, error.message || String(error)));
}
