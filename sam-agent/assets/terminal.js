// SAM terminal page: named terminal tabs, each an xterm.js over its own
// /ws/terminal session (protocol in the sam-agent crate docs).
import { Terminal } from '/assets/vendor/xterm.mjs';
import { FitAddon } from '/assets/vendor/addon-fit.mjs';

const statusEl = document.getElementById('status');
const warningEl = document.getElementById('idle-warning');
const warningText = document.getElementById('idle-text');
const stillHere = document.getElementById('still-here');
const tabsEl = document.getElementById('tabs');
const panesEl = document.getElementById('terminal');
const noticeEl = document.getElementById('notice');
const emptyEl = document.getElementById('empty');
// Output is acked every this many bytes once xterm.js has parsed it. The
// agent keeps no less than half again this much on its way to the page
// (more scrolls past after a Ctrl-C); less would not cover the main
// thread's pauses between frames: acked every 16 KiB, xterm.js ran dry
// and rendered 13–15 MB/s instead of 18 (benches/benches/agent.rs).
const ACK_EVERY = 64 * 1024;
const MAX_NAME = 40;
// Close codes (sam_core::terminal::close_code).
const TAKEN_OVER = 4001;
const SIGNED_OUT = 4003;
const TOO_MANY = 4004;

const encoder = new TextEncoder();
// This browser tab's terminals survive a reload: their ids and names are
// kept for the tab (sessionStorage), and the agent keeps each shell for a
// while after its connection drops.
const TABS_KEY = 'sam.tabs';
const ACTIVE_KEY = 'sam.active';
const LEGACY_KEY = 'sam.session';

function newSessionId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** A name the agent accepts (sam_core::terminal::session_name), or null. */
function validName(raw) {
  const name = raw.trim();
  const chars = [...name].length;
  // eslint-disable-next-line no-control-regex
  return chars >= 1 && chars <= MAX_NAME && !/[\u0000-\u001f\u007f-\u009f]/.test(name) ? name : null;
}

const tabs = [];
let active = null;
let warningTimer = null;
let noticeTimer = null;
let opened = 0;

function save() {
  sessionStorage.setItem(TABS_KEY, JSON.stringify(tabs.map((t) => ({ id: t.id, name: t.name }))));
  if (active) sessionStorage.setItem(ACTIVE_KEY, active.id);
}

function showNotice(text) {
  noticeEl.textContent = text;
  noticeEl.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { noticeEl.hidden = true; }, 8000);
}

class Tab {
  constructor(id, name) {
    this.id = id;
    this.name = name;
    this.ws = null;
    this.received = null; // stream offset of the next byte; null = unknown (fresh page)
    this.acked = 0;
    this.attempts = 0;
    this.reconnectTimer = null;
    this.finished = false; // shell exited, refused or workspace stopped: no automatic reconnect
    this.state = 'connecting';
    this.statusText = 'connecting…';

    this.pane = document.createElement('div');
    this.pane.className = 'pane';
    panesEl.appendChild(this.pane);
    this.term = new Terminal({ cursorBlink: true, scrollback: 5000, convertEol: false });
    this.fit = new FitAddon();
    this.term.loadAddon(this.fit);
    this.term.open(this.pane);

    this.button = document.createElement('div');
    this.button.className = 'tab';
    this.button.setAttribute('role', 'tab');
    this.label = document.createElement('span');
    this.label.className = 'name';
    this.closer = document.createElement('button');
    this.closer.className = 'close';
    this.closer.title = 'Close terminal (Alt+Shift+W)';
    this.closer.setAttribute('aria-label', 'Close terminal');
    this.closer.textContent = '×';
    this.button.append(this.label, this.closer);
    tabsEl.appendChild(this.button);
    this.button.addEventListener('click', (ev) => { if (ev.target !== this.closer) activate(this); });
    this.label.addEventListener('dblclick', () => startRename(this));
    this.closer.addEventListener('click', () => closeTab(this));
    this.showName();

    this.term.onData((data) => this.input(data));
    this.term.onBinary((data) => {
      const bytes = new Uint8Array(data.length);
      for (let i = 0; i < data.length; i++) bytes[i] = data.charCodeAt(i) & 0xff;
      this.sendBytes(bytes);
    });
    this.term.attachCustomKeyEventHandler((ev) => keys(ev, this));
    this.term.onResize(() => this.sendSize());
  }

