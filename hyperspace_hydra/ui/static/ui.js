// Live parts of the hyperspace ui pages: each page polls a small JSON answer (or its own HTML) and updates in place.
"use strict";

const POLL_MS = 1000;

async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.json();
}

function every(ms, task) {
  const tick = async () => {
    let again = true;
    try { again = (await task()) !== false; } catch (error) { console.warn(error); }
    if (again) setTimeout(tick, ms);
  };
  setTimeout(tick, ms);
}

// Runs: when a run was added, the table is fetched again and its rows swapped in (chosen rows stay chosen).
function newRunsIntoTable() {
  every(POLL_MS, async () => {
    const table = document.getElementById("runs");
    const latest = (await getJSON("/api/latest-run")).id;
    if (!table || String(latest ?? "") === table.dataset.latestRun) return true;
    const fresh = new DOMParser().parseFromString(await (await fetch(location.href)).text(), "text/html").getElementById("runs");
    if (!fresh) return true;
    const chosen = new Set(chosenRuns());
    fresh.querySelectorAll("input.choose").forEach((box) => { box.checked = chosen.has(box.value); });
    table.replaceChildren(...fresh.childNodes);
    table.dataset.latestRun = fresh.dataset.latestRun;
    enableCompare();
    return true;
  });
}

// Runs: the rows that are RUNNING get their status, result and duration anew until they end.
function liveRunsTable() {
  every(POLL_MS, async () => {
    const rows = [...document.querySelectorAll("#runs tr[data-status=RUNNING]")];
    if (rows.length === 0) return true;
    const ids = rows.map((row) => row.dataset.runId).join(",");
    const states = (await getJSON(`/api/run-states?ids=${ids}`)).runs;
    for (const row of rows) {
      const state = states[row.dataset.runId];
      if (!state) continue;
      row.dataset.status = state.status;
      const status = row.querySelector("td.status");
      status.textContent = state.status;
      status.className = `status status-${state.status}`;
      row.querySelector("td.result").textContent = state.result;
      row.querySelector("td.duration").textContent = state.duration;
    }
    return true;
  });
}

// Runs: the chosen rows open the Compare page.
function chosenRuns() {
  return [...document.querySelectorAll("#runs input.choose:checked")].map((box) => box.value);
}

function enableCompare() {
  const button = document.getElementById("compare-selected");
  if (button) button.disabled = chosenRuns().length < 2;
}

function compareChosen() {
  document.addEventListener("change", (event) => { if (event.target.matches("#runs input.choose")) enableCompare(); });
  document.addEventListener("click", (event) => {
    if (event.target.closest("#compare-selected")) location.href = `/compare?ids=${chosenRuns().join(",")}`;
  });
}

// Compare: each metric as one chart with a curve per run.
async function compareMetrics() {
  const ids = document.getElementById("compare").dataset.ids;
  const answer = await getJSON(`/compare.json?ids=${ids}`);
  const box = document.getElementById("metrics");
  for (const [name, curves] of Object.entries(answer.metrics)) {
    box.querySelector(".none")?.remove();
    const chart = metricChart(box, name);
    const traces = curves.map((curve) => ({ x: curve.steps, y: curve.values, name: `run ${curve.run}`, mode: "lines+markers", type: "scatter" }));
    Plotly.react(chart, traces, { margin: { l: 50, r: 10, t: 10, b: 35 }, xaxis: { title: { text: "step" } } }, { displayModeBar: false });
    chart.dataset.curves = curves.length;
  }
}

function metricChart(box, name) {
  const figure = document.createElement("figure");
  const title = document.createElement("h3");
  title.textContent = name;  // a name from the store is text, never markup
  const chart = document.createElement("div");
  chart.className = "chart";
  chart.dataset.metric = name;
  figure.append(title, chart);
  box.append(figure);
  return chart;
}

