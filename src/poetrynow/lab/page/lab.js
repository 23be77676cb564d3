// The lab's page: the settings form, the run's events (Server-Sent Events), a lane per task.
// Every request carries the lab's token; the server refuses any other page's.
"use strict";

const token = document.body.dataset.token;
const withToken = (path) => `${path}${path.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}`;
const NS = "http://www.w3.org/2000/svg";
const ROW = 22, LEFT = 190, WIDTH = 1000;

let setup = null;      // what the lab offers: engines, poems, defaults
let run = null;        // the run drawn now: its servers, panels, axis
let drawPending = false;

function element(tag, attributes = {}, text = "") {
  const made = tag.startsWith("svg:") ? document.createElementNS(NS, tag.slice(4)) : document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) made.setAttribute(name, value);
  if (text) made.textContent = text;
  return made;
}

function serverRow(poem, numBytes) {
  const row = element("div", { class: "server-row" });
  const choose = element("select", { class: "poem" });
  for (const name of setup.poems) {
    const option = element("option", { value: name }, name);
    if (name === poem) option.selected = true;
    choose.append(option);
  }
  const bytes = element("input", { class: "num-bytes", type: "number", min: "5", max: "100000", value: String(numBytes) });
  const remove = element("button", { type: "button" }, "remove");
  remove.addEventListener("click", () => row.remove());
  row.append(choose, " ", bytes, " ", remove);
  return row;
}

async function loadSetup() {
  setup = await (await fetch(withToken("setup"))).json();
  const engines = document.getElementById("engines");
  for (const engine of setup.engines) {
    const box = element("input", { type: "checkbox", name: "engine", value: engine.name });
    box.checked = setup.chosen.includes(engine.name);
    box.dataset.xform = engine.xform ? "yes" : "no";
    const label = element("label", { title: engine.model });
    label.append(box, ` ${engine.name}`);
    engines.append(label);
  }
  const rows = document.getElementById("server-rows");
  for (const [poem, numBytes] of setup.servers) rows.append(serverRow(poem, numBytes));
  document.getElementById("add-server").addEventListener("click", () => rows.append(serverRow(setup.poems[0], 10)));
  document.getElementById("delay").value = setup.delay;
  const cost = document.getElementById("cost");
  cost.value = setup.transform.cost;
  cost.max = setup.transform.max_cost;
  for (const [id, names] of [["kind", setup.transform.kinds], ["place", setup.transform.places]]) {
    for (const name of names) document.getElementById(id).append(element("option", { value: name }, name));
  }
  document.getElementById("xform-on").addEventListener("change", transformChosen);
}

// With a transform, only the engines that send a poem on may run: the others are greyed out.
function transformChosen() {
  const on = document.getElementById("xform-on").checked;
  const boxes = [...document.querySelectorAll("input[name=engine]")];
  for (const box of boxes) {
    const cannot = on && box.dataset.xform !== "yes";
    if (cannot) box.checked = false;
    box.disabled = cannot;
    box.parentElement.classList.toggle("cannot", cannot);
  }
  if (on && !boxes.some((box) => box.checked)) boxes.find((box) => box.dataset.xform === "yes").checked = true;
}

function settings() {
  return {
    engines: [...document.querySelectorAll("input[name=engine]:checked")].map((box) => box.value),
    servers: [...document.querySelectorAll(".server-row")].map((row) => [
      row.querySelector(".poem").value, Number(row.querySelector(".num-bytes").value),
    ]),
    delay: Number(document.getElementById("delay").value),
    transform: document.getElementById("xform-on").checked ? {
      cost: Number(document.getElementById("cost").value),
      kind: document.getElementById("kind").value,
      place: document.getElementById("place").value,
    } : null,
  };
}

function say(status, problem = "") {
  document.getElementById("status").textContent = status;
  document.getElementById("problem").textContent = problem;
}

function running(yes) {
  document.getElementById("run").disabled = yes;
  document.getElementById("cancel").disabled = !yes;
}

async function post(path, body) {
  const answer = await fetch(withToken(path), {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body || {}),
  });
  const text = await answer.text();
  try {
    return [answer.status, JSON.parse(text)];
  } catch {
    return [answer.status, { error: text.slice(0, 200) || answer.statusText }];  // (not the lab's JSON: a proxy's page, say)
  }
}