  showName() {
    this.label.textContent = this.name;
    this.button.title = `${this.name} — double-click to rename`;
  }

  setStatus(state, text) {
    this.state = state;
    this.statusText = text;
    this.button.dataset.state = state;
    if (this === active) { statusEl.dataset.state = state; statusEl.textContent = text; }
  }

  send(obj) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(obj));
  }

  sendBytes(bytes) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(bytes);
  }

  sendSize() { this.send({ type: 'resize', rows: this.term.rows, cols: this.term.cols }); }

  input(data) {
    dismissWarning();
    if (this.finished && this.state === 'exited' && data === '\r') {
      // A new shell in this tab, under a new id.
      this.finished = false;
      this.id = newSessionId();
      this.received = null;
      this.term.reset();
      save();
      this.connect();
      return;
    }
    this.sendBytes(encoder.encode(data));
  }

  connect() {
    clearTimeout(this.reconnectTimer);
    this.setStatus(this.attempts ? 'reconnecting' : 'connecting', this.attempts ? 'reconnecting…' : 'connecting…');
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const params = new URLSearchParams({
      session: this.id, name: this.name, rows: String(this.term.rows), cols: String(this.term.cols), ack: '1',
    });
    if (this.received !== null) params.set('offset', String(this.received));
    const socket = new WebSocket(`${proto}//${location.host}/ws/terminal?${params}`);
    socket.binaryType = 'arraybuffer';
    this.ws = socket;
    socket.onmessage = (ev) => {
      if (this.ws !== socket) return;
      if (typeof ev.data === 'string') { this.control(JSON.parse(ev.data)); return; }
      const bytes = new Uint8Array(ev.data);
      this.received += bytes.length;
      const end = this.received;
      // xterm.js decodes UTF-8 as a stream, so frames may split code points.
      this.term.write(bytes, () => {
        if (end - this.acked >= ACK_EVERY) { this.acked = end; this.send({ type: 'ack', offset: end }); }
      });
    };
    socket.onclose = (ev) => {
      if (this.ws !== socket) return;
      this.ws = null;
      if (this.finished) return;
      if (ev.code === 1000 || ev.code === TAKEN_OVER) {
        this.finished = true;
        this.setStatus('exited', ev.code === TAKEN_OVER ? 'opened in another tab' : 'shell ended — press Enter for a new shell');
        return;
      }
      if (ev.code === 1001) { this.finished = true; this.setStatus('stopped', 'workspace stopped'); return; }
      // Signed out of SAM: reconnecting would only be refused; open it again
      // from the dashboard after signing in (the shell is still there).
      if (ev.code === SIGNED_OUT) { this.finished = true; this.setStatus('stopped', 'signed out — open the terminal from SAM again'); return; }
      if (ev.code === TOO_MANY) {
        // Never had a shell: the tab goes, the reason stays on screen.
        this.finished = true;
        showNotice(`No new terminal: ${ev.reason || 'this workspace has as many terminals as it allows'}.`);
        closeTab(this, { end: false });
        return;
      }
      this.attempts += 1;
      const delay = Math.min(10000, 250 * 2 ** Math.min(this.attempts, 6)) * (0.75 + Math.random() * 0.5);
      this.setStatus('reconnecting', `reconnecting in ${Math.ceil(delay / 1000)} s…`);
      this.reconnectTimer = setTimeout(() => this.connect(), delay);
    };
  }

  control(msg) {
    switch (msg.type) {
      case 'hello':
        this.attempts = 0;
        if (this.received !== null && msg.offset !== this.received && !msg.resumed) this.term.reset();
        if (msg.lostBytes > 0) this.term.write('\r\n\x1b[33m[output lost while disconnected]\x1b[0m\r\n');
        this.received = msg.offset;
        this.acked = msg.offset;
        if (msg.name && msg.name !== this.name) { this.name = msg.name; this.showName(); save(); }
        this.setStatus('connected', msg.resumed ? 'connected (resumed)' : 'connected');
        this.sendSize();
        break;
      case 'idle_warning': showWarning(msg); break;
      case 'idle_cleared': dismissWarning(); break;
      case 'shutdown': this.finished = true; this.setStatus('stopped', 'workspace stopping'); break;
      case 'exit': this.finished = true; this.setStatus('exited', 'shell ended — press Enter for a new shell'); break;
      case 'pong': break;
    }
  }

  /** Ends the shell (unless `end` is false) and removes the tab. */
  dispose(end) {
    clearTimeout(this.reconnectTimer);
    this.finished = true;
    if (end) this.send({ type: 'close' });
    const socket = this.ws;
    this.ws = null;
    if (socket) setTimeout(() => socket.close(), end ? 200 : 0);
    this.term.dispose();
    this.pane.remove();
    this.button.remove();
  }
}

