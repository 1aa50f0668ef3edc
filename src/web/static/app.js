// coord board: draws every view from the JSON API and keeps it live from one event
// stream (server-sent events, resumed from the last seq seen). What agents wrote only ever
// enters the page as text: textContent and text nodes, never markup (docs/web.md).
"use strict";
(function () {
  var STATES = ["ASSIGNED", "WORKING", "CONFLICTED", "IN_REVIEW", "APPROVED", "COMPLETED", "FAILED", "CANCELED"];
  var TERMINAL = {COMPLETED: 1, CANCELED: 1};
  var ACTIVE = {WORKING: 1, CONFLICTED: 1};
  var LIVENESS = ["OK", "WARN", "STALE", "DEAD", "REMOTE"];
  var main = document.getElementById("main");

  // ---------------------------------------------------------------- helpers
  function h(tag, attrs) {
    var e = document.createElement(tag);
    if (attrs) {
      for (var k in attrs) {
        var v = attrs[k];
        if (v === null || v === undefined || v === false) { continue; }
        if (k === "class") { e.className = v; }
        else if (k === "text") { e.textContent = v; }
        else if (k.slice(0, 2) === "on") { e.addEventListener(k.slice(2), v); }
        else { e.setAttribute(k, v === true ? "" : String(v)); }
      }
    }
    for (var i = 2; i < arguments.length; i++) { add(e, arguments[i]); }
    return e;
  }
  function add(parent, kid) {
    if (kid === null || kid === undefined || kid === false) { return; }
    if (Array.isArray(kid)) { kid.forEach(function (k) { add(parent, k); }); return; }
    parent.appendChild(typeof kid === "object" ? kid : document.createTextNode(String(kid)));
  }
  function clear(e) { while (e.firstChild) { e.removeChild(e.firstChild); } return e; }
  function known(list, v) { return list.indexOf(v) >= 0 ? v : "unknown"; }
  function workerHref(id) { return "/workers/" + encodeURIComponent(id); }
  function workerLink(id) { return h("a", {href: workerHref(id), "data-nav": true, class: "wlink"}, id); }

  var skew = 0; // server clock minus this browser's, in ms (ages are the server's view)
  function now() { return Date.now() + skew; }
  function ms(ts) { return ts ? Date.parse(ts.length > 24 ? ts.slice(0, 23) + "Z" : ts) : NaN; }
  function fmtAge(s) {
    if (s === null || s === undefined || isNaN(s)) { return "-"; }
    s = Math.max(0, Math.floor(s));
    if (s < 60) { return s + "s"; }
    if (s < 3600) { return Math.floor(s / 60) + "m"; }
    if (s < 86400) { var m = Math.floor((s % 3600) / 60); return Math.floor(s / 3600) + "h" + (m < 10 ? "0" : "") + m + "m"; }
    return Math.floor(s / 86400) + "d" + Math.floor((s % 86400) / 3600) + "h";
  }
  function since(ts) { var t = ms(ts); return isNaN(t) ? null : (now() - t) / 1000; }
  function fmtTime(ts) { return ts ? ts.slice(0, 10) + " " + ts.slice(11, 19) : "-"; }
  function oneLine(s, n) {
    s = String(s === null || s === undefined ? "" : s).replace(/\s+/g, " ").trim();
    return s.length > n ? s.slice(0, n - 1) + "\u2026" : s;
  }
  function payloadText(p) {
    if (!p || typeof p !== "object") { return ""; }
    if (typeof p.text === "string") { return p.text; }
    var rest = {};
    for (var k in p) { if (k !== "$head") { rest[k] = p[k]; } }
    var s = JSON.stringify(rest);
    return s === "{}" ? "" : s;
  }
  function payloadFacts(p) {
    // a lifecycle payload as "key: value" pairs (clone ids and blob bookkeeping left out)
    var out = [];
    for (var k in p || {}) {
      if (k === "clone" || k === "$head") { continue; }
      var v = p[k];
      out.push(k + ": " + (typeof v === "string" ? v : JSON.stringify(v)));
    }
    return out.join(" \u00b7 ");
  }
  function freshen(tr) {
    // a changed row is marked for a moment: two repaints, not an animation's sixty a
    // second (twenty open pages on one machine felt every frame)
    tr.classList.add("fresh");
    setTimeout(function () { tr.classList.remove("fresh"); }, 1500);
  }
  function statePill(s) { return h("span", {class: "pill st-" + known(STATES, s)}, s || "-"); }
  function liveBadge(l) {
    if (!l) { return h("span", {class: "muted"}, "-"); }
    return h("span", {class: "live lv-" + known(LIVENESS, l)}, h("i"), l);
  }
  function section(title, extra) {
    return h("section", {class: "panel"}, h("h2", null, title, extra || null));
  }
  function errorBox(err) { return h("div", {class: "error"}, String(err && err.message ? err.message : err)); }

  // ---------------------------------------------------------------- the API
  function ApiError(message, status) { this.message = message; this.status = status; }
  function api(path) {
    return fetch(path, {credentials: "same-origin", headers: {Accept: "application/json"}}).then(function (r) {
      if (r.status === 401) { location.reload(); throw new ApiError("signed out", 401); }
      return r.json().catch(function () { return null; }).then(function (body) {
        if (!r.ok) {
          throw new ApiError(body && body.error ? body.error.message : "HTTP " + r.status, r.status);
        }
        var n = r.headers.get("coord-now");
        if (n) { skew = ms(n) - Date.now(); }
        return {data: body, seq: Number(r.headers.get("coord-seq") || 0)};
      });
    });
  }

  // ---------------------------------------------------------------- the event stream
  // One EventSource per page. It sends Last-Event-ID when it reconnects by itself; when
  // it gives up (an HTTP error), a new one starts from the last seq this page saw.
  var debug = window.coordDebug = {received: [], applied: {}, record: false, resets: 0, opened: 0};
  var stream = {last: 0, es: null, retry: null};
  var conn = document.getElementById("conn");
  function setConn(state, title) {
    conn.className = "conn " + state;
    conn.lastChild.textContent = state === "live" ? "live" : state === "offline" ? "offline" : "reconnecting";
    conn.title = title || "";
    document.body.setAttribute("data-conn", state);
  }
  function openStream(after) {
    if (stream.es) { stream.es.close(); }
    stream.last = Math.max(stream.last, after);
    var es = stream.es = new EventSource("/api/stream?after=" + stream.last);
    debug.opened++;
    es.onopen = function () { setConn("live", "live updates: up to event " + stream.last); };
    es.addEventListener("coord", function (m) {
      var d = JSON.parse(m.data);
      debug.received.push(d.seq);
      if (debug.received.length > 100000) { debug.received.splice(0, 50000); }
      if (d.seq <= stream.last) { return; }
      stream.last = d.seq;
      document.body.setAttribute("data-seq", String(d.seq));
      conn.title = "live updates: up to event " + d.seq;
      if (view && view.onEvent) { view.onEvent(d); }
    });
    es.addEventListener("liveness", function (m) {
      var d = JSON.parse(m.data);
      if (view && view.onLiveness) { view.onLiveness(d.workers, d.full); }
    });
    es.addEventListener("reset", function (m) {
      var d = JSON.parse(m.data);
      debug.resets++;
      stream.last = d.seq;
      if (view && view.reload) { view.reload(); }
    });
    es.onerror = function () {
      if (es.readyState === EventSource.CLOSED) {
        setConn("offline", "no connection to the server; retrying");
        // refused rather than unreachable (a new token since): back to the sign-in page
        fetch("/api/info", {credentials: "same-origin"}).then(function (r) {
          if (r.status === 401) { location.reload(); }
        }, function () {});
        clearTimeout(stream.retry);
        stream.retry = setTimeout(function () { if (stream.es === es) { openStream(stream.last); } }, 2000);
      } else {
        setConn("reconnecting", "reconnecting; the page resumes after event " + stream.last);
      }
    };
  }
  function ensureStream(seq) { if (!stream.es) { openStream(seq); } }

  // ---------------------------------------------------------------- a view's life
  // A view loads a snapshot (which says the seq it includes), then applies stream events
  // with a greater seq; events that arrive while it loads wait in a buffer.
  function Live(view) {
    view.seq = null;
    view.buffer = [];
    view.onEvent = function (d) {
      if (view.seq === null) { view.buffer.push(d); return; }
      if (d.seq > view.seq) { view.apply(d); }
    };
    view.snapshot = function (seq) {
      view.seq = seq;
      ensureStream(seq);
      var b = view.buffer;
      view.buffer = [];
      b.forEach(function (d) { if (d.seq > seq) { view.apply(d); } });
    };
    view.unready = function () { view.seq = null; view.buffer = []; };
    return view;
  }
  function ready(v, name) {
    if (view !== v) { return; }
    document.body.setAttribute("data-ready", name);
    if (debug.readyAt === undefined) {  // the first view drawn: ms since navigation began
      debug.readyAt = performance.now();
      requestAnimationFrame(function () { setTimeout(function () { debug.paintedAt = performance.now(); }, 0); });
    }
  }
  function refresher(fn, wait) {
    // run fn at most once per `wait` ms (or four times as long as it took: a whole-history
    // fold of a big store is not redone back to back), and once more if asked while it ran
    var timer = null, running = false, again = false, took = 0;
    function go() {
      timer = null;
      if (running) { again = true; return; }
      running = true;
      var t = performance.now();
      Promise.resolve(fn()).catch(function () {}).then(function () {
        took = performance.now() - t;
        running = false;
        if (again) { again = false; schedule(); }
      });
    }
    function schedule() { if (!timer) { timer = setTimeout(go, Math.max(wait, 4 * took)); } }
    return schedule;
  }

  // ---------------------------------------------------------------- board
  function summaryOf(d) {
    var note = d.task, hb = d.heartbeat || {};
    if (hb.idle_s !== null && hb.idle_s !== undefined && ACTIVE[d.state]) {
      note = "idle " + fmtAge(hb.idle_s) + "  " + (hb.note || note);
    } else if (ACTIVE[d.state] && hb.note) {
      note = hb.note;
    } else if ((d.state === "FAILED" || d.state === "CANCELED" || d.state === "ASSIGNED") && d.reason) {
      note = d.reason;
    } else if ((d.state === "IN_REVIEW" || d.state === "APPROVED" || d.state === "COMPLETED") && d.summary) {
      note = d.summary;
    }
    return note || "";
  }
  function list(v) {
    if (v === null || v === undefined || v === "") { return []; }
    return Array.isArray(v) ? v : [v];
  }
  function waitsFor(d) {
    // The work graph (issue 14) and checks (issue 16) add fields; whatever is present shows.
    var out = [];
    var blocked = list(d.blocked_by);
    if (blocked.length) { out.push(h("span", {class: "tag bad"}, "blocked by ", blocked.join(", "))); }
    var after = list(d.waiting_for).length ? list(d.waiting_for) : list(d.waiting_on);
    if (!after.length && d.ready === false) { after = list(d.after); }
    if (after.length) { out.push(h("span", {class: "tag"}, "after ", after.join(", "))); }
    if (!out.length) {
      var ex = d.expected || {};
      var who = ex.waiting_on || (d.state === "ASSIGNED" ? (d.assignee || "any agent") : null);
      out.push(who ? h("span", {title: ex.why || ""}, who) : h("span", {class: "muted"}, "-"));
    }
    return out;
  }
  function checksOf(d) {
    var c = d.checks;
    if (!c) { return []; }
    var items = [];
    if (Array.isArray(c)) { items = c; }
    else if (typeof c === "object") {
      for (var k in c) { var v = c[k]; items.push(typeof v === "object" && v ? Object.assign({name: k}, v) : {name: k, status: v}); }
    }
    return items.map(function (x) {
      var st = String(x.status || x.result || x.outcome || (x.passed === true ? "passed" : x.passed === false ? "failed" : "")).toLowerCase();
      var cls = /pass|ok|success/.test(st) ? "ok" : /fail|error/.test(st) ? "bad" : "";
      return h("span", {class: "tag " + cls, title: (x.name || "") + " " + st}, (cls === "ok" ? "\u2713 " : cls === "bad" ? "\u2717 " : "\u2022 ") + (x.name || "check"));
    });
  }

  function BoardView() {
    var self = Live(this);
    var items = new Map(), rows = new Map();
    var filter = {text: "", state: null, finished: false};
    var tbody, chips, empty, counter, checksShown = false, table, typing = null;

    self.start = function () {
      var input = h("input", {type: "search", placeholder: "Filter by worker, holder, task\u2026", "aria-label": "filter",
        oninput: function () { clearTimeout(typing); typing = setTimeout(function () { filter.text = input.value.toLowerCase(); applyFilter(); }, 120); }});
      var finished = h("input", {type: "checkbox", onchange: function () { filter.finished = finished.checked; applyFilter(); }});
      chips = h("div", {class: "chips"});
      counter = h("span", {class: "muted"});
      // A grid of rows rather than a <table>: each row lays itself out alone, and rows off
      // screen skip style, layout and paint (content-visibility), so 10,000 cost little.
      tbody = h("div", {class: "rows", role: "rowgroup"});
      table = h("div", {class: "board no-checks", id: "board", role: "table", "aria-label": "workers"},
        h("div", {class: "head", role: "row"}, ["Worker", "State", "Holder", "Age", "Heartbeat", "Liveness", "Waiting on", "Checks", "Summary"].map(function (t) {
          return h("div", {class: "cell c-" + t.toLowerCase().replace(/ /g, "-"), role: "columnheader"}, t);
        })), tbody);
      empty = h("p", {class: "empty", hidden: true}, "No workers yet: coord spawn ID --task TEXT adds one.");
      add(clear(main), [
        h("div", {class: "toolbar"}, chips, h("div", {class: "spacer"}), counter),
        h("div", {class: "toolbar"}, input, h("label", {class: "check"}, finished, "show completed and canceled")),
        h("div", {class: "boardwrap"}, table), empty,
      ]);
      return self.load();
    };
    // The table holds a row for each worker the filter shows, in the board's order
    // (created, then id); the others are kept as data only (10,000 workers, half of them
    // finished, cost half the rows).
    self.load = function () {
      self.unready();
      return api("/api/status?all=1").then(function (r) {
        items.clear();
        r.data.forEach(function (d) { items.set(d.worker, d); });  // in the board's order already
        updateChecksColumn();
        var done = render(false);
        self.snapshot(r.seq);
        return done.then(function () { ready(self, "board"); });
      });
    };
    self.reload = self.load;
    self.apply = function (d) {
      if (!d.item) { return; }
      if (drawing) { drawing.push(d); return; }  // applied once every row is drawn
      var it = d.item, old = rows.get(it.worker);
      items.set(it.worker, it);
      if (!checksShown && it.checks) { updateChecksColumn(); }
      if (visible(it)) {
        var r = rowFor(it);
        if (old) { tbody.replaceChild(r.tr, old.tr); } else { insertSorted(r.tr, it); }
        freshen(r.tr);
      } else if (old) {
        tbody.removeChild(old.tr);
        rows.delete(it.worker);
      }
      counts();
      if (debug.record) { debug.applied[d.seq] = performance.timeOrigin + performance.now(); }
    };
    // Rows are drawn a screenful first, then in chunks, so a board of thousands is usable
    // at once and the page stays responsive while the rest is laid out. Events that arrive
    // meanwhile wait in `drawing` (applying one replaces its row: order does not matter).
    var drawing = null, drawn = 0;
    function render(sort) {
      var token = ++drawn, waiting = drawing || [];
      drawing = waiting;
      rows.clear();
      clear(tbody);
      var list = Array.from(items.values()).filter(visible);
      if (sort) { list.sort(function (a, b) { return before(key(a), key(b)) ? -1 : before(key(b), key(a)) ? 1 : 0; }); }
      drawCounts();
      var i = 0;
      return new Promise(function (resolve) {
        function chunk(n) {
          if (token !== drawn) { resolve(); return; }  // a newer render took over
          var frag = document.createDocumentFragment();
          for (var end = Math.min(list.length, i + n); i < end; i++) { frag.appendChild(rowFor(list[i]).tr); }
          tbody.appendChild(frag);
          if (debug.firstRowsAt === undefined) {  // the first screenful: drawn, then painted
            debug.firstRowsAt = performance.now();
            requestAnimationFrame(function () { setTimeout(function () { debug.firstPaintAt = performance.now(); }, 0); });
          }
          if (i < list.length) {  // the rest once the first screen is painted
            requestAnimationFrame(function () { setTimeout(function () { chunk(list.length); }, 0); });
            return;
          }
          drawing = null;
          waiting.forEach(function (d) { self.apply(d); });
          resolve();
        }
        chunk(200);
      });
    }
    self.onLiveness = function (map, full) {
      items.forEach(function (d, id) {
        if (!ACTIVE[d.state]) { return; }
        var l = map[id];
        if (l === undefined && !full) { return; }
        l = l || null;
        if (d.liveness === l) { return; }
        d.liveness = l;
        var r = rows.get(id);
        if (!r) { return; }
        clear(r.live);
        add(r.live, liveBadge(l));
        if (l) { r.tr.setAttribute("data-liveness", l); } else { r.tr.removeAttribute("data-liveness"); }
      });
    };
    self.tick = function () {
      rows.forEach(function (r, id) {
        var d = items.get(id);
        var a = fmtAge(since(d.state_since));
        if (r.age.textContent !== a) { r.age.textContent = a; }
        var b = ACTIVE[d.state] && d.last_heartbeat ? fmtAge(since(d.last_heartbeat)) : "-";
        if (r.hb.textContent !== b) { r.hb.textContent = b; }
      });
    };
    function rowFor(d) {
      var conflicts = (d.conflicts || []).length;
      var wcell = cell("c-worker", d.task || d.worker, workerLink(d.worker));
      if (d.priority !== undefined && d.priority !== null) { add(wcell, h("span", {class: "tag prio"}, "P" + d.priority)); }
      if (conflicts) { add(wcell, h("span", {class: "tag bad", title: "events from another clone that could not be applied"}, "\u26a0 " + conflicts + " conflict" + (conflicts > 1 ? "s" : ""))); }
      var holder = cell("c-holder", d.holder, d.holder ? oneLine(d.holder, 80) : h("span", {class: "muted"}, "-"));
      if (d.attempt && d.attempt > 1) { add(holder, h("span", {class: "muted"}, " #" + d.attempt)); }
      var age = cell("c-age num", null, fmtAge(since(d.state_since)));
      var hb = cell("c-heartbeat num", null, ACTIVE[d.state] && d.last_heartbeat ? fmtAge(since(d.last_heartbeat)) : "-");
      var live = cell("c-liveness", null, liveBadge(d.liveness));
      var summary = summaryOf(d);
      var tr = h("div", {role: "row", "data-worker": d.worker, "data-state": d.state, "data-liveness": d.liveness || null,
                         class: "row" + (conflicts ? " has-conflict" : "")},
        wcell, cell("c-state", null, statePill(d.state)), holder, age, hb, live,
        cell("c-waiting-on", null, waitsFor(d)),
        cell("c-checks", null, checksOf(d)),
        cell("c-summary", summary, oneLine(summary, 200)));
      var r = {tr: tr, age: age, hb: hb, live: live};
      rows.set(d.worker, r);
      return r;
    }
    function cell(cls, title, content) { return h("div", {class: "cell " + cls, role: "cell", title: title || null}, content); }
    function key(d) { return [d.created, d.worker]; }
    function before(a, b) { return a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]); }
    function insertSorted(tr, d) {
      var k = key(d), kids = tbody.children, lo = 0, hi = kids.length;
      while (lo < hi) {
        var mid = (lo + hi) >> 1, o = items.get(kids[mid].getAttribute("data-worker"));
        if (o && before(k, key(o))) { hi = mid; } else { lo = mid + 1; }
      }
      tbody.insertBefore(tr, kids[lo] || null);
    }
    function updateChecksColumn() {
      checksShown = false;
      items.forEach(function (d) { if (d.checks) { checksShown = true; } });
      table.classList.toggle("no-checks", !checksShown);
    }
    function visible(d) {
      var ok = filter.state ? d.state === filter.state : (filter.finished || !TERMINAL[d.state]);
      if (ok && filter.text) {
        ok = (d.worker + " " + (d.holder || "") + " " + (d.task || "") + " " + (d.assignee || "")).toLowerCase().indexOf(filter.text) >= 0;
      }
      return ok;
    }
    function applyFilter() { render(true); }
    var countsTimer = null;
    function counts() { if (!countsTimer) { countsTimer = setTimeout(drawCounts, 100); } }
    function drawCounts() {
      clearTimeout(countsTimer);
      countsTimer = null;
      var counts = {}, shown = 0, total = 0;
      items.forEach(function (d) {
        counts[d.state] = (counts[d.state] || 0) + 1;
        total++;
        if (visible(d)) { shown++; }
      });
      clear(chips);
      STATES.forEach(function (s) {
        var n = counts[s] || 0;
        var chip = h("button", {type: "button", class: "chip st-" + s + (filter.state === s ? " on" : "") + (n ? "" : " zero"),
          "data-state": s, title: "only " + s,
          onclick: function () { filter.state = filter.state === s ? null : s; applyFilter(); }},
          h("i"), s.replace("_", " ").toLowerCase(), h("b", null, String(n)));
        chips.appendChild(chip);
      });
      counter.textContent = shown + " of " + total + " workers";
      empty.hidden = total > 0;
      if (total > 0 && shown === 0) { empty.hidden = false; empty.textContent = "No worker matches the filter."; }
      else { empty.textContent = "No workers yet: coord spawn ID --task TEXT adds one."; }
    }
  }

  // ---------------------------------------------------------------- one worker
  function WorkerView(id) {
    var self = Live(this);
    var box, holders = {};
    var again = refresher(function () { return self.load(); }, 150);
    self.start = function () {
      box = h("div", {class: "worker"});
      add(clear(main), [h("p", {class: "crumbs"}, h("a", {href: "/", "data-nav": true}, "Board"), " / ", id), box]);
      return self.load();
    };
    self.load = function () {
      return api("/api/workers/" + encodeURIComponent(id)).then(function (r) {
        self.seq = null;
        render(r.data);
        self.snapshot(r.seq);
        ready(self, "worker");
      }, function (err) {
        add(clear(box), errorBox(err));
        ready(self, "worker");
        if (self.seq === null) {  // nothing shown to keep current: follow from now on
          return api("/api/info").then(function (r) { self.snapshot(r.data.seq); });
        }
      });
    };
    self.reload = self.load;
    self.apply = function (d) {
      var mine = d.to === id || (d.item && d.item.worker === id) ||
        (d.type.slice(0, 4) === "msg." && (holders[d.from] || holders[d.to]));
      if (mine) { again(); }
    };
    self.tick = function () {
      box.querySelectorAll("[data-since]").forEach(function (e) {
        e.textContent = fmtAge(since(e.getAttribute("data-since")));
      });
    };
    function ago(ts) { return ts ? h("span", {"data-since": ts}, fmtAge(since(ts))) : "-"; }
    function render(d) {
      holders = {};
      (d.history || []).forEach(function (e) { if (e.holder) { holders[e.holder] = 1; } });
      if (d.holder) { holders[d.holder] = 1; }
      var ex = d.expected || {};
      var hb = d.heartbeat || {};
      var head = h("div", {class: "whead"},
        h("h1", null, d.worker), statePill(d.state), liveBadge(d.liveness),
        (d.conflicts || []).length ? h("span", {class: "tag bad"}, "\u26a0 " + d.conflicts.length + " conflict(s)") : null);
      var task = h("p", {class: "task"}, d.task || h("span", {class: "muted"}, "(no task text)"));
      var why = h("div", {class: "callout" + ((d.conflicts || []).length || (d.liveness && d.liveness !== "OK" && d.liveness !== "REMOTE") ? " warn" : "")},
        h("div", {class: "why"}, ex.why || ""),
        (ex.actions || []).length ? h("div", null, h("b", null, "Next: "), ex.actions.join(" or "), ex.by ? h("span", {class: "muted"}, " \u2014 by " + ex.by) : null) : null,
        waitsFor(d).length && (d.after || d.blocked_by || d.waiting_for) ? h("div", null, h("b", null, "Waits for: "), waitsFor(d)) : null,
        checksOf(d).length ? h("div", null, h("b", null, "Checks: "), checksOf(d)) : null);
      function fact(k, v) { return [h("dt", null, k), h("dd", null, v === null || v === undefined || v === "" ? h("span", {class: "muted"}, "-") : v)]; }
      var factList = h("dl", {class: "facts"},
        fact("Holder", d.holder ? [d.holder, d.attempt ? h("span", {class: "muted"}, " (attempt " + d.attempt + ")") : null] : null),
        fact("Assignee", d.assignee),
        fact("Branch", d.branch ? [h("code", null, d.branch), d.base ? h("span", {class: "muted"}, " from " + d.base) : null] : null),
        fact("Worktree", d.worktree ? h("code", null, d.worktree) : null),
        fact("In state for", ago(d.state_since)),
        fact("Created", fmtTime(d.created)),
        fact("Last heartbeat", d.last_heartbeat ? [ago(d.last_heartbeat), " ago \u00b7 " + (hb.count || 0) + (hb.count === 1 ? " beat" : " beats") + " \u00b7 every " + hb.interval + "s", hb.note ? [h("br"), h("span", {class: "note"}, hb.note)] : null] : null),
        fact("Summary", d.summary),
        fact("Reason", d.reason),
        fact("Last event", d.last ? [d.last.type + " by " + d.last.from + ", ", ago(d.last.ts), " ago"] : null));
      var conflicts = null;
      if ((d.conflicts || []).length) {
        conflicts = section("Conflicts");
        add(conflicts, h("ul", {class: "conflicts"}, d.conflicts.map(function (c) {
          return h("li", null, h("code", null, String(c.event || "").slice(0, 15)), " " + c.type + " by " + c.from + ": " + c.reason);
        })));
      }
      var hist = section("History", h("span", {class: "muted"}, " \u00b7 " + (d.history || []).length + " transitions"));
      add(hist, h("table", {class: "list"}, h("thead", null, h("tr", null, h("th", null, "Time"), h("th", null, "Event"), h("th", null, "By"), h("th", null, "Change"))),
        h("tbody", null, (d.history || []).slice().reverse().map(function (e) {
          var change = e.conflict ? h("span", {class: "tag bad"}, "conflict: " + e.conflict)
            : e.before !== e.after ? [e.before ? statePill(e.before) : h("span", {class: "muted"}, "(new)"), " \u2192 ", statePill(e.after)] : h("span", {class: "muted"}, "no change");
          var detail = payloadFacts(e.payload);
          return h("tr", {"data-seq": e.seq}, h("td", {class: "time"}, fmtTime(e.ts)), h("td", null, e.type.replace(/^worker\./, "")),
            h("td", null, oneLine(e.from, 40)), h("td", null, change, detail ? h("div", {class: "detail"}, oneLine(detail, 300)) : null));
        }))));
      var msgs = section("Messages", h("span", {class: "muted"}, " \u00b7 to it, and to or from whoever held it"));
      add(msgs, (d.messages || []).length ? messageTable(d.messages.slice().reverse()) : h("p", {class: "muted"}, "No messages."));
      add(clear(box), [head, task, why, h("section", {class: "panel"}, factList), conflicts, hist, msgs]);
    }
  }

  function messageTable(msgs) {
    return h("table", {class: "list messages"},
      h("thead", null, h("tr", null, h("th", null, "Time"), h("th", null, "From \u2192 To"), h("th", null, "Type"), h("th", null, "Message"))),
      h("tbody", null, msgs.map(messageRow)));
  }
  function messageRow(m) {
    var to = m.to === "*" ? h("span", {class: "muted"}, "everyone") : m.to;
    return h("tr", {"data-seq": m.seq},
      h("td", {class: "time"}, fmtTime(m.ts)),
      h("td", null, oneLine(m.from, 40), " \u2192 ", to),
      h("td", null, h("code", null, m.type.replace(/^msg\./, ""))),
      h("td", {class: "msgtext"}, oneLine(payloadText(m.payload), 400), m.payload && m.payload.$head ? h("span", {class: "muted"}, " (first " + Math.round(m.payload.$head.read / 1024) + " KiB)") : null));
  }

  // ---------------------------------------------------------------- messages and search
  function MessagesView() {
    var self = Live(this);
    var tbody, older, results, seen = {}, oldest = null;
    self.start = function () {
      var params = new URLSearchParams(location.search);
      var q = h("input", {type: "search", name: "q", placeholder: "Search every event's text: words, \"a phrase\", prefix*, AND / OR / NOT", value: params.get("q") || ""});
      var type = h("input", {type: "text", name: "type", placeholder: "type, e.g. msg.*", value: params.get("type") || "", class: "narrow"});
      var form = h("form", {class: "search", onsubmit: function (e) {
        e.preventDefault();
        var u = "/messages" + (q.value.trim() ? "?q=" + encodeURIComponent(q.value.trim()) + (type.value.trim() ? "&type=" + encodeURIComponent(type.value.trim()) : "") : "");
        history.replaceState(null, "", u);
        search(q.value.trim(), type.value.trim());
      }}, q, type, h("button", {type: "submit"}, "Search"));
      results = h("div", {class: "results"});
      tbody = h("tbody");
      older = h("button", {type: "button", class: "more", onclick: function () { loadOlder(); }}, "Older messages");
      var stream = section("Messages", h("span", {class: "muted"}, " \u00b7 newest first, live"));
      add(stream, h("table", {class: "list messages", id: "messages"},
        h("thead", null, h("tr", null, h("th", null, "Time"), h("th", null, "From \u2192 To"), h("th", null, "Type"), h("th", null, "Message"))), tbody), older);
      add(clear(main), [form, results, stream]);
      if (params.get("q")) { search(params.get("q"), params.get("type") || ""); }
      return self.load();
    };
    self.load = function () {
      self.unready();
      return api("/api/messages?limit=100").then(function (r) {
        clear(tbody); seen = {}; oldest = null;
        r.data.forEach(function (m) { append(m); });
        older.hidden = r.data.length < 100;
        self.snapshot(r.seq);
        ready(self, "messages");
      });
    };
    self.reload = self.load;
    self.apply = function (d) {
      if (d.type.slice(0, 4) !== "msg." || seen[d.seq]) { return; }
      seen[d.seq] = 1;
      var tr = messageRow(d);
      freshen(tr);
      tbody.insertBefore(tr, tbody.firstChild);
    };
    function append(m) {
      if (seen[m.seq]) { return; }
      seen[m.seq] = 1;
      oldest = oldest === null ? m.seq : Math.min(oldest, m.seq);
      tbody.appendChild(messageRow(m));
    }
    function loadOlder() {
      if (oldest === null) { return; }
      api("/api/messages?limit=100&before=" + oldest).then(function (r) {
        r.data.forEach(append);
        older.hidden = r.data.length < 100;
      });
    }
    function search(q, type) {
      clear(results);
      if (!q) { return; }
      var path = "/api/search?limit=50&q=" + encodeURIComponent(q) + (type ? "&type=" + encodeURIComponent(type) : "");
      api(path).then(function (r) {
        var box = section("Search", h("span", {class: "muted"}, " \u00b7 " + r.data.length + " best matches for " + q));
        add(box, r.data.length ? h("table", {class: "list", id: "results"},
          h("thead", null, h("tr", null, h("th", null, "Time"), h("th", null, "From \u2192 To"), h("th", null, "Type"), h("th", null, "Match"))),
          h("tbody", null, r.data.map(function (m) {
            return h("tr", {"data-seq": m.seq}, h("td", {class: "time"}, fmtTime(m.ts)),
              h("td", null, oneLine(m.from, 40), " \u2192 ", m.to === "*" ? "everyone" : m.to),
              h("td", null, h("code", null, m.type)), h("td", null, marked(m.snippet)));
          }))) : h("p", {class: "muted"}, "No matches."));
        add(results, box);
      }, function (err) { add(results, errorBox(err)); });
    }
    function marked(s) {
      // the snippet marks matches [like this]: shown as <mark>, the words as text
      var out = [], re = /\[([^\[\]]+)\]/g, at = 0, m;
      s = String(s || "");
      while ((m = re.exec(s))) {
        out.push(s.slice(at, m.index));
        out.push(h("mark", null, m[1]));
        at = m.index + m[0].length;
      }
      out.push(s.slice(at));
      return out;
    }
  }

  // ---------------------------------------------------------------- timeline
  var NS = "http://www.w3.org/2000/svg";
  function svg(name, attrs, parent) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) { e.setAttribute(k, attrs[k]); }
    if (parent) { parent.appendChild(e); }
    return e;
  }
  function TimelineView() {
    var self = Live(this);
    var chart, meta, tip;
    var again = refresher(function () { return self.load(); }, 1000);
    self.start = function () {
      chart = h("div", {class: "chart"});
      meta = h("span", {class: "muted"});
      tip = h("div", {class: "tip"});
      var legend = h("div", {class: "legend"}, STATES.map(function (s) { return h("span", null, h("i", {class: "sw st-" + s}), s); }),
        h("span", null, "\u25cb heartbeat"), h("span", null, "\u25c6 message"), h("span", null, "\u2716 conflict"));
      var panel = section("Timeline", meta);
      add(panel, [legend, chart]);
      add(clear(main), [panel, tip]);
      return self.load();
    };
    self.load = function () {
      return api("/api/timeline").then(function (r) {
        self.seq = null;
        draw(r.data);
        self.snapshot(r.seq);
        ready(self, "timeline");
      });
    };
    self.reload = self.load;
    self.apply = function () { again(); };
    function hover(e, text) {
      svg("title", {}, e).textContent = text;
      e.addEventListener("mousemove", function (ev) {
        tip.textContent = text; tip.style.display = "block";
        tip.style.left = (ev.clientX + 12) + "px"; tip.style.top = (ev.clientY + 12) + "px";
      });
      e.addEventListener("mouseleave", function () { tip.style.display = "none"; });
    }
    function draw(D) {
      clear(chart);
      var lanes = D.lanes || [];
      meta.textContent = " \u00b7 " + lanes.length + " workers, " + fmtTime(D.start) + " to " + fmtTime(D.end) + " UTC, " + (D.events || 0) + " events";
      var t0 = ms(D.start), t1 = ms(D.end);
      if (!(t1 > t0)) { t1 = t0 + 1000; }
      var LABEL = 170, W = 1200, PLOT = W - LABEL - 20, LANE = 26, TOP = 30;
      var H = TOP + (lanes.length + 1) * LANE + 10;
      function x(ts) { return LABEL + (ms(ts) - t0) / (t1 - t0) * PLOT; }
      var root = svg("svg", {viewBox: "0 0 " + W + " " + H, id: "timeline", role: "img"});
      for (var k = 0; k <= 8; k++) {
        var tx = LABEL + PLOT * k / 8, t = new Date(t0 + (t1 - t0) * k / 8).toISOString();
        svg("line", {x1: tx, x2: tx, y1: TOP - 6, y2: H - 4, class: "grid"}, root);
        svg("text", {x: tx, y: TOP - 10, class: "axis", "text-anchor": k === 8 ? "end" : k === 0 ? "start" : "middle"}, root).textContent = t.slice(5, 10) + " " + t.slice(11, 16);
      }
      function laneRow(i, name, cls) {
        var g = svg("g", {class: cls, "data-worker": name}, root), y = TOP + i * LANE;
        svg("rect", {x: 0, y: y, width: W, height: LANE, class: "bg"}, g);
        var label = svg("text", {x: 6, y: y + LANE / 2 + 4, class: "label"}, g);
        label.textContent = name.length > 24 ? name.slice(0, 23) + "\u2026" : name;
        return [g, y, label];
      }
      function mark(g, cls, cx, cy, text) {
        var m = cls === "msg" ? svg("path", {d: "M" + cx + " " + (cy - 5) + " l5 5 l-5 5 l-5 -5 z", class: cls}, g)
          : cls === "conflict" ? svg("path", {d: "M" + (cx - 4) + " " + (cy - 4) + " l8 8 m0 -8 l-8 8", class: cls}, g)
          : svg("circle", {cx: cx, cy: cy, r: 3, class: cls}, g);
        hover(m, text);
      }
      lanes.forEach(function (lane, i) {
        var r = laneRow(i, lane.worker, "lane"), g = r[0], y = r[1];
        hover(r[2], lane.worker + "\n" + (lane.task || ""));
        r[2].addEventListener("click", function () { navigate(workerHref(lane.worker)); });
        lane.segments.forEach(function (s) {
          var x0 = x(s.start), x1 = x(s.end || D.end);
          var rect = svg("rect", {x: x0, y: y + 5, width: Math.max(1.5, x1 - x0), height: LANE - 10, rx: 2,
            class: "seg st-" + known(STATES, s.state), "data-state": s.state}, g);
          hover(rect, lane.worker + ": " + s.state + "\nfrom " + s.start + "\nto " + (s.end || "now") + "\nby " + s.by + " (" + s.type + ")" + (s.holder ? "\nholder " + s.holder : ""));
        });
        lane.beats.forEach(function (b) { mark(g, "beat", x(b.ts), y + LANE / 2, "heartbeat " + b.ts + " by " + b.from + (b.note ? "\n" + b.note : "")); });
        lane.msgs.forEach(function (m) { mark(g, "msg", x(m.ts), y + 5, m.type + " " + m.ts + "\n" + m.from + " \u2192 " + m.to); });
        lane.conflicts.forEach(function (c) { mark(g, "conflict", x(c.ts), y + LANE / 2, "CONFLICT (kept, not applied) " + c.ts + "\n" + c.type + " by " + c.from + "\n" + c.reason); });
      });
      var r = laneRow(lanes.length, "(other messages)", "msgrow"), yy = r[1];
      (D.messages || []).forEach(function (m) { mark(r[0], "msg", x(m.ts), yy + LANE / 2 - 5, m.type + " " + m.ts + "\n" + m.from + " \u2192 " + m.to); });
      chart.appendChild(root);
      document.body.setAttribute("data-lanes", String(lanes.length));
    }
  }

  // ---------------------------------------------------------------- stats
  function StatsView() {
    var self = Live(this);
    var box;
    var again = refresher(function () { return self.load(); }, 2000);
    self.start = function () {
      box = h("div");
      add(clear(main), box);
      return self.load();
    };
    self.load = function () {
      return api("/api/stats").then(function (r) {
        self.seq = null;
        render(r.data);
        self.snapshot(r.seq);
        ready(self, "stats");
      });
    };
    self.reload = self.load;
    self.apply = function (d) { if (d.type.slice(0, 7) === "worker." && d.type !== "worker.heartbeat") { again(); } };
    function table(head, rows) {
      return h("table", {class: "list"}, h("thead", null, h("tr", null, head.map(function (t, i) { return h("th", {class: i ? "num" : null}, t); }))),
        h("tbody", null, rows.map(function (r) { return h("tr", null, r.map(function (c, i) { return h("td", {class: i ? "num" : null}, c); })); })));
    }
    function dur(s) { return s === null || s === undefined ? "-" : fmtAge(s); }
    function render(S) {
      var tp = S.throughput || {};
      var cards = h("div", {class: "cards"},
        [["events", S.events], ["merged", tp.completed], ["done", tp.done],
         ["merged per hour", tp.completed_per_hour === null || tp.completed_per_hour === undefined ? "-" : tp.completed_per_hour.toFixed(2)],
         ["hours of history", (S.span_hours || 0).toFixed(1)]].map(function (c) {
          return h("div", {class: "card"}, h("b", null, String(c[1] === undefined ? "-" : c[1])), h("span", null, c[0]));
        }));
      var states = section("Time in each state", h("span", {class: "muted"}, " \u00b7 a spell counts once it ends"));
      add(states, table(["State", "Spells", "Median", "p90", "Max"], Object.keys(S.states || {}).map(function (k) {
        var f = S.states[k];
        return [statePill(k), String(f.spells), dur(f.median_s), dur(f.p90_s), dur(f.max_s)];
      })));
      var agents = section("Agents");
      add(agents, table(["Agent", "Started", "Done", "Merged", "Failed", "Reviewed"], Object.keys(S.agents || {}).map(function (k) {
        var a = S.agents[k];
        return [oneLine(k, 60), String(a.started), String(a.done), String(a.completed), String(a.failed), String(a.reviewed)];
      })));
      var hours = section("Throughput per hour");
      var max = 1;
      (tp.hours || []).forEach(function (x) { max = Math.max(max, x.completed + x.done); });
      add(hours, (tp.hours || []).length ? h("div", {class: "bars"}, tp.hours.map(function (x) {
        var bar = h("span", {class: "bar"}), bar2 = h("span", {class: "bar done"});
        bar.style.width = (x.completed / max * 100) + "%";
        bar2.style.width = (x.done / max * 100) + "%";
        return h("div", {class: "barrow"}, h("span", {class: "num hour"}, x.hour.replace("T", " ").replace(":00Z", "h")), h("span", {class: "track"}, bar, bar2), h("span", {class: "num"}, x.completed + " merged, " + x.done + " done"));
      })) : h("p", {class: "muted"}, "Nothing done or merged yet."));
      add(clear(box), [h("p", {class: "muted lead"}, (S.events || 0) + " events, " + fmtTime(S.first) + " to " + fmtTime(S.last) + " UTC"), cards, states, agents, hours]);
    }
  }

  // ---------------------------------------------------------------- routing
  var view = null;
  function viewFor(path) {
    var m = /^\/workers\/([^/]+)$/.exec(path);
    if (m) { return ["worker", new WorkerView(decodeURIComponent(m[1]))]; }
    if (path === "/messages") { return ["messages", new MessagesView()]; }
    if (path === "/timeline") { return ["timeline", new TimelineView()]; }
    if (path === "/stats") { return ["stats", new StatsView()]; }
    return ["board", new BoardView()];
  }
  function route() {
    var got = viewFor(location.pathname);
    view = got[1];
    document.body.setAttribute("data-view", got[0]);
    document.body.removeAttribute("data-ready");
    document.querySelectorAll("nav a").forEach(function (a) {
      a.classList.toggle("on", a.getAttribute("data-view") === got[0] || (got[0] === "worker" && a.getAttribute("data-view") === "board"));
    });
    document.title = "coord " + (got[0] === "worker" ? decodeURIComponent(location.pathname.slice(9)) : got[0]);
    var v = view;
    Promise.resolve(v.start()).catch(function (err) {
      if (view === v) { add(clear(main), errorBox(err)); }
    });
  }
  function navigate(href) { history.pushState(null, "", href); route(); window.scrollTo(0, 0); }
  document.addEventListener("click", function (e) {
    var a = e.target.closest ? e.target.closest("a[data-nav]") : null;
    if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) { return; }
    e.preventDefault();
    navigate(a.getAttribute("href"));
  });
  window.addEventListener("popstate", route);
  setInterval(function () { if (view && view.tick) { view.tick(); } }, 1000);
  setConn("reconnecting", "connecting");
  api("/api/info").then(function (r) {
    document.getElementById("project").textContent = r.data.project;
  }, function () {});
  route();
})();