document.getElementById("setup").addEventListener("submit", async (event) => {
  event.preventDefault();
  const [status, said] = await post("run", settings());
  if (status !== 202) say("not started", said.error || `refused (${status})`);
});
document.getElementById("cancel").addEventListener("click", async () => {
  const [status, said] = await post("cancel");
  if (status !== 200) say("not cancelled", said.error || `refused (${status})`);
});

// -- the run, from its messages

function begin(message) {
  run = { servers: [], panels: new Map(), order: [], engines: message.engines, delay: message.delay, start: null, span: 1, cost: 0 };
  document.getElementById("lanes").replaceChildren();
  document.getElementById("table").textContent = "";
  document.getElementById("sentence").textContent = "";
  document.getElementById("traces").replaceChildren();
  running(true);
  say("starting the servers");
}

function panelFor(engine) {
  let panel = run.panels.get(engine);
  if (!panel) {
    const box = element("div", { class: "panel", "data-engine": engine });
    const title = element("h2", {}, engine);
    const svg = element("svg:svg", { viewBox: `0 0 ${WIDTH} ${ROW * 2}`, preserveAspectRatio: "none" });
    box.append(title, svg);
    document.getElementById("lanes").append(box);
    panel = { engine, box, title, svg, tasks: new Map(), workers: new Map(), origin: null, ended: null };
    run.panels.set(engine, panel);
    run.order.push(engine);
  }
  return panel;
}

function taskOf(panel, number) {
  let task = panel.tasks.get(number);
  if (!task) {
    task = { number, thread: "", connected: null, ended: null, failed: false, reads: [], transforms: [] };
    panel.tasks.set(number, task);
  }
  return task;
}

function onEvent(message) {
  const panel = panelFor(message.engine);
  if (message.event === "summary") { panel.ended = message.elapsed; scheduleDraw(); return; }
  if (!("task" in message)) return;
  if (panel.origin === null) panel.origin = performance.now() / 1000 - message.t;
  const task = taskOf(panel, message.task);
  if (message.thread) task.thread = message.thread;
  if (message.event === "connected") task.connected = message.t;
  if (message.event === "received") task.reads.push([message.t, message.work || 0]);
  if (message.event === "transformed" || message.event === "transformfailed") task.transforms.push([message.t, message.work || 0]);
  if (message.event === "finished") task.ended = message.t;
  if (message.event === "failed") { task.ended = message.t; task.failed = true; }
  run.span = Math.max(run.span, message.t);
  scheduleDraw();
}

// The transform server's work (Part 20): a lane per worker, under the engine's tasks.
function onWork(message) {
  const panel = panelFor(message.engine);
  if (!panel.workers.has(message.worker)) panel.workers.set(message.worker, []);
  panel.workers.get(message.worker).push([message.began, message.ended]);
  run.span = Math.max(run.span, message.ended);
  scheduleDraw();
}

function scheduleDraw() {
  if (drawPending) return;
  drawPending = true;
  requestAnimationFrame(() => { drawPending = false; draw(); });
}

