// The hookinspect web inspector. Captured text only ever enters the page through textContent
// (see span()); nothing here builds HTML from strings.
"use strict";

const csrf = document.querySelector('meta[name="csrf-token"]').content;
const $ = (selector) => document.querySelector(selector);
const COLUMNS = ["seq", "time", "method", "path", "event", "sig", "size", "last"];

const state = {
  rows: [],          // loaded rows, newest first: {seq, cells}
  current: null,     // the selected delivery number
  marked: new Set(),
  filter: "",
  following: true,
  more: false,
  tab: "request",
  detail: null,
  diffLines: null,
  loading: false,
  wholeBody: false,  // A: long arrays unfolded, the 256 KiB cut lifted
};

// -- drawing -------------------------------------------------------------------------------

// One (text, style) span as an element: the style names become classes (s-bold, s-green…).
function span([text, style]) {
  const element = document.createElement("span");
  element.textContent = text;
  for (const word of (style || "").split(/\s+/).filter(Boolean)) {
    if (/^[a-z_-]+$/.test(word)) element.classList.add("s-" + word);
  }
  return element;
}

function drawLines(target, lines) {
  target.replaceChildren();
  lines.forEach((line, index) => {
    if (index) target.append("\n");
    for (const piece of line) target.append(span(piece));
  });
}

function rowElement(row) {
  const tr = document.createElement("tr");
  tr.dataset.seq = row.seq;
  const mark = document.createElement("td");
  mark.className = "mark";
  mark.textContent = state.marked.has(row.seq) ? "●" : "";
  tr.append(mark);
  for (const name of COLUMNS) {
    const td = document.createElement("td");
    td.className = "c-" + name;
    for (const piece of row.cells[name]) td.append(span(piece));
    tr.append(td);
  }
  if (row.seq === state.current) tr.classList.add("current");
  return tr;
}

function drawList() {
  const body = $("#list tbody");
  body.replaceChildren(...state.rows.map(rowElement));
  $("#more").hidden = !state.more;
}

function drawDetail() {
  const view = $("#view");
  view.classList.toggle("loading", Boolean(!state.detail && state.current !== null));
  if (!state.detail) {
    view.textContent = state.current === null ? "Select a delivery." : `Loading #${state.current}…`;
    return;
  }
  const lines = {request: state.detail.request, attempts: state.detail.attempts_view,
                 signature: state.detail.signature,
                 diff: state.diffLines || [[["d: compare with the marked delivery, or the previous one of the same event", "dim"]]]}[state.tab];
  drawLines(view, lines);
  for (const button of document.querySelectorAll("#tabs button")) {
    button.setAttribute("aria-selected", String(button.dataset.tab === state.tab));
  }
}

function toast(message, kind = "info", action = null) {
  const box = document.createElement("div");
  box.className = "toast " + kind;
  box.textContent = message;
  if (action) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = action.label;
    button.addEventListener("click", () => { action.run(); box.remove(); });
    box.append(" ", button);
  }
  $("#toasts").append(box);
  setTimeout(() => box.remove(), action ? 10000 : 5000);
}

function drawStatus(total) {
  if (total !== undefined && total !== null) state.total = total;
  const shown = state.rows.length + (state.more ? "+" : "");
  $("#status").textContent = `${state.total ?? "?"} deliveries` + (state.filter ? ` · ${shown} shown` : "");
  $("#follow").textContent = state.following ? "following" : "paused";
  $("#follow").classList.toggle("paused", !state.following);
}

// -- talking to the server -----------------------------------------------------------------

async function api(path, options = {}) {
  const headers = {"X-CSRF-Token": csrf, ...(options.body ? {"Content-Type": "application/json"} : {})};
  const response = await fetch(path, {...options, headers, credentials: "same-origin"});
  const data = response.headers.get("Content-Type")?.startsWith("application/json") ? await response.json() : null;
  if (!response.ok) {
    const error = new Error((data && data.error) || `${response.status} ${response.statusText}`);
    error.hint = data && data.hint;
    throw error;
  }
  return data;
}

