"""The timeline as one self-contained HTML page: the lanes' data embedded as JSON, and a
small script that draws an SVG swimlane per worker (no network, no external files).
Agent text only ever reaches the page as JSON and the DOM's textContent, never as markup."""

import msgspec

from ..projections.workers import (
    APPROVED,
    ASSIGNED,
    CANCELED,
    COMPLETED,
    CONFLICTED,
    FAILED,
    IN_REVIEW,
    WORKING,
)

COLORS = {
    ASSIGNED: "#b8c4d6",
    WORKING: "#4a90d9",
    CONFLICTED: "#e8833a",
    IN_REVIEW: "#9b6ddb",
    APPROVED: "#3fb58e",
    COMPLETED: "#2e7d32",
    FAILED: "#d64545",
    CANCELED: "#8a8a8a",
}


def embed_json(obj) -> str:
    """JSON safe inside <script>: no '<', '>' or '&' can close the element or open a tag."""
    data = msgspec.json.encode(obj)
    data = data.replace(b"<", b"\\u003c").replace(b">", b"\\u003e").replace(b"&", b"\\u0026")
    return data.decode()


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>coord timeline</title>
<style>
body { font: 13px/1.4 system-ui, sans-serif; margin: 16px; color: #222; background: #fafafa; }
h1 { font-size: 16px; margin: 0 0 4px; }
#meta { color: #666; margin-bottom: 8px; }
#legend span { display: inline-block; margin-right: 12px; }
#legend i { display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: -2px; border-radius: 2px; }
svg { background: #fff; border: 1px solid #ddd; width: 100%; height: auto; }
.label { font-size: 12px; fill: #222; }
.axis { font-size: 10px; fill: #777; }
.grid { stroke: #eee; }
.seg { stroke: #fff; stroke-width: 0.5; }
.beat { fill: #fff; stroke: #222; stroke-width: 0.8; }
.msg { fill: #f2c037; stroke: #6b5200; stroke-width: 0.8; }
.conflict { fill: #d00; }
.lane:hover .bg { fill: #f3f6fb; }
#tip { position: fixed; display: none; background: #222; color: #fff; padding: 6px 8px; border-radius: 4px;
       font-size: 12px; white-space: pre-wrap; max-width: 480px; pointer-events: none; z-index: 2; }
</style></head>
<body>
<h1>coord timeline</h1>
<div id="meta"></div>
<div id="legend"></div>
<div id="chart"></div>
<div id="tip"></div>
<script type="application/json" id="data">__DATA__</script>
<script>
"use strict";
(function () {
  var D = JSON.parse(document.getElementById("data").textContent);
  var COLORS = D.colors, NS = "http://www.w3.org/2000/svg";
  var t0 = Date.parse(D.start), t1 = Date.parse(D.end);
  if (!(t1 > t0)) { t1 = t0 + 1000; }
  var LABEL = 170, W = 1200, PLOT = W - LABEL - 20, LANE = 26, TOP = 30;
  var lanes = D.lanes, H = TOP + (lanes.length + 1) * LANE + 10;
  function x(ts) { return LABEL + (Date.parse(ts) - t0) / (t1 - t0) * PLOT; }
  function el(name, attrs, parent) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) { e.setAttribute(k, attrs[k]); }
    if (parent) { parent.appendChild(e); }
    return e;
  }
  var tip = document.getElementById("tip");
  function hover(e, text) {
    el("title", {}, e).textContent = text;  // native tooltip too (and for screen readers)
    e.addEventListener("mousemove", function (ev) {
      tip.textContent = text; tip.style.display = "block";
      tip.style.left = (ev.clientX + 12) + "px"; tip.style.top = (ev.clientY + 12) + "px";
    });
    e.addEventListener("mouseleave", function () { tip.style.display = "none"; });
  }
  document.getElementById("meta").textContent = lanes.length + " workers, " + D.start + " to " + D.end +
    " (" + D.events + " events)";
  var legend = document.getElementById("legend");
  Object.keys(COLORS).forEach(function (s) {
    var span = document.createElement("span"), i = document.createElement("i");
    i.style.background = COLORS[s]; span.appendChild(i); span.appendChild(document.createTextNode(s));
    legend.appendChild(span);
  });
  ["heartbeat", "message", "conflict"].forEach(function (s) {
    var span = document.createElement("span");
    span.textContent = (s === "heartbeat" ? "\\u25cb " : s === "message" ? "\\u25c6 " : "\\u2716 ") + s;
    legend.appendChild(span);
  });
  var svg = el("svg", {viewBox: "0 0 " + W + " " + H, id: "timeline", role: "img"});
  var ticks = 8;
  for (var k = 0; k <= ticks; k++) {
    var tx = LABEL + PLOT * k / ticks, t = new Date(t0 + (t1 - t0) * k / ticks).toISOString();
    el("line", {x1: tx, x2: tx, y1: TOP - 6, y2: H - 4, "class": "grid"}, svg);
    el("text", {x: tx, y: TOP - 10, "class": "axis", "text-anchor": k === ticks ? "end" : k === 0 ? "start" : "middle"}, svg).textContent =
      t.slice(5, 10) + " " + t.slice(11, 16);
  }
  function laneRow(i, name, cls) {
    var g = el("g", {"class": cls, "data-worker": name}, svg), y = TOP + i * LANE;
    el("rect", {x: 0, y: y, width: W, height: LANE, fill: "transparent", "class": "bg"}, g);
    var label = el("text", {x: 6, y: y + LANE / 2 + 4, "class": "label"}, g);
    label.textContent = name.length > 24 ? name.slice(0, 23) + "\\u2026" : name;
    return [g, y];
  }
  function mark(g, cls, cx, cy, text) {
    var m = cls === "msg"
      ? el("path", {d: "M" + cx + " " + (cy - 5) + " l5 5 l-5 5 l-5 -5 z", "class": cls}, g)
      : cls === "conflict"
      ? el("path", {d: "M" + (cx - 4) + " " + (cy - 4) + " l8 8 m0 -8 l-8 8", stroke: "#d00", "stroke-width": 2, "class": cls}, g)
      : el("circle", {cx: cx, cy: cy, r: 3, "class": cls}, g);
    hover(m, text);
  }
  lanes.forEach(function (lane, i) {
    var r = laneRow(i, lane.worker, "lane"), g = r[0], y = r[1];
    hover(g.querySelector(".label"), lane.worker + "\\n" + (lane.task || "") +
          (lane.after.length ? "\\nwaits for: " + lane.after.join(", ") : ""));
    lane.segments.forEach(function (s) {
      var x0 = x(s.start), x1 = x(s.end || D.end);
      var rect = el("rect", {x: x0, y: y + 5, width: Math.max(1.5, x1 - x0), height: LANE - 10, rx: 2,
                             fill: COLORS[s.state] || "#ccc", "class": "seg", "data-state": s.state}, g);
      hover(rect, lane.worker + ": " + s.state + "\\nfrom " + s.start + "\\nto " + (s.end || "now") +
            "\\nby " + s.by + " (" + s.type + ")" + (s.holder ? "\\nholder " + s.holder : ""));
    });
    lane.beats.forEach(function (b) {
      mark(g, "beat", x(b.ts), y + LANE / 2, "heartbeat " + b.ts + " by " + b.from + (b.note ? "\\n" + b.note : ""));
    });
    lane.msgs.forEach(function (m) {
      mark(g, "msg", x(m.ts), y + 5, m.type + " " + m.ts + "\\n" + m.from + " \\u2192 " + m.to);
    });
    lane.conflicts.forEach(function (c) {
      mark(g, "conflict", x(c.ts), y + LANE / 2, "CONFLICT (kept, not applied) " + c.ts + "\\n" + c.type +
           " by " + c.from + "\\n" + c.reason);
    });
  });
  var r = laneRow(lanes.length, "(other messages)", "msgrow"), y = r[1];
  D.messages.forEach(function (m) {
    mark(r[0], "msg", x(m.ts), y + LANE / 2 - 5, m.type + " " + m.ts + "\\n" + m.from + " \\u2192 " + m.to);
  });
  document.getElementById("chart").appendChild(svg);
  var box = svg.getBoundingClientRect();
  document.body.setAttribute("data-rendered", String(lanes.length));
  document.body.setAttribute("data-width", String(Math.round(box.width)));
})();
</script>
</body></html>
"""


def render(data: dict, events: int) -> str:
    payload = dict(data, colors=COLORS, events=events)
    return PAGE.replace("__DATA__", embed_json(payload))