function activate(tab) {
  if (!tab) return;
  active = tab;
  for (const t of tabs) {
    const on = t === tab;
    t.pane.classList.toggle('active', on);
    t.button.classList.toggle('active', on);
    t.button.setAttribute('aria-selected', String(on));
  }
  emptyEl.hidden = true;
  statusEl.dataset.state = tab.state;
  statusEl.textContent = tab.statusText;
  // A pane measures only once shown.
  tab.fit.fit();
  tab.term.focus();
  save();
}

function openTab(id, name, { connect = true } = {}) {
  opened += 1;
  const tab = new Tab(id, name || `Terminal ${opened}`);
  tabs.push(tab);
  activate(tab);
  if (connect) tab.connect();
  return tab;
}

function newTab() {
  // The lowest number not shown, so closing "Terminal 2" frees its name.
  const names = new Set(tabs.map((t) => t.name));
  let n = 1;
  while (names.has(`Terminal ${n}`)) n += 1;
  openTab(newSessionId(), `Terminal ${n}`);
}

function closeTab(tab, { end = true } = {}) {
  const at = tabs.indexOf(tab);
  if (at < 0) return;
  tabs.splice(at, 1);
  tab.dispose(end);
  if (active === tab) {
    active = null;
    if (tabs.length) activate(tabs[Math.min(at, tabs.length - 1)]);
  }
  if (!tabs.length) {
    emptyEl.hidden = false;
    statusEl.dataset.state = 'stopped';
    statusEl.textContent = 'no terminal open';
    sessionStorage.removeItem(ACTIVE_KEY);
    emptyEl.querySelector('button').focus();
  }
  save();
}

function startRename(tab) {
  if (tab.button.querySelector('input')) return;
  const input = document.createElement('input');
  input.className = 'rename';
  input.value = tab.name;
  input.maxLength = MAX_NAME * 2;
  input.setAttribute('aria-label', 'Terminal name');
  tab.label.replaceWith(input);
  input.select();
  input.focus();
  let done = false;
  const finish = (commit) => {
    if (done) return;
    done = true;
    const name = commit ? validName(input.value) : null;
    if (name && name !== tab.name) {
      tab.name = name;
      tab.send({ type: 'rename', name });
      save();
    } else if (commit && !name) {
      showNotice(`A terminal name is 1 to ${MAX_NAME} characters.`);
    }
    input.replaceWith(tab.label);
    tab.showName();
    if (tab === active) tab.term.focus();
  };
  input.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter') { ev.preventDefault(); finish(true); }
    if (ev.key === 'Escape') { ev.preventDefault(); finish(false); }
    ev.stopPropagation();
  });
  input.addEventListener('blur', () => finish(true));
}

function step(by) {
  if (!tabs.length) return;
  const at = tabs.indexOf(active);
  activate(tabs[(at + by + tabs.length) % tabs.length]);
}

/**
 * Tab shortcuts (also when focus is outside the terminals): Alt+Shift+N
 * new, Alt+Shift+W close, Alt+Shift+R rename, Alt+1…9 the n-th tab,
 * Alt+Shift+←/→ the previous/next one. Returns false when the key was used.
 */
