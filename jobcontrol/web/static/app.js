// jobcontrol web: follows a running build without reloading (its log's tail a page at most),
// keeps the jobs, job and graph pages live (patching only what changed, focus left alone),
// filters its log, shows times in the reader's zone, zooms the graph, confirms what cannot be
// undone. Hand-written, no library; loaded with `defer` (the CSP allows no inline script).
// Every page works without it: this only enhances what the server rendered.
"use strict";

function pad(n) {
  return String(n).padStart(2, "0");
}

// <time class="when" datetime="...Z">UTC text</time> -> the reader's local time, UTC on hover
function localizeTimes(root) {
  for (const node of root.querySelectorAll("time.when:not([data-local])")) {
    const date = new Date(node.getAttribute("datetime"));
    if (Number.isNaN(date.getTime())) continue;
    node.title = node.textContent + " UTC";
    node.textContent = date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" +
      pad(date.getDate()) + " " + pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" +
      pad(date.getSeconds());
    node.dataset.local = "1";
  }
  for (const label of root.querySelectorAll(".tz")) label.textContent = "(local)";
}

function setPagerLink(selector, show, seqParam, seq) {
  for (const link of document.querySelectorAll(selector)) {
    link.hidden = !show;
    if (show && seqParam) {
      const url = new URL(link.href);
      url.searchParams.set(seqParam, String(seq));
      link.href = url.toString();
    }
  }
}

function followBuild(root) {
  const liveUrl = new URL(root.dataset.live, window.location.href);
  const table = document.getElementById("log");
  const tail = table && table.dataset.tail === "true";
  let after = Number(root.dataset.after || 0);
  let finished = root.dataset.finished === "true";
  const note = document.getElementById("live-note");
  const rows = document.querySelector("#log tbody");
  // rows the page keeps at most while it follows a build: the server's page size
  const kept = Number(table ? table.dataset.rows : 500) || 500;
  const parts = {summary: "", actions: "", progress: ""};
  let waiting = false;  // a part waits for the focus to leave it: polls go on meanwhile
  let thenTries = 120;  // a launch's target starts once its dependencies are built

  function atBottom() {
    return window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 40;
  }

  function showRows(html, reset) {
    const follow = atBottom();
    if (reset) rows.textContent = "";
    rows.insertAdjacentHTML("beforeend", html);
    // a followed tail holds a page, never the whole log: the oldest rows go
    let dropped = false;
    while (rows.rows.length > kept) {
      rows.deleteRow(0);
      dropped = true;
    }
    if (dropped || reset) {
      const first = rows.rows.length ? rows.rows[0].dataset.seq : after;
      setPagerLink(".log-older", true, "before", first);
      setPagerLink(".log-start", true);
    }
    document.getElementById("log-empty").hidden = rows.rows.length > 0;
    localizeTimes(rows);
    applySearch();
    if (follow) window.scrollTo(0, document.documentElement.scrollHeight);
  }

  // a part is patched only where it changed (the duration's text each second, not the
  // summary): a reason being typed, focus and selection inside it stay put
  function replacePart(id, html) {
    if (parts[id] === html) return;
    const target = document.getElementById(id);
    const fresh = target.cloneNode(false);
    fresh.innerHTML = html;
    try {
      morph(target, fresh);
      parts[id] = html;
    } catch (error) {
      waiting = true;  // the focus is in a node that would go: patched on a later poll
    }
    localizeTimes(target);
  }

  async function poll() {
    liveUrl.searchParams.set("after", String(after));
    let data;
    try {
      const response = await fetch(liveUrl, {headers: {"Accept": "application/json"}});
      if (!response.ok) throw new Error(response.status + " " + response.statusText);
      data = await response.json();
    } catch (error) {
      if (note) note.textContent = "live updates paused: " + error.message;
      window.setTimeout(poll, 5000);
      return;
    }
    // the server rendered (and escaped) these parts with the page's own templates
    if (tail && (data.log_html.trim() || data.reset)) showRows(data.log_html, data.reset);
    if (!tail && data.newer) {
      setPagerLink(".log-newer", true);
      setPagerLink(".log-end", true);
    }
    waiting = false;
    replacePart("summary", data.summary_html);
    replacePart("actions", data.actions_html);
    replacePart("progress", data.progress_html);
    after = data.after;
    if (data.next_url) {
      // replace: Back leaves the launch, never returns to this finished build
      window.location.replace(data.next_url);
      return;
    }
    const wasFinished = finished;
    finished = data.finished;
    if (note) note.textContent = finished ? "" : (tail ? "following the end…" : "running…");
    const waitForNext = root.dataset.then && (data.state === "success" || data.state === "skipped")
      && thenTries-- > 0;
    if (note && finished && waitForNext) note.textContent = "waiting for " + root.dataset.then + "…";
    // one more read after the end: lines flushed just before the outcome was written
    if (!finished || !wasFinished || waitForNext || waiting) window.setTimeout(poll, 1000);
  }

  if (!finished || root.dataset.then) poll();
}