async function loadList({append = false} = {}) {
  if (state.loading) return;
  state.loading = true;
  try {
    const params = new URLSearchParams({filter: state.filter});
    if (append && state.rows.length) params.set("before", state.rows[state.rows.length - 1].seq);
    const data = await api("/api/deliveries?" + params);
    $("#filter-error").textContent = "";
    state.rows = append ? state.rows.concat(data.rows) : data.rows;
    state.more = data.more;
    drawList();
    drawStatus(data.total);
    if (state.current === null && state.rows.length) select(state.rows[0].seq);
  } catch (error) {
    $("#filter-error").textContent = error.message + (error.hint ? ` (${error.hint})` : "");
  } finally {
    state.loading = false;
  }
}

async function showNew() {
  // Only what is newer than the newest row shown, a page at a time, merged on top: a burst of
  // any size arrives whole, and a quiet store costs one small read.
  let newest = state.rows.length ? state.rows[0].seq : 0;
  const atTop = state.current === null || state.current === newest;
  let fresh = [];
  for (;;) {
    const params = new URLSearchParams({filter: state.filter, after: newest, limit: "1000"});
    const data = await api("/api/deliveries?" + params);
    fresh = data.rows.concat(fresh);
    if (!data.more || !data.rows.length) break;
    newest = data.rows[0].seq;
  }
  const shown = new Set(state.rows.map((row) => row.seq));
  fresh = fresh.filter((row) => !shown.has(row.seq));
  if (!fresh.length) return;
  state.rows = fresh.concat(state.rows);
  drawList();
  if (!state.filter) state.total = (state.total ?? 0) + fresh.length;
  drawStatus();
  if (atTop) select(fresh[0].seq);
}

async function select(seq, {push = true} = {}) {
  state.current = seq;
  state.detail = null;
  state.diffLines = null;
  for (const tr of document.querySelectorAll("#list tbody tr")) {
    tr.classList.toggle("current", Number(tr.dataset.seq) === seq);
  }
  document.querySelector(`#list tr[data-seq="${seq}"]`)?.scrollIntoView({block: "nearest"});
  if (push && location.pathname !== `/deliveries/${seq}`) history.pushState({seq}, "", `/deliveries/${seq}`);
  drawDetail();
  try {
    const detail = await api(detailPath(seq));
    if (state.current === seq) { state.detail = detail; drawDetail(); }
  } catch (error) {
    $("#view").textContent = error.message;
  }
}

function detailPath(seq) {
  return `/api/deliveries/${seq}` + (state.wholeBody ? "?all=1" : "");
}

async function refreshDetail(seq) {
  if (state.current !== seq) return;
  const detail = await api(detailPath(seq));
  if (state.current === seq) { state.detail = detail; drawDetail(); }
}

// -- actions -------------------------------------------------------------------------------

async function replay(to = null, edits = null) {
  const seq = state.current;
  if (seq === null) return;
  try {
    const result = await api(`/api/deliveries/${seq}/replay`, {method: "POST", body: JSON.stringify({...(to ? {to} : {}), ...(edits || {})})});
    toast(`#${seq} → ${result.target}: ${result.outcome}` + (result.error ? ` (${result.error})` : ""), result.ok ? "ok" : "error");
    state.tab = "attempts";
    await refreshDetail(seq);
  } catch (error) {
    toast(error.message + (error.hint ? ` (${error.hint})` : ""), "error");
  }
}

function openEditor() {
  if (!state.detail) return;
  $("#edit-target").value = state.detail.default_target || "";
  $("#edit-headers").value = state.detail.headers.map(([name, value]) => `${name}: ${value}`).join("\n");
  $("#edit-body").value = state.detail.body_text;
  $("#editor").hidden = false;
  $("#edit-body").focus();
}

async function sendEdited(event) {
  event.preventDefault();
  const headers = $("#edit-headers").value.split("\n").map((line) => {
    const colon = line.indexOf(":");
    return colon > 0 ? [line.slice(0, colon).trim(), line.slice(colon + 1).trim()] : null;
  }).filter(Boolean);
  $("#editor").hidden = true;
  await replay($("#edit-target").value.trim() || null, {headers, body: $("#edit-body").value});
}

