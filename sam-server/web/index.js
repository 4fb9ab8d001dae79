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
    el("thead", {}, el("tr", {}, ["Name", "Status", "Repository", "Size", "Location", "Idle", ""].map((h) => el("th", { scope: "col" }, h)))),
    tbody);
  const empty = el("div", { class: "empty" }, el("p", {}, "No workspaces yet."), el("a", { class: "button primary", href: "/workspaces/new" }, "Create your first workspace"));
  const message = el("div");
  const warnings = el("div", { id: "idle-warnings" });
  const notifyButton = el("button", { type: "button", id: "notify", title: "A browser notification when a workspace is about to stop for idleness" }, "Notify me before idle stops");
  main.replaceChildren(el("div", { class: "row" }, el("h1", {}, "Workspaces"), el("span", { class: "spacer" }), notifyButton, el("a", { class: "button primary", href: "/workspaces/new" }, "New workspace")), warnings, message, el("div", { class: "panel" }, table, empty));

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
      el("td", { "data-label": "Name" }, el("a", { href: `/workspaces/${ws.id}` }, ws.name), portLinks(ws)),
      el("td", { "data-label": "Status" }, statusBadge(ws.status), el("div", { class: "hint" }, reason), ws.errorMessage ? el("div", { class: "error" }, ws.errorMessage) : null,
        ws.agentCurrent === false ? el("div", { class: "hint", title: "Restart the workspace to get the agent this server serves." }, `agent ${ws.agentVersion} (not this server's version)`) : null),
      el("td", { "data-label": "Repository" }, ws.repository, el("div", { class: "hint" }, ws.branch)),
      el("td", { "data-label": "Size" }, ws.vmSize),
      el("td", { "data-label": "Location" }, ws.vmLocation),
      el("td", { "data-label": "Idle" }, idleCell(ws)),
      el("td", {}, actions));
    const old = rows.get(ws.id);
    if (old) old.replaceWith(row); else tbody.prepend(row);
    rows.set(ws.id, row);
    states.set(ws.id, ws);
    empty.hidden = rows.size > 0;
    tick();
  }

  // The ports the workspace's processes listen on, each a link to its
  // private preview (signed in through the control plane).
  function portLinks(ws) {
    if (!ws.ports?.length) return null;
    return el("div", { class: "ports hint" }, "Ports: ",
      ...ws.ports.map((p) => el("a", { href: p.openUrl, target: "_blank", rel: "noopener", class: "port", title: `Open the preview of port ${p.port}` },
        p.process ? `${p.port} (${p.process})` : String(p.port))));
  }

  // The idle countdown of running workspaces: when the warning starts and
  // when the workspace stops, as of its last reported activity (the stream
  // sends a new state whenever a heartbeat reports activity).
  const states = new Map();
  const notified = new Set();
  const banners = new Map();
  function idleCell(ws) {
    if (!ws.idleStopAt) return el("span", { class: "hint" }, when(ws.lastActivityAt));
    return el("div", { class: "idle", "data-id": ws.id },
      el("span", { class: "countdown" }),
      el("div", { class: "hint" }, `stops after ${minutes(ws.idleTimeoutSeconds)} idle`),
      el("button", { type: "button", class: "still-here", hidden: true, onclick: () => stillHere(ws) }, "I'm still here"));
  }
  function minutes(secs) {
    return secs % 60 === 0 ? `${secs / 60} min` : `${secs} s`;
  }
  function left(ms) {
    const secs = Math.max(0, Math.ceil(ms / 1000));
    if (secs < 120) return `${secs} s`;
    const mins = Math.ceil(secs / 60);
    return mins < 120 ? `${mins} min` : `${Math.floor(mins / 60)} h ${mins % 60} min`;
  }
  async function stillHere(ws) {
    message.replaceChildren();
    try { render(await api(`/api/workspaces/${ws.id}/activity`, { method: "POST" })); } catch (e) { showError(message, e); }
  }
  function tick() {
    const now = Date.now();
    const warned = [];
    for (const [id, ws] of states) {
      const cell = rows.get(id)?.querySelector(".idle");
      if (!cell || !ws.idleStopAt) continue;
      const stop = Date.parse(ws.idleStopAt);
      const warning = now >= Date.parse(ws.idleWarningAt);
      cell.classList.toggle("warning", warning);
      cell.querySelector(".countdown").textContent = now >= stop ? "stopping…" : `stops in ${left(stop - now)}`;
      cell.querySelector(".still-here").hidden = !warning;
      if (warning) {
        warned.push(ws);
        const key = `${id}@${ws.idleStopAt}`;
        if (!notified.has(key) && notifyOn()) {
          notified.add(key);
          new Notification(`${ws.name} stops in ${left(stop - now)}`, { body: "It is idle. Open SAM and click \"I'm still here\" to keep it running.", tag: `sam-idle-${id}` });
        }
      }
    }
    // Banners are kept and only their text changes: a button replaced
    // every second could swallow a click.
    for (const [id, banner] of banners) {
      if (!warned.some((ws) => ws.id === id)) { banner.remove(); banners.delete(id); }
    }
    for (const ws of warned) {
      let banner = banners.get(ws.id);
      if (!banner) {
        banner = el("div", { class: "notice idle-warning", role: "alert" },
          el("strong", {}, ws.name), el("span", { class: "left" }),
          el("button", { type: "button", class: "still-here", onclick: () => stillHere(states.get(ws.id) ?? ws) }, "I'm still here"));
        banners.set(ws.id, banner);
        warnings.append(banner);
      }
      banner.querySelector(".left").textContent = ` is idle and stops in ${left(Date.parse(ws.idleStopAt) - now)}. `;
    }
  }
  setInterval(tick, 1000);

  function notifyOn() {
    return "Notification" in window && Notification.permission === "granted" && localStorage.getItem("sam.notify") === "1";
  }
  function showNotify() {
    if (!("Notification" in window)) { notifyButton.hidden = true; return; }
    notifyButton.textContent = notifyOn() ? "Notifications on" : "Notify me before idle stops";
    notifyButton.setAttribute("aria-pressed", String(notifyOn()));
  }
  notifyButton.addEventListener("click", async () => {
    if (notifyOn()) { localStorage.removeItem("sam.notify"); showNotify(); return; }
    const permission = await Notification.requestPermission();
    if (permission === "granted") localStorage.setItem("sam.notify", "1");
    else showError(message, new Error("The browser did not allow notifications for this site."));
    showNotify();
  });
  showNotify();

  function remove(id) {
    gone.add(id);
    states.delete(id);
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