function applySearch() {
  const box = document.getElementById("log-search");
  if (!box) return;
  const needle = box.value.trim().toLowerCase();
  let shown = 0;
  const all = document.querySelectorAll("#log tbody tr");
  for (const row of all) {
    const hide = needle !== "" && !row.textContent.toLowerCase().includes(needle);
    row.classList.toggle("hidden", hide);
    if (!hide) shown++;
  }
  const none = document.getElementById("log-nomatch");
  if (none) none.hidden = !(needle !== "" && all.length > 0 && shown === 0);
}

// the graph fits its box; + and − zoom it (the box then scrolls), "fit" goes back
function zoomable(box) {
  const svg = box.querySelector("svg.graph");
  if (!svg) return;
  const natural = Number(svg.getAttribute("width"));
  let scale = null;  // null: fit the box
  const bar = document.createElement("div");
  bar.className = "zoom";
  for (const [label, title, change] of [["−", "zoom out", 0.8], ["+", "zoom in", 1.25],
                                        ["fit", "fit the width", null]]) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = label;
    button.title = title;
    button.addEventListener("click", () => {
      if (change === null) {
        scale = null;
      } else {
        const current = scale || svg.getBoundingClientRect().width / natural;
        scale = Math.min(4, Math.max(0.2, current * change));
      }
      svg.classList.toggle("zoomed", scale !== null);
      svg.style.width = scale === null ? "" : Math.round(natural * scale) + "px";
    });
    bar.appendChild(button);
  }
  box.parentNode.insertBefore(bar, box);
}

// -- live pages: poll a small token; when it changes, read the page again and patch its
// [data-live-part] parts in place, node by node, so what did not change is left alone (focus,
// a reason being typed, the selection, a zoom)

// whether the node holds the keyboard focus (then it is patched, never replaced)
function holdsFocus(node) {
  const active = document.activeElement;
  return active && active !== document.body && node.contains(active);
}

// whether `current` is to be replaced by `node` rather than patched (as morph decides)
function differs(current, node) {
  return current.nodeType !== node.nodeType || current.nodeName !== node.nodeName ||
    (current.id || "") !== (node.id || "");
}

// what a focused element would do on Enter
const TARGETS = ["href", "action", "formaction", "name", "value"];

// whether patching `target` into `source` would replace or remove the node holding the
// focus, or change where it, or the form it is typed into, leads: read first, so a part is
// patched whole or not at all (a focused cancel form once got the Retry form's action, its
// fields left as they were, when the build ended)
function blocked(target, source) {
  if (target.nodeType !== Node.ELEMENT_NODE || !holdsFocus(target)) return false;
  if (target.matches("time.when")) return false;
  // the focused link or button itself would lead elsewhere (rows pushed down by a new build)
  if (target === document.activeElement && TARGETS.some((name) =>
      target.getAttribute(name) !== source.getAttribute(name))) return true;
  if (target.nodeName === "FORM" && (target.getAttribute("action") !==
      source.getAttribute("action") || target.className !== source.className)) return true;
  const mine = Array.from(target.childNodes);
  const theirs = Array.from(source.childNodes);
  for (const [index, node] of theirs.entries()) {
    const current = mine[index];
    if (!current) continue;
    if (differs(current, node) ? holdsFocus(current) : blocked(current, node)) return true;
  }
  return mine.slice(theirs.length).some(holdsFocus);
}