async function diff() {
  const seq = state.current;
  if (seq === null) return;
  const other = [...state.marked].find((s) => s !== seq);
  const params = new URLSearchParams({b: seq, ...(other ? {a: other} : {})});
  try {
    const data = await api("/api/diff?" + params);
    state.diffLines = data.lines;
    state.tab = "diff";
    drawDetail();
  } catch (error) {
    toast(error.message, "error");
  }
}

function chosen() {
  return state.marked.size ? [...state.marked].sort((a, b) => a - b) : (state.current === null ? [] : [state.current]);
}

function download(format) {
  const seqs = chosen();
  if (!seqs.length) return;
  const link = document.createElement("a");
  link.href = `/api/export?format=${format}&seqs=${seqs.join(",")}`;
  link.download = "";
  document.body.append(link);
  link.click();
  link.remove();
}

async function copyCurl() {
  if (state.current === null) return;
  const response = await fetch(`/api/export?format=curl&seqs=${state.current}`, {credentials: "same-origin"});
  const text = await response.text();
  try {
    await navigator.clipboard.writeText(text);
    toast(`curl command for #${state.current} copied (${text.length} characters)`);
  } catch {
    toast("the browser did not allow copying; use Download curl", "error");
  }
}

async function remove() {
  const seqs = chosen();
  if (!seqs.length) return;
  if (!confirm(`Delete ${seqs.length === 1 ? "#" + seqs[0] : seqs.length + " deliveries"} and their attempts?`)) return;
  try {
    const result = await api("/api/delete", {method: "POST", body: JSON.stringify({seqs})});
    state.rows = state.rows.filter((row) => !seqs.includes(row.seq));
    seqs.forEach((s) => state.marked.delete(s));
    state.lastUndo = result.undo;
    if (seqs.includes(state.current)) { state.current = null; state.detail = null; }
    drawList();
    drawDetail();
    toast(`deleted ${seqs.length === 1 ? "#" + seqs[0] : seqs.length + " deliveries"}`, "info", {label: "Undo", run: () => undo(result.undo)});
  } catch (error) {
    toast(error.message, "error");
  }
}

async function undo(token = state.lastUndo) {
  if (!token) return;
  try {
    const result = await api(`/api/undo/${token}`, {method: "POST"});
    state.lastUndo = null;
    toast(`restored ${result.restored.map((s) => "#" + s).join(", ")}`, "ok");
    await loadList();
  } catch (error) {
    toast(error.message, "error");
  }
}

function move(step) {
  if (!state.rows.length) return;
  const index = state.rows.findIndex((row) => row.seq === state.current);
  const next = Math.max(0, Math.min(state.rows.length - 1, (index < 0 ? 0 : index) + step));
  select(state.rows[next].seq);
  if (next >= state.rows.length - 5 && state.more) loadList({append: true});
}

function toggleMark() {
  if (state.current === null) return;
  if (state.marked.has(state.current)) state.marked.delete(state.current); else state.marked.add(state.current);
  drawList();
}

// -- wiring --------------------------------------------------------------------------------

const ACTIONS = {
  "replay": () => replay(),
  "replay-to": () => { const url = prompt("Replay to:", state.detail?.default_target || ""); if (url) replay(url); },
  "edit": openEditor,
  "diff": diff,
  "curl": copyCurl,
  "download": () => download("har"),
  "download-json": () => download("json"),
  "download-curl": () => download("curl"),
  "delete": remove,
};

const KEYS = {
  j: () => move(1), k: () => move(-1), ArrowDown: () => move(1), ArrowUp: () => move(-1),
  "/": () => $("#filter").focus(), r: ACTIONS.replay, R: ACTIONS["replay-to"], e: openEditor, d: diff,
  c: copyCurl, x: ACTIONS.download, " ": toggleMark, Delete: remove, u: () => undo(),
  f: () => { state.following = !state.following; drawStatus(); if (state.following) showNew(); },
  g: () => state.rows.length && select(state.rows[0].seq),
  A: () => { state.wholeBody = !state.wholeBody; toast(state.wholeBody ? "whole bodies: long arrays unfolded" : "long arrays folded"); if (state.current !== null) refreshDetail(state.current); },
  1: () => { state.tab = "request"; drawDetail(); }, 2: () => { state.tab = "attempts"; drawDetail(); },
  3: () => { state.tab = "signature"; drawDetail(); }, 4: () => { state.tab = "diff"; drawDetail(); },
};

