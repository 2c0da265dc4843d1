/**
 * The live page (src/live.ts serves it): plain HTML, its style and a short script, all inline,
 * no build step and nothing loaded from elsewhere (a cluster may have no internet). Alert text
 * is attacker-controlled: the script puts every value in the page as text (textContent), never
 * as HTML, and the Content-Security-Policy runs no script but this one.
 */

export const livePageStyle = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1d2430; background: #f6f7f9; }
header { display: flex; gap: 1em; align-items: baseline; flex-wrap: wrap; padding: .8em 1.2em; background: #1d2430; color: #fff; }
h1 { font-size: 1.15em; margin: 0; font-weight: 600; }
#mode { background: #2f6fd6; border-radius: 3px; padding: 0 .5em; font-weight: 600; }
#mode:empty { display: none; }
#status { margin-left: auto; opacity: .8; }
#counters { display: flex; gap: .6em; flex-wrap: wrap; padding: .8em 1.2em; }
.counter { background: #fff; border: 1px solid #d9dde3; border-radius: 4px; padding: .3em .8em; min-width: 4.5em; }
.counter b { display: block; font-size: 1.4em; }
.counter span { color: #5b6575; font-size: .85em; }
.gap { width: 1em; }
#filters { padding: 0 1.2em .6em; display: flex; gap: 1.2em; align-items: center; }
#shown { color: #5b6575; }
table { border-collapse: collapse; width: calc(100% - 2.4em); margin: 0 1.2em 1.2em; background: #fff; }
th, td { text-align: left; vertical-align: top; padding: .35em .6em; border-bottom: 1px solid #e4e7eb; }
th { background: #eceff3; font-weight: 600; }
td small { display: block; color: #5b6575; }
.mono { font-family: ui-monospace, monospace; font-size: .85em; word-break: break-all; }
.reason { max-width: 36em; overflow-wrap: anywhere; }
.badge { border-radius: 3px; padding: 0 .4em; font-weight: 600; }
.k-act { background: #ffe3c2; } .k-skip { background: #e4e7eb; } .k-ignore { background: #eef0f3; } .k-reject { background: #ffd0d0; }
.o-done { color: #18794e; } .o-dry-run { color: #2f6fd6; } .o-bad { color: #c62828; }
#empty { margin: 1.2em; color: #5b6575; }
`;

export const livePageScript = `
'use strict';
var decisions = [];
var maxCount = 500;
var decisionKinds = ['act', 'skip', 'ignore', 'reject'];
var outcomeClasses = { 'done': 'o-done', 'dry-run': 'o-dry-run', 'failed': 'o-bad', 'retry': 'o-bad', 'refused': 'o-bad', 'skipped': '' };
function byId(id) { return document.getElementById(id); }
function el(tag, text, className) {
  var node = document.createElement(tag);
  if (text !== undefined) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}
function known(map, key) { return Object.prototype.hasOwnProperty.call(map, key); }
function cell(children, className) {
  var td = el('td', undefined, className);
  for (var i = 0; i < children.length; i++) td.append(children[i]);
  return td;
}
function clock(iso) {
  var date = new Date(iso);
  return isNaN(date.getTime()) ? String(iso) : date.toLocaleTimeString([], { hour12: false });
}
function row(d) {
  var tr = el('tr');
  var time = el('td', clock(d.time));
  time.title = String(d.time);
  tr.append(time);
  tr.append(d.falco ? cell([el('span', d.falco.rule), el('small', d.falco.priority)]) : cell(['\\u2014']));
  tr.append(cell([d.target || '\\u2014'], 'mono'));
  tr.append(cell([d.rules && d.rules.length ? d.rules.join(', ') : '\\u2014']));
  var kind = el('span', d.decision, 'badge' + (decisionKinds.indexOf(d.decision) >= 0 ? ' k-' + d.decision : ''));
  var outcome = el('span', ' ' + d.outcome, known(outcomeClasses, d.outcome) ? outcomeClasses[d.outcome] : '');
  var detail = [d.guard, d.code, d.replayed ? 'redelivery' : undefined, d.fromRecord && d.fromRecord.length ? 'as recorded by the replica that acted' : undefined].filter(Boolean).join(' \\u00b7 ');
  tr.append(cell(detail ? [kind, outcome, el('small', detail)] : [kind, outcome]));
  var reason = [el('span', d.reason)];
  (d.actions || []).forEach(function (a) { reason.push(el('small', a.action + ': ' + a.status + ' \\u2014 ' + a.reason)); });
  tr.append(cell(reason, 'reason'));
  tr.append(cell([d.traceId || '\\u2014'], 'mono'));
  return tr;
}
function renderCounters(counters) {
  byId('c-total').textContent = String(counters.total);
  document.querySelectorAll('[data-decision]').forEach(function (node) {
    node.textContent = String(counters.decisions[node.dataset.decision] || 0);
  });
  document.querySelectorAll('[data-outcome]').forEach(function (node) {
    node.textContent = String(counters.outcomes[node.dataset.outcome] || 0);
  });
}
function renderNamespaces() {
  var select = byId('namespace');
  var chosen = select.value;
  var names = {};
  decisions.forEach(function (d) { if (d.namespace) names[d.namespace] = true; });
  if (chosen) names[chosen] = true;
  var options = [el('option', 'all')];
  options[0].value = '';
  Object.keys(names).sort().forEach(function (name) {
    var option = el('option', name);
    option.value = name;
    options.push(option);
  });
  select.replaceChildren.apply(select, options);
  select.value = chosen;
}
function render() {
  var outcome = byId('outcome').value;
  var namespace = byId('namespace').value;
  var rows = decisions.filter(function (d) {
    return (!outcome || d.outcome === outcome) && (!namespace || d.namespace === namespace);
  }).map(row);
  var body = byId('rows');
  body.replaceChildren.apply(body, rows);
  byId('shown').textContent = rows.length + ' of the ' + decisions.length + ' most recent shown';
  byId('empty').hidden = decisions.length > 0;
}
function status(text) { byId('status').textContent = text; }
function connect() {
  var source = new EventSource('decisions/events');
  source.addEventListener('snapshot', function (event) {
    var snapshot = JSON.parse(event.data);
    decisions = snapshot.recent;
    maxCount = snapshot.maxCount;
    byId('replica').textContent = snapshot.replica;
    byId('mode').textContent = snapshot.dryRun ? 'DRY-RUN: nothing is changed' : '';
    renderCounters(snapshot.counters);
    renderNamespaces();
    render();
    status('live');
  });
  source.addEventListener('decision', function (event) {
    var message = JSON.parse(event.data);
    decisions.unshift(message.decision);
    if (decisions.length > maxCount) decisions.length = maxCount;
    renderCounters(message.counters);
    renderNamespaces();
    render();
  });
  source.onerror = function () {
    if (source.readyState !== EventSource.CLOSED) return status('reconnecting\\u2026');
    status('disconnected; retrying in 10 s');
    setTimeout(connect, 10000);
  };
}
byId('outcome').addEventListener('change', render);
byId('namespace').addEventListener('change', render);
connect();
`;

const counter = (label: string, attribute: string): string => `<div class="counter"><b ${attribute}>0</b><span>${label}</span></div>`;

export const livePageHtml = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>drop: decisions</title>
<style>${livePageStyle}</style>
</head>
<body>
<header>
<h1>drop: decisions on <span id="replica">this replica</span></h1>
<span id="mode"></span>
<span id="status" role="status">connecting\u2026</span>
</header>
<section id="counters" aria-label="Counters since this replica started">
${counter('answered', 'id="c-total"')}
<div class="gap"></div>
${['act', 'skip', 'ignore', 'reject'].map((d) => counter(d, `data-decision="${d}"`)).join('\n')}
<div class="gap"></div>
${['done', 'dry-run', 'failed', 'skipped', 'retry', 'refused'].map((o) => counter(o, `data-outcome="${o}"`)).join('\n')}
</section>
<form id="filters">
<label>Outcome <select id="outcome">
<option value="">all</option>
${['done', 'dry-run', 'failed', 'skipped', 'retry', 'refused'].map((o) => `<option>${o}</option>`).join('\n')}
</select></label>
<label>Namespace <select id="namespace"><option value="">all</option></select></label>
<span id="shown"></span>
</form>
<table>
<thead><tr><th>Time</th><th>Falco rule</th><th>Pod</th><th>Response rule</th><th>Decision</th><th>Reason</th><th>Trace id</th></tr></thead>
<tbody id="rows"></tbody>
</table>
<p id="empty">No decision yet: each alert this replica answers appears here as it is answered.</p>
<script>${livePageScript}</script>
</body>
</html>
`;