function draw() {
  if (!run) return;
  const span = Math.max(run.span, run.ideal || 0, 0.001);
  const x = (t) => LEFT + (WIDTH - LEFT - 10) * (t / span);
  // A bar from "from" to "to" seconds on the lane whose middle is y, at least 2 units wide.
  const bar = (lane, from, to, y, kind, half) => {
    const width = Math.max(2, x(to) - x(from));
    lane.append(element("svg:rect", { class: kind, x: String(x(to) - width), y: String(y - half), width: String(width), height: String(2 * half) }));
  };
  for (const panel of run.panels.values()) {
    const tasks = [...panel.tasks.values()].sort((a, b) => a.number - b.number);
    const workers = [...panel.workers.keys()].sort((a, b) => a.length - b.length || a.localeCompare(b));
    const height = ROW * (tasks.length + workers.length + 1);
    panel.svg.setAttribute("viewBox", `0 0 ${WIDTH} ${height}`);
    panel.svg.setAttribute("height", String(height));
    panel.svg.replaceChildren();
    tasks.forEach((task, row) => {
      const y = ROW * row + ROW / 2;
      const lane = element("svg:g", { class: "lane", "data-task": String(task.number) });
      lane.append(element("svg:text", { class: "label", x: "4", y: String(y + 4) }, `task ${task.number}  ${task.thread}`));
      if (task.connected !== null) {
        const last = task.ended !== null ? task.ended : run.span;
        lane.append(element("svg:line", { class: "wait", x1: String(x(task.connected)), x2: String(x(last)), y1: String(y), y2: String(y) }));
      }
      for (const [t, work] of task.reads) bar(lane, t - work, t, y, "read", 7);
      for (const [t, work] of task.transforms) bar(lane, t - work, t, y, "xform", 4);
      if (task.failed) lane.append(element("svg:rect", { class: "fail", x: String(x(task.ended) - 3), y: String(y - 9), width: "6", height: "18" }));
      panel.svg.append(lane);
    });
    workers.forEach((worker, n) => {
      const y = ROW * (tasks.length + n) + ROW / 2;
      const lane = element("svg:g", { class: "worker", "data-worker": worker });
      lane.append(element("svg:text", { class: "label", x: "4", y: String(y + 4) }, `server ${worker}`));
      for (const [began, ended] of panel.workers.get(worker)) bar(lane, began, ended, y, "work", 7);
      panel.svg.append(lane);
    });
    const axis = ROW * (tasks.length + workers.length) + 14;
    panel.svg.append(element("svg:text", { class: "axis", x: String(LEFT), y: String(axis) }, "0 s"));
    panel.svg.append(element("svg:text", { class: "axis", x: String(WIDTH - 60), y: String(axis) }, `${span.toFixed(1)} s`));
    const took = panel.ended !== null ? `: ${panel.ended.toFixed(2)} s` : "";
    panel.title.textContent = `${panel.engine}${panel.model ? ` (${panel.model})` : ""}${took}`;
  }
}

// The longest ideal of the run's engines, for the time axis: a blocking client takes every server's
// schedule in turn, a concurrent one the slowest; each poem's transform comes after it, and CPU work
// (run.cores) takes turns on the cores, in the order the poems come (as schedule.ideal_total does).
function idealOf(run) {
  const came = run.servers.map((s) => Math.ceil(s.bytes / s.num_bytes) * run.delay);
  const blocking = run.engines.some((name) => !setup.engines.find((e) => e.name === name)?.concurrent);
  if (blocking) return came.reduce((sum, t) => sum + t + run.cost, 0);
  if (!run.cores || !run.cost) return Math.max(0, ...came) + (came.length ? run.cost : 0);
  const free = new Array(run.cores).fill(0);
  for (const t of came.sort((a, b) => a - b)) {
    const first = free.indexOf(Math.min(...free));
    free[first] = Math.max(free[first], t) + run.cost;
  }
  return Math.max(0, ...free);
}

function onMessage(message) {
  switch (message.type) {
    case "begin": begin(message); break;
    case "server":
      run.servers.push(message);
      run.ideal = idealOf(run);
      say(`${run.servers.length} server${run.servers.length > 1 ? "s" : ""} serving`);
      break;
    case "transform": run.cost = message.cost; run.cores = message.cores; run.ideal = idealOf(run); say(`${message.command} serving`); break;
    case "work": onWork(message); break;
    case "engine": panelFor(message.engine).model = message.model; say(`running ${message.engine}`); scheduleDraw(); break;
    case "event": onEvent(message); break;
    case "ended": {
      const link = element("a", { href: withToken(`trace?engine=${encodeURIComponent(message.engine)}`), download: `poetrynow-${message.engine}.json` }, `${message.engine}'s trace`);
      document.getElementById("traces").append(link, " ");
      if (message.status && !run.stopped) say(`${message.engine} failed`, message.why);  // (not: cut short by a cancel)
      break;
    }
    case "table":
      document.getElementById("table").textContent = message.table;
      document.getElementById("sentence").textContent = message.sentence;
      say("done");
      break;
    case "cancelled": run.stopped = true; say("cancelled", message.why); break;
    case "failed": run.stopped = true; say("failed", message.why); break;
    case "stopped": running(false); break;  // (every server and client of the run has ended: the next may go)
    case "dropped": say("reloaded", `the first ${message.kept} events are drawn again; ${message.count} after them are not kept`); break;
  }
}

loadSetup().then(() => {
  const events = new EventSource(withToken("events"));
  events.onmessage = (event) => onMessage(JSON.parse(event.data));
  events.onerror = () => say("the lab is not answering");
});