function shortcut(ev) {
  if (!ev.altKey || ev.ctrlKey || ev.metaKey) return true;
  if (ev.shiftKey) {
    switch (ev.code) {
      case 'KeyN': newTab(); break;
      case 'KeyW': if (active) closeTab(active); break;
      case 'KeyR': if (active) startRename(active); break;
      case 'ArrowLeft': step(-1); break;
      case 'ArrowRight': step(1); break;
      default: return true;
    }
  } else {
    const digit = /^Digit([1-9])$/.exec(ev.code);
    if (!digit) return true;
    const tab = tabs[Number(digit[1]) - 1];
    if (!tab) return true;
    activate(tab);
  }
  ev.preventDefault();
  return false;
}

function keys(ev, tab) {
  if (ev.type !== 'keydown') return true;
  if (!shortcut(ev)) return false;
  const key = ev.key.toLowerCase();
  // Copy: Ctrl+Shift+C, or Ctrl+C while text is selected (otherwise Ctrl+C
  // is an interrupt). Paste: Ctrl+V / Ctrl+Shift+V go through the
  // browser's paste event, which xterm.js turns into input.
  if (ev.ctrlKey && key === 'c' && (ev.shiftKey || tab.term.hasSelection())) {
    const text = tab.term.getSelection();
    if (text && navigator.clipboard) navigator.clipboard.writeText(text).catch(() => {});
    tab.term.clearSelection();
    ev.preventDefault();
    return false;
  }
  if (ev.ctrlKey && ev.shiftKey && key === 'v') return false;
  // Any key dismisses the idle warning (keys that send no data included).
  dismissWarning();
  return true;
}

document.addEventListener('keydown', (ev) => {
  // Keys in a terminal went through its own handler already (which may
  // have closed that terminal: its element is then out of the page).
  if (ev.defaultPrevented || (ev.target instanceof Element && ev.target.closest('.xterm'))) return;
  shortcut(ev);
});

function showWarning(msg) {
  const deadline = new Date(msg.deadline);
  const update = () => {
    const mins = Math.max(0, Math.ceil((deadline.getTime() - Date.now()) / 60000));
    warningText.textContent = `This workspace is idle and stops in ${mins} min. Press any key to keep it running.`;
    for (const t of tabs) if (t.state === 'connected' || t.state === 'stopping') t.setStatus('stopping', `stopping in ${mins} min`);
  };
  update();
  warningEl.hidden = false;
  clearInterval(warningTimer);
  warningTimer = setInterval(update, 15000);
}

function dismissWarning() {
  if (warningEl.hidden) return;
  warningEl.hidden = true;
  clearInterval(warningTimer);
  for (const t of tabs) if (t.state === 'stopping' && t.ws) t.setStatus('connected', 'connected');
}

stillHere.addEventListener('click', () => {
  // Counts as activity at the agent without typing into a shell.
  for (const t of tabs) t.send({ type: 'active' });
  dismissWarning();
  if (active) active.term.focus();
});

let resizeTimer = null;
function scheduleFit() {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => { if (active) active.fit.fit(); }, 100);
}
window.addEventListener('resize', scheduleFit);

// Files: uploads into the active terminal's current directory (picker or
// drop), downloads of a file or a folder (.tar.gz) by path.
const transfersEl = document.getElementById('transfers');
const dropZone = document.getElementById('drop-zone');
const picker = /** @type {HTMLInputElement} */ (document.getElementById('upload-picker'));
const dialog = /** @type {HTMLDialogElement} */ (document.getElementById('download-dialog'));
const pathInput = /** @type {HTMLInputElement} */ (document.getElementById('download-path'));
const downloadError = document.getElementById('download-error');

function fileQuery(extra) {
  const params = new URLSearchParams(extra);
  if (active) params.set('session', active.id);
  return params;
}

let maxUpload = Infinity;

async function currentDirectory() {
  try {
    const res = await fetch(`/api/files/directory?${fileQuery({})}`, { credentials: 'same-origin' });
    if (res.ok) {
      const place = await res.json();
      maxUpload = place.maxUploadBytes ?? Infinity;
      return place.directory;
    }
  } catch { /* shown as unknown */ }
  return 'the workspace folder';
}