document.addEventListener("keydown", (event) => {
  if (event.target.closest("input, textarea") || event.ctrlKey || event.metaKey || event.altKey) {
    if (event.key === "Escape") { event.target.blur(); $("#editor").hidden = true; }
    return;
  }
  const run = KEYS[event.key];
  if (run) { event.preventDefault(); run(); }
});

$("#filter-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.filter = $("#filter").value.trim();
  state.current = null;
  loadList();
  $("#filter").blur();
});
$("#list tbody").addEventListener("click", (event) => {
  const tr = event.target.closest("tr");
  if (tr) select(Number(tr.dataset.seq));
});
$("#more").addEventListener("click", () => loadList({append: true}));
$("#follow").addEventListener("click", KEYS.f);
$("#editor").addEventListener("submit", sendEdited);
$("#edit-cancel").addEventListener("click", () => { $("#editor").hidden = true; });
for (const button of document.querySelectorAll("#actions button")) {
  button.addEventListener("click", () => ACTIONS[button.dataset.action]());
}
for (const button of document.querySelectorAll("#tabs button")) {
  button.addEventListener("click", () => { state.tab = button.dataset.tab; drawDetail(); });
}
new IntersectionObserver((entries) => {
  if (entries.some((entry) => entry.isIntersecting) && state.more) loadList({append: true});
}).observe($("#more"));
window.addEventListener("popstate", (event) => { if (event.state?.seq) select(event.state.seq, {push: false}); });

// Live: the server pushes what changed; the page reads only what it shows.
const live = new EventSource("/api/events");
live.addEventListener("deliveries", () => { if (state.following) showNew(); else drawStatus(); });
live.addEventListener("attempt", (event) => {
  const seq = JSON.parse(event.data).seq;
  refreshDetail(seq);
  if (state.rows.some((row) => row.seq === seq)) loadList();
});
live.addEventListener("removed", () => loadList());
live.addEventListener("store", () => loadList());
live.addEventListener("open", () => document.body.classList.remove("offline"));
live.addEventListener("error", () => document.body.classList.add("offline"));

// A deep link (/deliveries/42) opens that delivery, whether or not it is on the first page.
const linked = location.pathname.match(/^\/deliveries\/(\d+)$/);
if (linked) state.current = Number(linked[1]);
loadList().then(() => { if (linked) select(Number(linked[1]), {push: false}); });

// The split between the list and the detail: dragged with the pointer (or arrow keys on the
// splitter), kept for the next visit.
(function splitter() {
  const main = document.querySelector("main");
  const bar = document.querySelector("#splitter");
  const set = (percent) => {
    const clamped = Math.min(80, Math.max(25, percent));
    main.style.setProperty("--split", `${clamped}%`);
    localStorage.setItem("hookinspect.split", String(clamped));
  };
  const saved = Number(localStorage.getItem("hookinspect.split"));
  if (saved) set(saved);
  bar.addEventListener("pointerdown", (event) => {
    bar.setPointerCapture(event.pointerId);
    document.body.classList.add("dragging");
  });
  bar.addEventListener("pointermove", (event) => {
    if (!bar.hasPointerCapture(event.pointerId)) return;
    const box = main.getBoundingClientRect();
    set(((event.clientX - box.left) / box.width) * 100);
  });
  bar.addEventListener("pointerup", (event) => {
    bar.releasePointerCapture(event.pointerId);
    document.body.classList.remove("dragging");
  });
  bar.addEventListener("keydown", (event) => {
    const now = Number(localStorage.getItem("hookinspect.split")) || 55;
    if (event.key === "ArrowLeft") set(now - 5);
    if (event.key === "ArrowRight") set(now + 5);
  });
})();
