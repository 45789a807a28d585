// jobcontrol web: follows a running build without reloading, filters its log, confirms
// deletions. Hand-written, no library; loaded with `defer` (the CSP allows no inline script).
"use strict";

function followBuild(root) {
  const liveUrl = new URL(root.dataset.live, window.location.href);
  let after = Number(root.dataset.after || 0);
  let finished = root.dataset.finished === "true";
  const note = document.getElementById("live-note");
  const rows = document.querySelector("#log tbody");
  let thenTries = 120;  // a launch's target starts once its dependencies are built

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
    if (data.log_html.trim()) {
      rows.insertAdjacentHTML("beforeend", data.log_html);
      applySearch();
    }
    document.getElementById("summary").innerHTML = data.summary_html;
    document.getElementById("progress").innerHTML = data.progress_html;
    after = data.after;
    if (data.next_url) {
      window.location.assign(data.next_url);
      return;
    }
    const wasFinished = finished;
    finished = data.finished;
    if (note) note.textContent = finished ? "" : "following live…";
    const waitForNext = root.dataset.then && (data.state === "success" || data.state === "skipped")
      && thenTries-- > 0;
    if (note && finished && waitForNext) note.textContent = "waiting for " + root.dataset.then + "…";
    // one more read after the end: lines flushed just before the outcome was written
    if (!finished || !wasFinished || data.more || waitForNext) {
      window.setTimeout(poll, data.more ? 0 : 1000);
    }
  }

  if (!finished || root.dataset.then) poll();
}

function applySearch() {
  const box = document.getElementById("log-search");
  if (!box) return;
  const needle = box.value.trim().toLowerCase();
  for (const row of document.querySelectorAll("#log tbody tr")) {
    row.classList.toggle("hidden", needle !== "" && !row.textContent.toLowerCase().includes(needle));
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const build = document.getElementById("build");
  if (build) followBuild(build);
  const search = document.getElementById("log-search");
  if (search) search.addEventListener("input", applySearch);
  const level = document.getElementById("log-level");
  if (level) level.addEventListener("change", () => level.form.submit());
  document.addEventListener("submit", (event) => {
    const button = event.submitter;
    if (button && button.dataset.confirm && !window.confirm(button.dataset.confirm)) {
      event.preventDefault();
    }
  });
});
