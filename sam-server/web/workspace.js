import { api, el, requireUser, showError, statusBadge, when, REASONS, reasonText } from "/assets/app.js";

const main = document.getElementById("main");
await requireUser("");
const id = location.pathname.split("/").pop();

// "stop finished" on a failed workspace means its leftovers were removed.
function eventText(e) {
  if (e.event === "stop_finished" && e.to === "error") return "server and DNS record removed";
  return e.event.replaceAll("_", " ");
}
const message = el("div");

// Where terminals run, as the agent reported it at its last boot
// ("shell done: in the devcontainer <id> as <user>", "…: on the host").
function shellText(events) {
  const shell = events.filter((e) => e.event === "agent_progress" && e.message?.startsWith("shell done: ")).pop();
  return shell ? shell.message.slice("shell done: ".length) : "known once the workspace has started";
}

async function render() {
  let ws, events;
  try {
    [ws, events] = await Promise.all([api(`/api/workspaces/${id}`), api(`/api/workspaces/${id}/events`)]);
  } catch (e) {
    if (e.status === 404) { main.replaceChildren(el("h1", {}, "Workspace not found"), el("p", {}, el("a", { href: "/" }, "Back to your workspaces"))); return false; }
    showError(message, e); return true;
  }
  const open = el("button", { type: "button", class: "primary", disabled: ws.status !== "running", onclick: async () => {
    try { const access = await api("/api/terminal/token", { method: "POST", body: { workspaceId: id } }); window.open(access.url, "_blank", "noopener"); }
    catch (e) { showError(message, e); }
  } }, "Open Terminal");
  // replaceChildren would show a null child as the text "null".
  main.replaceChildren(...[
    el("p", {}, el("a", { href: "/" }, "← Workspaces")),
    el("div", { class: "row" }, el("h1", {}, ws.name), el("span", { class: "spacer" }), open),
    ws.status === "running" ? null : el("p", { class: "hint", id: "terminal-hint" },
      ws.status === "stopped" || ws.status === "error"
        ? "The terminal opens while the workspace runs: restart it from the dashboard first."
        : "The terminal opens once the workspace is running."),
    message,
    el("section", { class: "panel" },
      el("p", {}, statusBadge(ws.status), " ", el("span", { class: "muted" }, reasonText(ws))),
      ws.errorMessage ? el("div", { class: "notice bad", role: "alert" }, ws.errorMessage) : null,
      el("table", {}, el("tbody", {},
        [["Repository", `${ws.repository} @ ${ws.branch}`], ["Terminals", shellText(events)], ["Size", ws.vmSize], ["Location", ws.vmLocation],
         ["Terminal URL", ws.url || "available while running"], ["Last activity", when(ws.lastActivityAt)], ["Created", new Date(ws.createdAt).toLocaleString()]]
          .map(([k, v]) => el("tr", {}, el("th", { scope: "row" }, k), el("td", {}, v)))))),
    el("section", { class: "panel" }, el("h2", {}, "History"),
      el("ol", { class: "timeline" }, events.slice().reverse().map((e) => el("li", {},
        el("strong", {}, `${e.from} → ${e.to}`), " ", el("span", { class: "muted" }, `${eventText(e)} · ${REASONS[e.reason] || e.reason} · ${new Date(e.at).toLocaleString()}`),
        e.message ? el("div", { class: e.to === "error" ? "error" : "hint" }, e.message) : null))))].filter(Boolean));
  return true;
}

if (await render()) {
  const stream = new EventSource("/api/workspaces/stream");
  stream.addEventListener("workspace", (e) => { if (JSON.parse(e.data).id === id) render(); });
  stream.addEventListener("removed", (e) => { if (JSON.parse(e.data).id === id) render(); });
}
