import { api, el, when, reasonText, statusBadge, renderHeader, showError, SIGNIN_NOTES } from "/assets/app.js";

const main = document.getElementById("main");
let me = null;
try { me = await api("/api/auth/me"); } catch (e) { if (e.status !== 401 && e.status !== 403) { showError(main, e); } }

if (!me) {
  renderHeader(null, "/");
  const params = new URLSearchParams(location.search);
  main.replaceChildren(el("section", { class: "hero" },
    el("h1", {}, "Disposable cloud workspaces, a terminal in your browser"),
    el("p", {}, "Pick a repository and SAM boots a VM on your own Hetzner account, builds its devcontainer and opens a shell. Idle workspaces stop themselves."),
    SIGNIN_NOTES[params.get("signin") || ""] ? el("div", { class: "notice", id: "signin-note" }, SIGNIN_NOTES[params.get("signin") || ""]) : null,
    el("a", { class: "button primary", href: "/api/auth/github" }, "Sign in with GitHub")));
} else {
  renderHeader(me, "/");
  const rows = new Map();
  const tbody = el("tbody");
  const table = el("table", { class: "responsive" },
    el("thead", {}, el("tr", {}, ["Name", "Status", "Repository", "Size", "Location", "Last activity", ""].map((h) => el("th", { scope: "col" }, h)))),
    tbody);
  const empty = el("div", { class: "empty" }, el("p", {}, "No workspaces yet."), el("a", { class: "button primary", href: "/workspaces/new" }, "Create your first workspace"));
  const message = el("div");
  main.replaceChildren(el("div", { class: "row" }, el("h1", {}, "Workspaces"), el("span", { class: "spacer" }), el("a", { class: "button primary", href: "/workspaces/new" }, "New workspace")), message, el("div", { class: "panel" }, table, empty));

  const confirmDialog = el("dialog", { "aria-labelledby": "confirm-title" });
  document.body.append(confirmDialog);
  function confirmDelete(ws) {
    return new Promise((resolve) => {
      confirmDialog.replaceChildren(
        el("h2", { id: "confirm-title" }, `Delete ${ws.name}?`),
        el("p", {}, "The server and everything on it are deleted. This cannot be undone."),
        el("div", { class: "actions" },
          el("button", { type: "button", onclick: () => { confirmDialog.close(); resolve(false); } }, "Cancel"),
          el("button", { type: "button", class: "danger", onclick: () => { confirmDialog.close(); resolve(true); } }, "Delete")));
      confirmDialog.showModal();
    });
  }

  async function act(ws, what) {
    message.replaceChildren();
    try {
      if (what === "open") {
        const access = await api("/api/terminal/token", { method: "POST", body: { workspaceId: ws.id } });
        window.open(access.url, "_blank", "noopener");
        return;
      }
      if (what === "delete") {
        if (!(await confirmDelete(ws))) return;
        render(await api(`/api/workspaces/${ws.id}`, { method: "DELETE" }));
        return;
      }
      render(await api(`/api/workspaces/${ws.id}/${what}`, { method: "POST" }));
    } catch (e) { showError(message, e); }
  }

  // The stream and the answers to this page's own requests race: a
  // delete's answer ("deleting") can arrive after the stream said the
  // workspace is gone, a stop's after the stream said "stopped". A
  // workspace once removed never comes back, and an older state never
  // replaces a newer one.
  const gone = new Set();
  const shownAt = new Map();

  function render(ws) {
    if (gone.has(ws.id)) return;
    const at = Date.parse(ws.updatedAt);
    if (at < (shownAt.get(ws.id) ?? -Infinity)) return;
    shownAt.set(ws.id, at);
    const actions = el("div", { class: "actions" },
      ws.status === "running" ? el("button", { type: "button", class: "primary", onclick: () => act(ws, "open") }, "Open Terminal") : null,
      ["running", "creating"].includes(ws.status) ? el("button", { type: "button", onclick: () => act(ws, "stop") }, "Stop") : null,
      ["stopped", "error"].includes(ws.status) ? el("button", { type: "button", onclick: () => act(ws, "restart") }, "Restart") : null,
      ws.status !== "deleting" ? el("button", { type: "button", class: "danger", onclick: () => act(ws, "delete") }, "Delete") : null);
    const reason = reasonText(ws);
    const row = el("tr", { "data-id": ws.id },
      el("td", { "data-label": "Name" }, el("a", { href: `/workspaces/${ws.id}` }, ws.name)),
      el("td", { "data-label": "Status" }, statusBadge(ws.status), el("div", { class: "hint" }, reason), ws.errorMessage ? el("div", { class: "error" }, ws.errorMessage) : null,
        ws.agentCurrent === false ? el("div", { class: "hint", title: "Restart the workspace to get the agent this server serves." }, `agent ${ws.agentVersion} (not this server's version)`) : null),
      el("td", { "data-label": "Repository" }, ws.repository, el("div", { class: "hint" }, ws.branch)),
      el("td", { "data-label": "Size" }, ws.vmSize),
      el("td", { "data-label": "Location" }, ws.vmLocation),
      el("td", { "data-label": "Last activity" }, when(ws.lastActivityAt)),
      el("td", {}, actions));
    const old = rows.get(ws.id);
    if (old) old.replaceWith(row); else tbody.prepend(row);
    rows.set(ws.id, row);
    empty.hidden = rows.size > 0;
  }

  function remove(id) {
    gone.add(id);
    shownAt.delete(id);
    rows.get(id)?.remove();
    rows.delete(id);
    empty.hidden = rows.size > 0;
  }

  try {
    const list = await api("/api/workspaces");
    list.slice().reverse().forEach(render);
    empty.hidden = list.length > 0;
  } catch (e) { showError(message, e); }

  const stream = new EventSource("/api/workspaces/stream");
  stream.addEventListener("workspace", (e) => render(JSON.parse(e.data)));
  stream.addEventListener("removed", (e) => remove(JSON.parse(e.data).id));
}