function megabytes(n) { return `${(n / 1048576).toFixed(n < 10485760 ? 1 : 0)} MB`; }

function transferRow(name) {
  const row = document.createElement('div');
  row.className = 'transfer';
  const line = document.createElement('div');
  line.className = 'line';
  const what = document.createElement('span');
  what.className = 'what';
  what.textContent = name;
  const state = document.createElement('span');
  state.className = 'state';
  const bar = document.createElement('progress');
  bar.max = 1;
  bar.value = 0;
  line.append(what, state);
  row.append(line, bar);
  transfersEl.append(row);
  return { row, what, state, bar };
}

function finishRow(t, ok, text) {
  t.row.classList.add(ok ? 'done' : 'failed');
  t.state.textContent = text;
  t.bar.remove();
  setTimeout(() => t.row.remove(), ok ? 6000 : 15000);
}

/** Uploads one file with progress; asks before replacing an existing one. */
function uploadFile(file, session, overwrite = false) {
  const t = transferRow(`↑ ${file.name}`);
  const started = performance.now();
  const params = new URLSearchParams({ name: file.name });
  if (session) params.set('session', session);
  if (overwrite) params.set('overwrite', '1');
  const xhr = new XMLHttpRequest();
  xhr.open('POST', `/api/files/upload?${params}`);
  xhr.upload.onprogress = (ev) => {
    if (!ev.lengthComputable) return;
    t.bar.value = ev.loaded / ev.total;
    const secs = (performance.now() - started) / 1000;
    t.state.textContent = `${Math.floor(100 * ev.loaded / ev.total)} % · ${megabytes(ev.loaded / Math.max(secs, 0.001))}/s`;
  };
  xhr.onload = () => {
    let body = {};
    try { body = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
    if (xhr.status === 201) { finishRow(t, true, `saved: ${body.path}`); return; }
    if (xhr.status === 409 && !overwrite) {
      t.row.remove();
      if (confirm(`${file.name} exists there. Replace it?`)) uploadFile(file, session, true);
      return;
    }
    finishRow(t, false, body.error || `failed (${xhr.status})`);
  };
  xhr.onerror = () => finishRow(t, false, 'the connection failed');
  xhr.send(file);
}

async function uploadAll(files) {
  if (!files || !files.length) return;
  const session = active ? active.id : null;
  // The agent refuses a file over its limit before reading it; say so
  // here rather than as a broken connection.
  if (maxUpload === Infinity) await currentDirectory();
  for (const file of files) {
    if (file.size > maxUpload) {
      finishRow(transferRow(`↑ ${file.name}`), false, `over the ${megabytes(maxUpload)} limit`);
      continue;
    }
    uploadFile(file, session);
  }
}

document.getElementById('upload').addEventListener('click', () => picker.click());
// Copied first: clearing the picker (or the drop event ending) empties its list.
picker.addEventListener('change', () => { uploadAll([...(picker.files ?? [])]); picker.value = ''; });

let dragDepth = 0;
window.addEventListener('dragenter', async (ev) => {
  if (!ev.dataTransfer || !ev.dataTransfer.types.includes('Files')) return;
  ev.preventDefault();
  dragDepth += 1;
  if (dragDepth === 1) {
    dropZone.hidden = false;
    document.getElementById('drop-dir').textContent = await currentDirectory();
  }
});
window.addEventListener('dragover', (ev) => { if (ev.dataTransfer && ev.dataTransfer.types.includes('Files')) ev.preventDefault(); });
window.addEventListener('dragleave', () => { dragDepth = Math.max(0, dragDepth - 1); if (!dragDepth) dropZone.hidden = true; });
window.addEventListener('drop', (ev) => {
  if (!ev.dataTransfer || !ev.dataTransfer.files.length) return;
  ev.preventDefault();
  dragDepth = 0;
  dropZone.hidden = true;
  uploadAll([...ev.dataTransfer.files]);
});

document.getElementById('download').addEventListener('click', async () => {
  downloadError.textContent = '';
  document.getElementById('download-dir').textContent = await currentDirectory();
  dialog.showModal();
  pathInput.select();
});
document.getElementById('download-form').addEventListener('submit', async (ev) => {
  const submitter = /** @type {HTMLButtonElement | null} */ (/** @type {SubmitEvent} */ (ev).submitter);
  if (submitter && submitter.value === 'cancel') return;
  ev.preventDefault();
  const path = pathInput.value.trim();
  if (!path) return;
  const params = fileQuery({ path });
  const res = await fetch(`/api/files/stat?${params}`, { credentials: 'same-origin' });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) { downloadError.textContent = body.error || `failed (${res.status})`; return; }
  dialog.close();
  // The browser's own download, with its progress.
  const link = document.createElement('a');
  link.href = `/api/files/download?${params}`;
  link.download = '';
  document.body.append(link);
  link.click();
  link.remove();
  const t = transferRow(`↓ ${body.path}`);
  finishRow(t, true, body.kind === 'directory' ? 'downloading as .tar.gz' : `downloading ${megabytes(body.size)}`);
  if (active) active.term.focus();
});
dialog.addEventListener('close', () => { if (active) active.term.focus(); });

