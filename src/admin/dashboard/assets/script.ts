/**
 * The dashboard's script, served as /dashboard/assets/dashboard.js. Plain
 * browser JavaScript kept as a string so that the package carries it with
 * no build step and no CDN. It must not contain backticks or "${"
 * (it lives in a template literal).
 *
 * What it does: connects to /dashboard/ws (reconnecting by itself), keeps
 * the chart history, renders at most once per animation frame, updates
 * table rows in place (keyed by backend id, text changed only when it
 * differs) and, with an admin token kept in sessionStorage, offers
 * drain/enable per backend through the admin API.
 */
export const DASHBOARD_JS = String.raw`(function () {
  'use strict';

  var TOKEN_KEY = 'fulcrum.adminToken';
  var WINDOW_MS = 5 * 60 * 1000;
  var STALE_MS = 5000;

  var state = {
    snapshot: null, history: [], rows: new Map(), serviceRows: new Map(), routeRows: new Map(), order: '', eventsKey: '', instancesKey: '', circuitsKey: '',
    pending: false, chartsDirty: true, token: readToken(), filter: '', onlyDown: false, lastMessage: 0
  };

  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function setText(node, text) { if (node.textContent !== text) node.textContent = text; }
  function setAttr(node, name, value) { if (node.getAttribute(name) !== value) node.setAttribute(name, value); }

  function readToken() { try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; } }
  function saveToken(token) {
    state.token = token;
    try { if (token) sessionStorage.setItem(TOKEN_KEY, token); else sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* storage off */ }
    document.body.classList.toggle('has-token', token !== '');
    state.order = '';
  }

  // ---- formatting -------------------------------------------------------
  function fmtRate(v) {
    if (v === null || v === undefined) return '–';
    if (v === 0) return '0';
    if (v < 10) return v.toFixed(1);
    return Math.round(v).toLocaleString('en-US');
  }
  function fmtMs(v) {
    if (v === null || v === undefined) return '–';
    if (v < 1) return v.toFixed(2) + ' ms';
    if (v < 10) return v.toFixed(1) + ' ms';
    if (v < 1000) return Math.round(v) + ' ms';
    return (v / 1000).toFixed(v < 10000 ? 2 : 1) + ' s';
  }
  function fmtPct(v) {
    if (v === null || v === undefined) return '–';
    if (v === 0) return '0%';
    var p = v * 100;
    return (p < 0.1 ? '<0.1' : p < 10 ? p.toFixed(1) : String(Math.round(p))) + '%';
  }
  function fmtInt(v) { return Number(v || 0).toLocaleString('en-US'); }
  function fmtUptime(s) {
    if (s < 60) return s + 's';
    if (s < 3600) return Math.floor(s / 60) + 'm ' + (s % 60) + 's';
    if (s < 86400) return Math.floor(s / 3600) + 'h ' + Math.floor((s % 3600) / 60) + 'm';
    return Math.floor(s / 86400) + 'd ' + Math.floor((s % 86400) / 3600) + 'h';
  }
  function fmtTime(ms) {
    var d = new Date(ms);
    function two(n) { return n < 10 ? '0' + n : String(n); }
    return two(d.getHours()) + ':' + two(d.getMinutes()) + ':' + two(d.getSeconds());
  }

  // ---- connection -------------------------------------------------------
  var socket = null;
  var retryMs = 500;
  function setConn(s, text) {
    setAttr($('conn'), 'data-state', s);
    setText($('conn-text'), text || s);
  }
  function connect() {
    setConn(state.snapshot ? 'reconnecting' : 'connecting');
    var ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/dashboard/ws');
    socket = ws;
    ws.onopen = function () { retryMs = 500; };
    ws.onmessage = function (ev) {
      var msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      state.lastMessage = Date.now();
      setConn('live');
      onMessage(msg);
    };
    ws.onclose = function () {
      if (socket !== ws) return;
      socket = null;
      setConn('reconnecting');
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 5000);
    };
  }
  // A connection that stays silent (a half-open TCP connection) is replaced.
  setInterval(function () {
    if (socket !== null && state.lastMessage !== 0 && Date.now() - state.lastMessage > STALE_MS) {
      setConn('stale');
      var ws = socket;
      state.lastMessage = 0;
      ws.close();
    }
  }, 1000);

  function onMessage(msg) {
    if (msg.type === 'hello') {
      state.history = Array.isArray(msg.history) ? msg.history.slice() : [];
      state.chartsDirty = true;
    } else if (msg.type === 'tick' && msg.point) {
      var last = state.history[state.history.length - 1];
      if (!last || msg.point.t > last.t) {
        state.history.push(msg.point);
        var cutoff = msg.point.t - WINDOW_MS - 5000;
        while (state.history.length > 0 && state.history[0].t < cutoff) state.history.shift();
        state.chartsDirty = true;
      }
    }
    if (msg.snapshot) state.snapshot = msg.snapshot;
    schedule();
  }
  function schedule() {
    if (state.pending) return;
    state.pending = true;
    requestAnimationFrame(render);
  }

  // ---- rendering --------------------------------------------------------
  function render() {
    state.pending = false;
    var s = state.snapshot;
    if (!s) return;
    document.body.classList.toggle('admin-off', !s.adminEnabled);
    setText($('version'), 'v' + s.version);
    setText($('algorithm'), s.algorithm);
    setText($('uptime'), fmtUptime(s.uptimeSeconds));
    var t = s.totals;
    var healthyText = t.healthy + ' / ' + t.backends;
    setText($('t-healthy'), healthyText);
    $('t-healthy').className = 'value' + (t.backends > 0 && t.healthy === 0 ? ' bad' : t.healthy < t.backends ? ' warn' : '');
    setText($('t-rps'), fmtRate(t.rps));
    setText($('t-p50'), fmtMs(t.p50));
    setText($('t-p99'), fmtMs(t.p99));
    setText($('t-errors'), fmtPct(t.errorRate));
    $('t-errors').className = 'value' + (t.errorRate >= 0.05 ? ' bad' : t.errorRate > 0 ? ' warn' : '');
    setText($('t-active'), fmtInt(t.active));
    var title = 'Fulcrum · ' + healthyText + ' healthy';
    if (document.title !== title) document.title = title;
    renderServices(s.services || []);
    renderRoutes(s.routes || [], (s.services || []).length);
    renderRows(s.backends);
    renderEvents(s.events);
    renderInstances(s.cluster, s.instanceId, s.store, s.t);
    renderCircuits(s.circuits || []);
    renderReload(s.lastReload);
    if (state.chartsDirty) drawCharts();
  }

  function rowKey(b) { return b.service + '\u0000' + b.id; }

  function makeRow(b) {
    var id = b.id;
    var key = rowKey(b);
    var tr = el('tr');
    tr.setAttribute('data-id', id);
    tr.setAttribute('data-service', b.service);
    var r = { tr: tr, cells: {} };
    var status = el('td');
    var wrap = el('div', 'status');
    r.badge = el('span', 'badge', '');
    r.reasons = el('span', 'reasons', '');
    wrap.appendChild(r.badge);
    wrap.appendChild(r.reasons);
    status.appendChild(wrap);
    tr.appendChild(status);
    var backend = el('td');
    r.id = el('span', 'bid', id);
    r.url = el('span', 'url', '');
    backend.appendChild(r.id);
    backend.appendChild(r.url);
    tr.appendChild(backend);
    ['weight', 'active', 'rps', 'p50', 'p99', 'errors'].forEach(function (name) {
      var td = el('td', 'num', '');
      r.cells[name] = td;
      tr.appendChild(td);
    });
    var actions = el('td', 'actions');
    r.action = el('button', 'btn small', '');
    r.action.type = 'button';
    r.action.addEventListener('click', function () { onAction(key, r.action.getAttribute('data-next')); });
    actions.appendChild(r.action);
    tr.appendChild(actions);
    return r;
  }

  function healthClass(b) {
    if (b.healthy) return 'ok';
    if (b.state === 'draining') return 'warn';
    if (b.state === 'disabled') return 'off';
    return 'bad';
  }

  function updateRow(r, b) {
    var cls = healthClass(b);
    setAttr(r.tr, 'data-health', cls);
    setAttr(r.tr, 'data-state', b.state);
    setText(r.badge, b.healthy ? 'healthy' : cls === 'bad' ? 'down' : b.state);
    var reasons = b.healthy ? '' : b.reasons.filter(function (x) { return x !== b.state; }).join(', ');
    setText(r.reasons, reasons);
    var tip = b.healthy ? 'healthy since ' + new Date(b.since).toLocaleTimeString() : 'out since ' + new Date(b.since).toLocaleTimeString() + (b.reasons.length ? ': ' + b.reasons.join(', ') : '');
    if (b.lastCheckError) tip += '\nlast check: ' + b.lastCheckError;
    setAttr(r.tr, 'title', tip);
    setText(r.id, state.multiService ? b.service + '/' + b.id : b.id);
    setText(r.url, b.url);
    setText(r.cells.weight, b.effectiveWeight !== b.weight ? b.effectiveWeight + ' / ' + b.weight : String(b.weight));
    setText(r.cells.active, fmtInt(b.active));
    setText(r.cells.rps, fmtRate(b.rps));
    setText(r.cells.p50, fmtMs(b.p50));
    setText(r.cells.p99, fmtMs(b.p99));
    setText(r.cells.errors, fmtPct(b.errorRate));
    var errCls = 'num' + (b.errorRate >= 0.05 ? ' err-many' : b.errorRate > 0 ? ' err-some' : '');
    if (r.cells.errors.className !== errCls) r.cells.errors.className = errCls;
    var next = b.state === 'enabled' ? 'draining' : 'enabled';
    setAttr(r.action, 'data-next', next);
    setText(r.action, next === 'draining' ? 'Drain' : 'Enable');
    r.data = b;
  }

  function renderRows(list) {
    var tbody = $('rows');
    var seen = new Set();
    var order = '';
    for (var i = 0; i < list.length; i++) {
      var b = list[i];
      var key = rowKey(b);
      order += key + '\n';
      seen.add(key);
      var r = state.rows.get(key);
      if (!r) { r = makeRow(b); state.rows.set(key, r); }
      updateRow(r, b);
    }
    state.rows.forEach(function (r, id) {
      if (!seen.has(id)) { r.tr.remove(); state.rows.delete(id); }
    });
    if (order !== state.order) {
      state.order = order;
      var frag = document.createDocumentFragment();
      for (var j = 0; j < list.length; j++) frag.appendChild(state.rows.get(rowKey(list[j])).tr);
      tbody.appendChild(frag);
    }
    applyFilter();
    var down = list.filter(function (x) { return !x.healthy; }).length;
    setText($('backend-count'), list.length + (down > 0 ? ' · ' + down + ' out' : ''));
    $('empty').hidden = list.length > 0;
  }

  // Services and routes: small tables, shown once there is more than one
  // service or route (the one-pool form looks as it always did). A row is
  // kept per name and only its texts change, so the page does not flicker.
  function syncRows(tbody, cache, items, key, cells) {
    var seen = new Set();
    var order = '';
    for (var i = 0; i < items.length; i++) {
      var item = items[i];
      var k = key(item);
      seen.add(k);
      order += k + '\n';
      var row = cache.get(k);
      if (!row) {
        var tr = el('tr');
        tr.setAttribute('data-name', k);
        row = { tr: tr, tds: [] };
        cache.set(k, row);
      }
      var texts = cells(item);
      while (row.tds.length < texts.length) { var td = el('td', ''); row.tds.push(td); row.tr.appendChild(td); }
      for (var j = 0; j < texts.length; j++) {
        var cell = texts[j];
        setText(row.tds[j], cell[0]);
        if (row.tds[j].className !== cell[1]) row.tds[j].className = cell[1];
      }
    }
    cache.forEach(function (row, k) { if (!seen.has(k)) { row.tr.remove(); cache.delete(k); } });
    if (tbody.getAttribute('data-order') !== order) {
      tbody.setAttribute('data-order', order);
      var frag = document.createDocumentFragment();
      for (var m = 0; m < items.length; m++) frag.appendChild(cache.get(key(items[m])).tr);
      tbody.appendChild(frag);
    }
  }

  function renderServices(list) {
    state.multiService = list.length > 1;
    $('services-panel').hidden = list.length <= 1;
    if (list.length <= 1) return;
    setText($('service-count'), String(list.length));
    syncRows($('service-rows'), state.serviceRows, list, function (x) { return x.name; }, function (x) {
      var health = x.backends > 0 && x.healthy === 0 ? 'num bad' : x.healthy < x.backends ? 'num warn' : 'num';
      return [
        [x.name, 'bid'], [x.algorithm, ''], [x.healthy + ' / ' + x.backends, health], [fmtInt(x.active), 'num'],
        [fmtRate(x.rps), 'num'], [fmtMs(x.p99), 'num'], [fmtPct(x.errorRate), 'num' + (x.errorRate >= 0.05 ? ' err-many' : x.errorRate > 0 ? ' err-some' : '')],
        [x.routes.join(', '), 'muted'],
      ];
    });
  }

  function renderRoutes(list, services) {
    $('routes-panel').hidden = list.length <= 1 && services <= 1;
    if ($('routes-panel').hidden) return;
    setText($('route-count'), String(list.length));
    syncRows($('route-rows'), state.routeRows, list, function (x) { return x.name; }, function (x) {
      return [[x.name, 'bid'], [x.match, 'url'], [x.action, ''], [fmtInt(x.requests), 'num']];
    });
  }

  function applyFilter() {
    var f = state.filter;
    state.rows.forEach(function (r) {
      var b = r.data;
      var show = (!state.onlyDown || !b.healthy) && (f === '' || b.id.toLowerCase().indexOf(f) >= 0 || b.url.toLowerCase().indexOf(f) >= 0);
      if (r.tr.hidden === show) r.tr.hidden = !show;
    });
  }

  function renderEvents(events) {
    var key = events.length + ':' + (events.length ? events[0].at + events[0].backend : '');
    if (key === state.eventsKey) return;
    state.eventsKey = key;
    var list = $('events');
    list.textContent = '';
    events.forEach(function (e) {
      var li = el('li');
      li.appendChild(el('time', '', fmtTime(e.at)));
      // Out by an operator's choice (draining, disabled) reads differently from out by failure.
      var chosen = !e.healthy && e.reasons.length > 0 && e.reasons.every(function (x) { return x === 'draining' || x === 'disabled'; });
      li.appendChild(el('span', 'what ' + (e.healthy ? 'up' : chosen ? 'held' : 'down'), e.backend + (e.healthy ? ' up' : ' out')));
      var shown = e.healthy ? [] : e.reasons.filter(function (x) { return !e.detail || e.detail.indexOf(x) === -1; });
      var detail = shown.join(', ') + (shown.length > 0 && e.detail ? ' · ' : '') + (e.detail || '');
      li.appendChild(el('span', 'detail', detail));
      li.title = e.url + ': ' + detail;
      list.appendChild(li);
    });
    $('no-events').hidden = events.length > 0;
  }

  /** The cluster's shape belongs to the shared-state feature: show what is there. */
  function instancesOf(cluster) {
    if (!cluster) return null;
    if (Array.isArray(cluster)) return cluster;
    if (Array.isArray(cluster.instances)) return cluster.instances;
    return null;
  }
  function renderInstances(cluster, selfId, store, now) {
    var list = instancesOf(cluster);
    var panel = $('instances-panel');
    panel.hidden = list === null;
    panel.parentNode.classList.toggle('single', list === null);
    if (list === null) return;
    var summary = String(list.length);
    if (store && store.type) summary += ' · ' + store.type + (store.connected === false ? ' unavailable' + (store.degradedSince ? ' since ' + fmtTime(Date.parse(store.degradedSince)) : '') : '');
    if (cluster && typeof cluster.totalRequests === 'number') summary += ' · ' + fmtInt(cluster.totalRequests) + ' requests in all';
    setText($('instance-count'), summary);
    var key = JSON.stringify(list) + selfId + Math.floor(now / 5000);
    if (key === state.instancesKey) return;
    state.instancesKey = key;
    var ul = $('instances');
    ul.textContent = '';
    list.forEach(function (inst) {
      var li = el('li');
      if (typeof inst !== 'object' || inst === null) {
        li.appendChild(el('span', 'bid', String(inst)));
      } else {
        var name = inst.id || inst.instanceId || inst.name || inst.host || '?';
        li.appendChild(el('span', 'bid', String(name)));
        if (inst.self === true || (selfId && name === selfId)) li.appendChild(el('span', 'self', 'this instance'));
        var parts = [];
        Object.keys(inst).forEach(function (k) {
          var v = inst[k];
          if (k === 'id' || k === 'instanceId' || k === 'name' || k === 'self') return;
          if (v === null || typeof v === 'object') return;
          if (k === 'lastSeen' && !isNaN(Date.parse(v))) { parts.push('seen ' + Math.max(0, Math.round((now - Date.parse(v)) / 1000)) + 's ago'); return; }
          parts.push(k + ' ' + v);
        });
        li.appendChild(el('span', 'detail', parts.join(' · ')));
      }
      ul.appendChild(li);
    });
  }

  /** One pill per service with a circuit breaker: its name and state (closed, open, half-open). */
  function renderCircuits(list) {
    var key = JSON.stringify(list);
    if (key === state.circuitsKey) return;
    state.circuitsKey = key;
    var node = $('circuits');
    node.textContent = '';
    list.forEach(function (c) {
      var pill = el('span', 'pill circuit');
      pill.setAttribute('data-state', c.state);
      pill.title = 'circuit breaker of service ' + c.service + ', ' + c.state + ' since ' + fmtTime(Date.parse(c.since));
      pill.appendChild(el('span', 'muted', 'circuit ' + c.service + ' '));
      pill.appendChild(el('b', '', c.state));
      node.appendChild(pill);
    });
  }

  function renderReload(r) {
    var node = $('reload');
    if (!r) { setText(node, ''); return; }
    var when = fmtTime(Date.parse(r.at));
    var text = r.ok
      ? 'Last reload ' + when + ': applied (' + r.added.length + ' added, ' + r.removed.length + ' removed, ' + r.updated.length + ' changed)'
      : 'Last reload ' + when + ': rejected, the previous config stays. ' + (r.problems || []).join('; ');
    setText(node, text);
    node.className = r.ok ? 'muted' : 'bad';
  }

  // ---- charts -----------------------------------------------------------
  function cssVar(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }
  function niceCeil(v) {
    if (!(v > 0)) return 1;
    var e = Math.pow(10, Math.floor(Math.log10(v)));
    var f = v / e;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * e;
  }
  function shortMs(v) { return v >= 1000 ? (v / 1000) + ' s' : (v < 1 && v > 0 ? v.toFixed(1) : String(Math.round(v * 10) / 10)) + ' ms'; }
  function shortRate(v) { return v >= 1000 ? (v / 1000) + 'k' : String(Math.round(v * 100) / 100); }

  function drawCharts() {
    state.chartsDirty = false;
    var now = state.snapshot ? state.snapshot.t : Date.now();
    drawChart($('chart-rps'), now, [{ key: 'rps', color: cssVar('--accent'), fill: true }], shortRate, 1);
    drawChart($('chart-latency'), now, [{ key: 'p50', color: cssVar('--p50') }, { key: 'p99', color: cssVar('--p99') }], shortMs, 1);
  }

  function drawChart(canvas, now, series, fmt, minTop) {
    var w = canvas.clientWidth;
    var h = canvas.clientHeight;
    if (!w || !h) return;
    var dpr = window.devicePixelRatio || 1;
    var cw = Math.round(w * dpr);
    var ch = Math.round(h * dpr);
    if (canvas.width !== cw || canvas.height !== ch) { canvas.width = cw; canvas.height = ch; }
    var ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    var padL = 52, padR = 10, padT = 8, padB = 22;
    var pw = w - padL - padR;
    var ph = h - padT - padB;
    var t0 = now - WINDOW_MS;
    var pts = state.history;
    var max = 0;
    for (var i = 0; i < pts.length; i++) {
      if (pts[i].t < t0) continue;
      for (var k = 0; k < series.length; k++) {
        var v = pts[i][series[k].key];
        if (v !== null && v !== undefined && v > max) max = v;
      }
    }
    var top = Math.max(niceCeil(max * 1.05), max > 0 ? 0 : minTop);
    var muted = cssVar('--muted');
    ctx.font = '11px system-ui, sans-serif';
    ctx.lineWidth = 1;
    ctx.strokeStyle = cssVar('--grid');
    ctx.fillStyle = muted;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (var g = 0; g <= 5; g++) {
      var gy = Math.round(padT + ph - (ph * g) / 5) + 0.5;
      ctx.beginPath(); ctx.moveTo(padL, gy); ctx.lineTo(padL + pw, gy); ctx.stroke();
      ctx.fillText(fmt((top * g) / 5), padL - 8, gy);
    }
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    for (var m = 5; m >= 0; m--) {
      var x = padL + pw * (1 - m / 5);
      ctx.textAlign = m === 5 ? 'left' : m === 0 ? 'right' : 'center';
      ctx.fillText(m === 0 ? 'now' : '−' + m + ' min', x, padT + ph + 6);
    }
    function xOf(t) { return padL + ((t - t0) / WINDOW_MS) * pw; }
    function yOf(v) { return padT + ph - (Math.min(v, top) / top) * ph; }
    series.forEach(function (s) {
      ctx.beginPath();
      var started = false;
      var firstX = 0, lastX = 0;
      for (var j = 0; j < pts.length; j++) {
        var p = pts[j];
        if (p.t < t0) continue;
        var val = p[s.key];
        if (val === null || val === undefined) { started = false; continue; }
        var px = xOf(p.t), py = yOf(val);
        if (!started) { ctx.moveTo(px, py); started = true; if (!firstX) firstX = px; } else ctx.lineTo(px, py);
        lastX = px;
      }
      ctx.strokeStyle = s.color;
      ctx.lineWidth = 1.75;
      ctx.lineJoin = 'round';
      ctx.stroke();
      if (s.fill && lastX > firstX) {
        ctx.lineTo(lastX, padT + ph);
        ctx.lineTo(firstX, padT + ph);
        ctx.closePath();
        var grad = ctx.createLinearGradient(0, padT, 0, padT + ph);
        grad.addColorStop(0, withAlpha(s.color, 0.28));
        grad.addColorStop(1, withAlpha(s.color, 0.02));
        ctx.fillStyle = grad;
        ctx.fill();
      }
    });
  }
  function withAlpha(color, a) {
    var m = /^#([0-9a-f]{6})$/i.exec(color);
    if (!m) return color;
    var n = parseInt(m[1], 16);
    return 'rgba(' + (n >> 16) + ',' + ((n >> 8) & 255) + ',' + (n & 255) + ',' + a + ')';
  }

  // ---- admin actions ----------------------------------------------------
  var toastTimer = 0;
  function toast(text) {
    var node = $('action-msg');
    setText(node, text);
    node.classList.add('show');
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { node.classList.remove('show'); }, 3500);
  }

  function adminFetch(method, path, body) {
    var init = { method: method, headers: { authorization: 'Bearer ' + state.token } };
    if (body !== undefined) { init.headers['content-type'] = 'application/json'; init.body = JSON.stringify(body); }
    return fetch(path, init).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (json) { return { status: res.status, body: json }; });
    });
  }

  function onAction(key, next) {
    if (!state.token || !next) return;
    var r = state.rows.get(key);
    if (!r) return;
    var id = r.data.id;
    r.action.disabled = true;
    var path = '/admin/services/' + encodeURIComponent(r.data.service) + '/backends/' + encodeURIComponent(id);
    adminFetch('PATCH', path, { state: next }).then(function (res) {
      if (res.status === 200) toast(id + ': ' + (next === 'draining' ? 'draining, no new requests' : 'enabled'));
      else if (res.status === 401) { saveToken(''); toast('The admin token was refused; enter it again.'); }
      else toast(id + ': ' + (res.body.error || 'failed with status ' + res.status));
    }, function () {
      toast(id + ': the request failed');
    }).then(function () { if (r) r.action.disabled = false; });
  }

  function setupTokenForm() {
    var form = $('token-form');
    var toggle = $('token-toggle');
    var msg = $('token-msg');
    function showForm(open) {
      form.hidden = !open;
      toggle.setAttribute('aria-expanded', String(open));
      if (open) $('token-input').focus();
    }
    toggle.addEventListener('click', function () { showForm(form.hidden); });
    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      var token = $('token-input').value.trim();
      if (token === '') return;
      setText(msg, 'checking…');
      var previous = state.token;
      state.token = token;
      adminFetch('GET', '/admin/backends').then(function (res) {
        if (res.status === 200) {
          saveToken(token);
          $('token-input').value = '';
          setText(msg, 'Token accepted: drain and enable are available for this tab.');
          setTimeout(function () { showForm(false); setText(msg, ''); }, 1200);
          schedule();
        } else {
          state.token = previous;
          setText(msg, res.body.error || 'refused (status ' + res.status + ')');
        }
      }, function () {
        state.token = previous;
        setText(msg, 'the request failed');
      });
    });
    $('token-forget').addEventListener('click', function () {
      saveToken('');
      setText(msg, 'Token forgotten.');
      schedule();
    });
  }

  function setupFilters() {
    $('filter').addEventListener('input', function (ev) { state.filter = ev.target.value.trim().toLowerCase(); applyFilter(); });
    $('only-down').addEventListener('change', function (ev) { state.onlyDown = ev.target.checked; applyFilter(); });
  }

  function start() {
    document.body.classList.toggle('has-token', state.token !== '');
    setupTokenForm();
    setupFilters();
    if (typeof ResizeObserver === 'function') {
      var ro = new ResizeObserver(function () { state.chartsDirty = true; schedule(); });
      ro.observe($('chart-rps'));
      ro.observe($('chart-latency'));
    }
    if (window.matchMedia) {
      window.matchMedia('(prefers-color-scheme: dark)').addEventListener('change', function () { state.chartsDirty = true; schedule(); });
    }
    connect();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
`;
