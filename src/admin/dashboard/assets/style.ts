/**
 * The dashboard's styles: light and dark through prefers-color-scheme,
 * fixed table layout and tabular numbers so that live updates never move
 * anything on the page.
 */
export const DASHBOARD_CSS = `
:root {
  color-scheme: light dark;
  --bg: #f5f6f8; --panel: #ffffff; --panel-2: #f0f2f5; --text: #1a1e24; --muted: #646d7b; --border: #e2e5ea;
  --accent: #2f6fe4; --accent-soft: rgba(47, 111, 228, 0.14);
  --ok: #16a05a; --ok-soft: rgba(22, 160, 90, 0.12); --bad: #d63c3c; --bad-soft: rgba(214, 60, 60, 0.12);
  --warn: #c27c00; --warn-soft: rgba(194, 124, 0, 0.13); --off: #7d8694; --off-soft: rgba(125, 134, 148, 0.14);
  --p50: #2f6fe4; --p99: #d9622b; --grid: rgba(20, 30, 45, 0.08);
  --shadow: 0 1px 2px rgba(16, 24, 40, 0.05);
  --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0e1115; --panel: #161a20; --panel-2: #1c2129; --text: #e5e8ed; --muted: #97a0ae; --border: #262c35;
    --accent: #6c9dff; --accent-soft: rgba(108, 157, 255, 0.18);
    --ok: #3fcf80; --ok-soft: rgba(63, 207, 128, 0.14); --bad: #ff6b6b; --bad-soft: rgba(255, 107, 107, 0.15);
    --warn: #f2b43a; --warn-soft: rgba(242, 180, 58, 0.15); --off: #8a93a2; --off-soft: rgba(138, 147, 162, 0.16);
    --p50: #6c9dff; --p99: #ff9a5c; --grid: rgba(255, 255, 255, 0.07);
    --shadow: none;
  }
}
* { box-sizing: border-box; }
html, body { margin: 0; }
body {
  background: var(--bg); color: var(--text);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  font-variant-numeric: tabular-nums;
}
.muted { color: var(--muted); }
.top {
  position: sticky; top: 0; z-index: 5; display: flex; align-items: center; gap: 16px;
  height: 52px; padding: 0 24px; background: var(--panel); border-bottom: 1px solid var(--border);
}
.brand { display: flex; align-items: center; gap: 8px; font-weight: 650; font-size: 16px; letter-spacing: 0.01em; }
.meta { display: flex; align-items: center; gap: 14px; white-space: nowrap; }
.pill { padding: 2px 10px; border-radius: 999px; background: var(--panel-2); border: 1px solid var(--border); }
.circuits { display: inline-flex; gap: 6px; flex-wrap: wrap; }
.circuit[data-state="closed"] b { color: var(--ok); }
.circuit[data-state="open"] { background: var(--bad-soft); } .circuit[data-state="open"] b { color: var(--bad); }
.circuit[data-state="half-open"] { background: var(--warn-soft); } .circuit[data-state="half-open"] b { color: var(--warn); }
.spacer { flex: 1; }
.conn { display: inline-flex; align-items: center; gap: 6px; color: var(--muted); min-width: 110px; justify-content: flex-end; }
.conn i { width: 8px; height: 8px; border-radius: 50%; background: var(--warn); }
.conn[data-state="live"] i { background: var(--ok); box-shadow: 0 0 0 3px var(--ok-soft); }
.conn[data-state="reconnecting"] i, .conn[data-state="stale"] i { background: var(--bad); }
.btn {
  font: inherit; color: var(--text); background: var(--panel-2); border: 1px solid var(--border);
  border-radius: 6px; padding: 4px 12px; cursor: pointer;
}
.btn:hover { border-color: var(--muted); }
.btn.primary { background: var(--accent); border-color: var(--accent); color: #fff; }
.btn.small { padding: 1px 10px; font-size: 12.5px; }
.btn:disabled { opacity: 0.5; cursor: default; }
body.admin-off .admin-only { display: none; }
.token-form {
  display: flex; align-items: center; gap: 10px; padding: 10px 24px;
  background: var(--panel-2); border-bottom: 1px solid var(--border);
}
.token-form[hidden] { display: none; }
.token-form input { width: 320px; }
input[type="password"], input[type="search"] {
  font: inherit; color: var(--text); background: var(--panel); border: 1px solid var(--border);
  border-radius: 6px; padding: 4px 10px;
}
main { max-width: 1320px; margin: 0 auto; padding: 20px 24px 40px; }
.cards { display: grid; grid-template-columns: repeat(6, minmax(0, 1fr)); gap: 12px; }
.card, .panel, .chart {
  background: var(--panel); border: 1px solid var(--border); border-radius: 10px; box-shadow: var(--shadow);
}
.card { padding: 12px 16px; }
.card .label { color: var(--muted); font-size: 12.5px; }
.card .value { font-size: 24px; font-weight: 600; margin-top: 2px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.card .value.bad { color: var(--bad); }
.card .value.warn { color: var(--warn); }
.charts { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 12px; margin-top: 12px; }
.chart { margin: 0; padding: 12px 16px 8px; }
.chart figcaption { display: flex; justify-content: space-between; font-weight: 600; margin-bottom: 6px; }
.legend { font-weight: 400; color: var(--muted); font-size: 12.5px; display: inline-flex; align-items: center; gap: 6px; }
.sw { display: inline-block; width: 12px; height: 3px; border-radius: 2px; margin-left: 6px; }
.sw.rps { background: var(--accent); } .sw.p50 { background: var(--p50); } .sw.p99 { background: var(--p99); }
.chart canvas { display: block; width: 100%; height: 180px; }
.panel { margin-top: 12px; padding: 4px 0 8px; }
.panel-head { display: flex; align-items: center; justify-content: space-between; padding: 8px 16px; }
.panel h2 { margin: 0; font-size: 15px; font-weight: 600; }
.tools { display: flex; align-items: center; gap: 12px; }
.tools input[type="search"] { width: 220px; }
.check { color: var(--muted); display: inline-flex; align-items: center; gap: 6px; cursor: pointer; }
.table-wrap { overflow-x: auto; }
table { width: 100%; min-width: 860px; table-layout: fixed; border-collapse: collapse; }
col.c-status { width: 230px; } col.c-num { width: 88px; } col.c-actions { width: 0; }
body.has-token col.c-actions { width: 112px; }
th, td {
  height: 38px; padding: 0 16px; text-align: left; white-space: nowrap; overflow: hidden; text-overflow: ellipsis;
  border-top: 1px solid var(--border);
}
th { height: 32px; color: var(--muted); font-weight: 500; font-size: 12.5px; border-top: none; }
th.num, td.num { text-align: right; }
th.actions, td.actions { padding: 0; visibility: hidden; text-align: right; }
body.has-token th.actions, body.has-token td.actions { padding: 0 16px 0 0; visibility: visible; }
tbody tr:hover { background: var(--panel-2); }
tr[hidden] { display: none; }
.status { display: flex; align-items: center; gap: 8px; min-width: 0; }
.badge {
  flex: none; display: inline-flex; align-items: center; gap: 6px; padding: 1px 9px 1px 7px; border-radius: 999px;
  font-size: 12.5px; font-weight: 600;
}
.badge::before { content: ""; width: 7px; height: 7px; border-radius: 50%; background: currentColor; }
tr[data-health="ok"] .badge { color: var(--ok); background: var(--ok-soft); }
tr[data-health="bad"] .badge { color: var(--bad); background: var(--bad-soft); }
tr[data-health="warn"] .badge { color: var(--warn); background: var(--warn-soft); }
tr[data-health="off"] .badge { color: var(--off); background: var(--off-soft); }
.reasons { color: var(--muted); font-size: 12.5px; overflow: hidden; text-overflow: ellipsis; }
.bid { font-weight: 600; margin-right: 10px; }
.url { color: var(--muted); font-family: var(--mono); font-size: 12.5px; }
td.err-some { color: var(--warn); } td.err-many { color: var(--bad); font-weight: 600; }
.empty { color: var(--muted); padding: 8px 16px; margin: 0; }
.empty[hidden] { display: none; }
.columns { display: grid; grid-template-columns: minmax(0, 2fr) minmax(0, 1fr); gap: 12px; }
.columns.single { grid-template-columns: minmax(0, 1fr); }
.events, .instances { list-style: none; margin: 0; padding: 0 16px; }
.events li, .instances li {
  display: flex; align-items: baseline; gap: 10px; min-height: 32px; padding: 6px 0; border-top: 1px solid var(--border);
  white-space: nowrap; overflow: hidden;
}
.events li:first-child, .instances li:first-child { border-top: none; }
.events time { color: var(--muted); font-family: var(--mono); font-size: 12.5px; flex: none; }
.events .what { font-weight: 600; flex: none; }
.events .what.up { color: var(--ok); } .events .what.down { color: var(--bad); } .events .what.held { color: var(--warn); }
.events .detail { color: var(--muted); overflow: hidden; text-overflow: ellipsis; }
.instances .self { color: var(--accent); font-size: 12px; font-weight: 600; }
.instances .detail { color: var(--muted); font-size: 12.5px; overflow: hidden; text-overflow: ellipsis; }
.foot { display: flex; justify-content: space-between; margin-top: 14px; min-height: 20px; font-size: 12.5px; }
.foot .bad { color: var(--bad); }
#action-msg {
  position: fixed; right: 20px; bottom: 20px; padding: 8px 14px; border-radius: 8px; max-width: 420px;
  background: var(--text); color: var(--bg); opacity: 0; transition: opacity 0.2s; pointer-events: none;
}
#action-msg.show { opacity: 0.94; }
@media (max-width: 980px) {
  .cards { grid-template-columns: repeat(3, minmax(0, 1fr)); }
  .charts, .columns { grid-template-columns: minmax(0, 1fr); }
  .meta .muted:first-child { display: none; }
}
`;