// make `target` look like `source` (same tag), touching only the nodes that differ; throws,
// changing nothing, when that would take the focus away (see blocked)
function morph(target, source) {
  if (blocked(target, source)) throw new Error("focus");
  patch(target, source);
}

function patch(target, source) {
  if (target.nodeType === Node.TEXT_NODE || target.nodeType === Node.COMMENT_NODE) {
    if (target.nodeValue !== source.nodeValue) target.nodeValue = source.nodeValue;
    return;
  }
  // a time the reader sees localized: the same instant is left as it is
  if (target.matches("time.when") && target.getAttribute("datetime") ===
      source.getAttribute("datetime")) return;
  for (const attr of Array.from(target.attributes)) {
    if (attr.name !== "style" && !source.hasAttribute(attr.name)) target.removeAttribute(attr.name);
  }
  for (const attr of Array.from(source.attributes)) {
    let value = attr.value;
    if (attr.name === "class" && target.classList.contains("zoomed")) value += " zoomed";
    if (target.getAttribute(attr.name) !== value) target.setAttribute(attr.name, value);
  }
  // a field's typed value is the reader's: the markup's value is not forced on it
  const mine = Array.from(target.childNodes);
  const theirs = Array.from(source.childNodes);
  theirs.forEach((node, index) => {
    const current = mine[index];
    if (!current) {
      target.appendChild(document.importNode(node, true));
    } else if (differs(current, node)) {
      target.replaceChild(document.importNode(node, true), current);
    } else {
      patch(current, node);
    }
  });
  for (const node of mine.slice(theirs.length)) target.removeChild(node);
}

function livePage(url, shown) {
  const tokenUrl = new URL(url, window.location.href);
  let token = shown || null;  // what the page shows: the token read before it was rendered
  let stale = false;  // a part could not be patched (focus in a replaced node): try again
  const note = document.getElementById("live-status");

  async function refresh() {
    const response = await fetch(window.location.href, {headers: {"Accept": "text/html"}});
    if (!response.ok) throw new Error(response.status + " " + response.statusText);
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    stale = false;
    for (const part of fresh.querySelectorAll("[data-live-part][id]")) {
      const current = document.getElementById(part.id);
      if (!current) continue;
      try {
        morph(current, part);
      } catch (error) {
        stale = true;  // the rest of this part waits for the focus to leave
      }
      localizeTimes(current);
    }
    const banner = fresh.querySelector(".config-error");
    const shown = document.querySelector("main > .config-error");
    if (banner && !shown) document.querySelector("main").prepend(document.importNode(banner, true));
    if (!banner && shown) shown.remove();
    return fresh.body.dataset.token;
  }

  async function poll() {
    try {
      const response = await fetch(tokenUrl, {headers: {"Accept": "application/json"}});
      if (!response.ok) throw new Error(response.status + " " + response.statusText);
      const data = await response.json();
      // the page read again carries the token read before its own reads: a change made
      // meanwhile is seen at the next poll
      if ((token !== null && data.token !== token) || stale) {
        token = (await refresh()) || data.token;
      } else {
        token = data.token;
      }
      if (note) note.textContent = "";
      window.setTimeout(poll, 2000);
    } catch (error) {
      if (note) note.textContent = "live updates paused: " + error.message;
      window.setTimeout(poll, 5000);
    }
  }
  poll();
}

document.addEventListener("DOMContentLoaded", () => {
  localizeTimes(document);
  const build = document.getElementById("build");
  if (build) followBuild(build);
  if (document.body.dataset.changes) {
    livePage(document.body.dataset.changes, document.body.dataset.token);
  }
  const search = document.getElementById("log-search");
  if (search) {
    search.closest("label").hidden = false;
    search.addEventListener("input", applySearch);
  }
  const level = document.getElementById("log-level");
  if (level) level.addEventListener("change", () => level.form.submit());
  for (const box of document.querySelectorAll(".graph-box")) zoomable(box);
  document.addEventListener("submit", (event) => {
    const button = event.submitter;
    if (button && button.dataset.confirm && !window.confirm(button.dataset.confirm)) {
      event.preventDefault();
    }
  });
});