document.getElementById('new-tab').addEventListener('click', () => newTab());
emptyEl.querySelector('button').addEventListener('click', () => newTab());

// A tab closed on purpose ends its shells; a reload reattaches within the
// short delay the agent waits before ending them.
window.addEventListener('pagehide', (ev) => {
  if (!ev.persisted) for (const t of tabs) t.send({ type: 'close', after: 3 });
});

// Keep NATs and proxies from dropping an idle socket.
setInterval(() => { for (const t of tabs) t.send({ type: 'ping', id: Date.now() }); }, 30000);

function restored() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(TABS_KEY) || '[]');
    if (Array.isArray(saved)) {
      const ok = saved.filter((t) => t && typeof t.id === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(t.id));
      if (ok.length) return ok.map((t) => ({ id: t.id, name: typeof t.name === 'string' ? validName(t.name) : null }));
    }
  } catch { /* a damaged entry: start afresh */ }
  const legacy = sessionStorage.getItem(LEGACY_KEY);
  return legacy ? [{ id: legacy, name: null }] : [];
}

async function start() {
  const saved = restored();
  // Names the agent holds win (renamed from another connection); failing
  // to ask is not fatal, the sockets will say what is wrong.
  try {
    const res = await fetch('/api/sessions', { credentials: 'same-origin' });
    if (res.ok) {
      const { sessions } = await res.json();
      for (const t of saved) {
        const live = sessions.find((s) => s.id === t.id);
        if (live) t.name = live.name;
      }
    }
  } catch { /* offline for a moment */ }
  if (!saved.length) { newTab(); return; }
  const wanted = sessionStorage.getItem(ACTIVE_KEY);
  for (const t of saved) openTab(t.id, t.name);
  activate(tabs.find((t) => t.id === wanted) ?? tabs[0]);
}

// The servers listening in the workspace, each a link to its private
// preview at p<port>-<this host> (signed in there through SAM).
const portsEl = document.getElementById('ports');
let shownPorts = '';
async function refreshPorts() {
  if (document.hidden) return;
  let ports = [];
  try {
    const res = await fetch('/api/ports', { credentials: 'same-origin' });
    if (!res.ok) return;
    ports = (await res.json()).ports ?? [];
  } catch { return; }
  // A port whose name is still being made at the edge waits a scan or two.
  ports = ports.filter((p) => Number.isInteger(p.port) && p.ready !== false);
  const key = JSON.stringify(ports);
  if (key === shownPorts) return;
  shownPorts = key;
  portsEl.replaceChildren(document.createTextNode('Ports:'));
  for (const p of ports) {
    const link = document.createElement('a');
    link.href = `${location.protocol}//p${p.port}-${location.host}/`;
    link.target = '_blank';
    link.rel = 'noopener';
    link.className = 'port';
    link.textContent = p.process ? `${p.port} (${p.process})` : String(p.port);
    link.title = `Open the preview of port ${p.port}`;
    portsEl.append(link);
  }
  portsEl.hidden = ports.length === 0;
}
setInterval(refreshPorts, 3000);
document.addEventListener('visibilitychange', refreshPorts);

start();
refreshPorts();
