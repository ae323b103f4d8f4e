/**
 * The dashboard page. Static markup only: the script fills it from the
 * WebSocket feed. Styles and script are separate assets (no inline code),
 * so the page runs under a strict Content-Security-Policy.
 */
export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>Fulcrum</title>
<link rel="icon" href="/dashboard/assets/icon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/dashboard/assets/dashboard.css">
<script src="/dashboard/assets/dashboard.js" defer></script>
</head>
<body>
<header class="top">
  <div class="brand"><img src="/dashboard/assets/icon.svg" alt="" width="22" height="22"><span>Fulcrum</span></div>
  <div class="meta">
    <span id="version" class="muted">&nbsp;</span>
    <span class="pill" title="balancing algorithm"><span class="muted">algorithm</span> <b id="algorithm">–</b></span>
    <span id="circuits" class="circuits" aria-label="circuit breakers"></span>
    <span class="muted">up <span id="uptime">–</span></span>
  </div>
  <div class="spacer"></div>
  <span id="conn" class="conn" data-state="connecting"><i></i><span id="conn-text">connecting</span></span>
  <button id="token-toggle" class="btn admin-only" type="button" aria-expanded="false">Admin</button>
</header>

<form id="token-form" class="token-form" hidden autocomplete="off">
  <label for="token-input">Admin token</label>
  <input id="token-input" type="password" spellcheck="false" placeholder="admin.token or FULCRUM_ADMIN_TOKEN" autocomplete="off">
  <button class="btn primary" type="submit">Use token</button>
  <button class="btn" id="token-forget" type="button">Forget</button>
  <span id="token-msg" class="muted" role="status"></span>
</form>

<main>
  <section class="cards" aria-label="totals">
    <div class="card"><div class="label">Healthy backends</div><div class="value" id="t-healthy">–</div></div>
    <div class="card"><div class="label">Requests / s</div><div class="value" id="t-rps">–</div></div>
    <div class="card"><div class="label">Latency p50</div><div class="value" id="t-p50">–</div></div>
    <div class="card"><div class="label">Latency p99</div><div class="value" id="t-p99">–</div></div>
    <div class="card"><div class="label">Error rate</div><div class="value" id="t-errors">–</div></div>
    <div class="card"><div class="label">In flight</div><div class="value" id="t-active">–</div></div>
  </section>

  <section class="charts">
    <figure class="chart">
      <figcaption><span>Requests per second</span><span class="legend"><i class="sw rps"></i>all backends · last 5 min</span></figcaption>
      <canvas id="chart-rps" role="img" aria-label="requests per second over the last five minutes"></canvas>
    </figure>
    <figure class="chart">
      <figcaption><span>Latency</span><span class="legend"><i class="sw p50"></i>p50 <i class="sw p99"></i>p99</span></figcaption>
      <canvas id="chart-latency" role="img" aria-label="p50 and p99 latency over the last five minutes"></canvas>
    </figure>
  </section>

  <section class="panel" id="services-panel" hidden>
    <div class="panel-head"><h2>Services <span id="service-count" class="muted"></span></h2></div>
    <div class="table-wrap">
      <table id="services">
        <thead>
          <tr>
            <th>Service</th><th>Algorithm</th><th class="num">Healthy</th><th class="num">Active</th><th class="num">Req/s</th>
            <th class="num">p99</th><th class="num">Errors</th><th>Routes</th>
          </tr>
        </thead>
        <tbody id="service-rows"></tbody>
      </table>
    </div>
  </section>

  <section class="panel" id="routes-panel" hidden>
    <div class="panel-head"><h2>Routes <span id="route-count" class="muted"></span></h2></div>
    <div class="table-wrap">
      <table id="routes">
        <thead><tr><th>Route</th><th>Match</th><th>Action</th><th class="num">Requests</th></tr></thead>
        <tbody id="route-rows"></tbody>
      </table>
    </div>
  </section>

  <section class="panel">
    <div class="panel-head">
      <h2>Backends <span id="backend-count" class="muted"></span></h2>
      <div class="tools">
        <input id="filter" type="search" placeholder="Filter by id or URL" aria-label="filter backends">
        <label class="check"><input id="only-down" type="checkbox"> unhealthy only</label>
      </div>
    </div>
    <div class="table-wrap">
      <table id="backends">
        <colgroup>
          <col class="c-status"><col class="c-backend"><col class="c-num"><col class="c-num"><col class="c-num"><col class="c-num"><col class="c-num"><col class="c-num"><col class="c-actions">
        </colgroup>
        <thead>
          <tr>
            <th>Health</th><th>Backend</th><th class="num">Weight</th><th class="num">Active</th><th class="num">Req/s</th>
            <th class="num">p50</th><th class="num">p99</th><th class="num">Errors</th><th class="actions">Actions</th>
          </tr>
        </thead>
        <tbody id="rows"></tbody>
      </table>
      <p id="empty" class="empty" hidden>No backends.</p>
    </div>
  </section>

  <div class="columns single">
    <section class="panel">
      <div class="panel-head"><h2>Recent health events</h2></div>
      <ol id="events" class="events"></ol>
      <p id="no-events" class="empty">No events yet.</p>
    </section>
    <section class="panel" id="instances-panel" hidden>
      <div class="panel-head"><h2>Instances <span id="instance-count" class="muted"></span></h2></div>
      <ul id="instances" class="instances"></ul>
    </section>
  </div>
  <footer class="foot"><span id="reload" class="muted"></span><span id="action-msg" role="status"></span></footer>
</main>
</body>
</html>
`;