// Run: status, result, output and metric charts, until the run has ended (then once more).
function liveRun() {
  const runId = document.getElementById("run").dataset.runId;
  const charts = new Map();
  const update = async () => {
    const live = await getJSON(`/api/runs/${runId}/live`);
    const status = document.getElementById("status");
    status.textContent = live.status;
    status.className = `status status-${live.status}`;
    document.getElementById("result").textContent = live.result;
    document.getElementById("duration").textContent = live.duration;
    const output = document.getElementById("output");
    if (output.textContent !== live.output) {
      const atBottom = output.scrollTop + output.clientHeight >= output.scrollHeight - 4;
      output.textContent = live.output;
      if (atBottom) output.scrollTop = output.scrollHeight;
    }
    const trace = document.getElementById("fail-trace");
    trace.textContent = live.fail_trace || "";
    trace.hidden = !live.fail_trace;
    drawMetrics(charts, live.metrics);
    return live.status === "RUNNING";
  };
  update().then((running) => { if (running) every(POLL_MS, update); }).catch(console.warn);
}

function drawMetrics(charts, metrics) {
  const box = document.getElementById("metrics");
  for (const [name, series] of Object.entries(metrics)) {
    if (!charts.has(name)) {
      box.querySelector(".none")?.remove();
      charts.set(name, metricChart(box, name));
    }
    const layout = { margin: { l: 50, r: 10, t: 10, b: 35 }, xaxis: { title: { text: "step" } } };
    Plotly.react(charts.get(name), [{ x: series.steps, y: series.values, mode: "lines+markers", type: "scatter" }], layout, { displayModeBar: false });
    charts.get(name).dataset.points = series.values.length;
  }
}

function copyButton() {
  document.getElementById("copy-reproduce").addEventListener("click", async (event) => {
    await navigator.clipboard.writeText(document.getElementById("reproduce").textContent);
    event.target.textContent = "copied";
  });
}

// Queue, Sweeps, Sweep: the page's own HTML fetched again and its live part swapped in.
function liveSection() {
  every(POLL_MS, async () => {
    const response = await fetch(location.pathname);
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html").getElementById("live");
    document.getElementById("live").replaceWith(fresh);
    return true;
  });
}

// Pause, resume, retry and cancel buttons of a sweep or a job: POST with this UI's token in a header (shown only with --allow-actions).
function sweepActions() {
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button.sweep-action, button.job-action");
    if (!button) return;
    const target = button.dataset.sweepId ? `sweeps/${button.dataset.sweepId}` : `jobs/${button.dataset.jobId}`;
    if (button.dataset.action === "cancel" && !confirm(`Cancel ${target.replace("s/", " ")}?`)) return;
    const headers = { "X-Hyperspace-Token": document.getElementById("action-token")?.value || "" };
    const response = await fetch(`/actions/${target}/${button.dataset.action}`, { method: "POST", headers });
    const answer = await response.json();
    const message = document.getElementById("action-message");
    message.textContent = answer.done || `error: ${answer.error}`;
    message.hidden = false;
  });
}

// Sweep: Optuna's figures of a search, drawn again while trials come in.
function liveSweepFigures() {
  const sweepId = document.getElementById("sweep").dataset.sweepId;
  const charts = document.querySelectorAll("[data-figure]");
  if (charts.length === 0) return;
  const draw = async () => {
    const answer = await getJSON(`/sweeps/${sweepId}.json`);
    for (const chart of charts) {
      const figure = answer.figures[chart.dataset.figure];
      chart.closest("figure").hidden = !figure;
      if (figure) {
        const layout = { ...figure.layout, title: undefined, margin: { l: 60, r: 20, t: 20, b: 50 } };
        Plotly.react(chart, figure.data, layout, { displayModeBar: false });
        chart.dataset.points = figure.data.reduce((total, trace) => total + (trace.x || trace.dimensions || []).length, 0);
      }
    }
    return answer.sweep.state === "RUNNING" || "QUEUED" in answer.sweep.counts || "RUNNING" in answer.sweep.counts;
  };
  draw().then((going) => { if (going) every(POLL_MS * 2, draw); }).catch(console.warn);
}

const pages = {
  runs: () => { liveRunsTable(); newRunsIntoTable(); compareChosen(); },
  compare: () => compareMetrics().catch(console.warn),
  run: () => { liveRun(); copyButton(); },
  sweeps: () => { liveSection(); sweepActions(); },
  sweep: () => { liveSection(); liveSweepFigures(); },
  queue: () => { liveSection(); sweepActions(); },
};
pages[document.body.dataset.page]?.();
