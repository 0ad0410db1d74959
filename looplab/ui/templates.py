"""HTML templates (Jinja2) shared by report.html and the dashboard; kept in Python so no package data is needed."""

from __future__ import annotations

CSS = """
:root { --fg:#1d1d1f; --muted:#6b6b70; --line:#e3e3e8; --bg:#f6f7f9; --card:#ffffff; --accent:#2c7be5; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--fg); background:var(--bg); }
header { background:#1d2330; color:#fff; padding:12px 24px; display:flex; align-items:baseline; gap:16px; }
header h1 { font-size:18px; margin:0; font-weight:600; }
header a { color:#9cc3ff; text-decoration:none; }
header .sub { color:#b8bfcc; font-size:13px; }
header .status { margin-left:auto; font-size:12px; color:#b8bfcc; }
header .status.live::before { content:"●"; color:#3fd07f; margin-right:6px; }
main { max-width:1320px; margin:0 auto; padding:18px 24px 60px; }
h2 { font-size:16px; margin:28px 0 10px; }
h3 { font-size:14px; margin:0 0 8px; }
a { color:var(--accent); }
.cards { display:grid; grid-template-columns:repeat(auto-fit,minmax(190px,1fr)); gap:12px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:12px 14px; }
.card .k { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
.card .v { font-size:22px; font-weight:600; margin-top:2px; }
.card .s { color:var(--muted); font-size:12px; margin-top:2px; word-break:break-word; }
.grid2 { display:grid; grid-template-columns:1fr 1fr; gap:12px; }
@media (max-width: 1000px) { .grid2 { grid-template-columns:1fr; } }
.panel { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:10px; margin-top:12px; }
.chart { width:100%; min-height:200px; }
.empty { color:var(--muted); padding:24px; text-align:center; }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; color:#fff; font-size:12px; white-space:nowrap; }
.chips .badge { margin:2px 4px 2px 0; }
table { border-collapse:collapse; width:100%; background:var(--card); }
th, td { text-align:left; padding:6px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
th { font-size:12px; color:var(--muted); font-weight:600; background:#fafafb; position:sticky; top:0; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
td.reason { color:#444; max-width:560px; }
.tablewrap { border:1px solid var(--line); border-radius:8px; overflow:auto; max-height:640px; }
.memory { display:grid; grid-template-columns:repeat(3,1fr); gap:12px; }
@media (max-width: 1000px) { .memory { grid-template-columns:1fr; } }
.memory ul { margin:0; padding-left:18px; }
.memory li { margin-bottom:4px; }
.winner { background:var(--card); border:1px solid var(--line); border-radius:8px; margin-top:10px; }
.winner summary { padding:10px 14px; cursor:pointer; }
.winner .meta { color:var(--muted); font-size:12px; margin-left:8px; }
pre { margin:0; padding:10px 14px; overflow:auto; font:12px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; }
.hl { border-top:1px solid var(--line); max-height:520px; overflow:auto; }
.hl pre { background:transparent; }
.text { background:var(--card); border:1px solid var(--line); border-radius:8px; max-height:520px; overflow:auto; white-space:pre-wrap; }
.ok { color:#2ca02c; font-weight:600; } .bad { color:#d62728; font-weight:600; }
.kv { display:grid; grid-template-columns:max-content 1fr; gap:4px 16px; }
.kv div:nth-child(odd) { color:var(--muted); }
footer { color:var(--muted); font-size:12px; margin-top:40px; }
"""

# Draws every embedded figure and, on a live page, re-fetches the page body when the server says so.
JS = """
function drawCharts(root) {
  root.querySelectorAll('script.figure-data').forEach(function (s) {
    var div = document.getElementById(s.dataset.for);
    if (!div || typeof Plotly === 'undefined') return;
    var fig = JSON.parse(s.textContent);
    Plotly.react(div, fig.data, fig.layout, {displaylogo: false, responsive: true});
  });
}
function goLive() {
  var main = document.getElementById('live');
  var status = document.getElementById('status');
  if (!main || !main.dataset.events) return;
  var busy = false, again = false;
  async function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    try {
      do {
        again = false;
        var r = await fetch(main.dataset.fragment, {cache: 'no-store'});
        if (!r.ok) break;
        var open = Array.from(main.querySelectorAll('details[open][id]')).map(function (d) { return d.id; });
        main.innerHTML = await r.text();
        open.forEach(function (id) { var d = document.getElementById(id); if (d) d.open = true; });
        drawCharts(main);
        main.dataset.version = (parseInt(main.dataset.version || '0') + 1).toString();
      } while (again);
      status.textContent = 'live · updated ' + new Date().toLocaleTimeString();
    } finally { busy = false; }
  }
  var events = new EventSource(main.dataset.events);
  events.addEventListener('update', refresh);
  events.addEventListener('open', function () { status.textContent = 'live'; status.className = 'status live'; });
  events.addEventListener('error', function () { status.textContent = 'reconnecting…'; status.className = 'status'; });
}
document.addEventListener('DOMContentLoaded', function () { drawCharts(document); goLive(); });
"""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{{ title }}</title>
<style>{{ css|safe }}{{ pygments_css|safe }}</style>
{% if plotly_inline %}<script>{{ plotly_inline|safe }}</script>{% else %}<script src="{{ plotly_src }}"></script>{% endif %}
<script>{{ js|safe }}</script>
</head><body>
<header><h1>{% if home %}<a href="{{ home }}">looplab</a>{% else %}looplab{% endif %} · {{ heading }}</h1><span class="sub">{{ sub }}</span>
<span id="status" class="status">{{ status }}</span></header>
<main id="live"{% if events_url %} data-events="{{ events_url }}" data-fragment="{{ fragment_url }}"{% endif %}>
{{ body|safe }}
</main>
</body></html>
"""

FIGURE = """{% macro figure(key, fig, empty) -%}
<div class="panel">{% if fig %}<div class="chart" id="chart-{{ key }}" style="height:{{ fig.layout.height or 340 }}px"></div>
<script type="application/json" class="figure-data" data-for="chart-{{ key }}">{{ fig|tojson }}</script>
{%- else %}<div class="empty">{{ empty }}</div>{% endif %}</div>
{%- endmacro %}"""

EXPERIMENT = """{% from "figure" import figure %}
<section class="cards">
  <div class="card"><div class="k">best</div>
    <div class="v">{% if s.best.gain %}{{ s.best.gain|x }}{% else %}—{% endif %}</div>
    <div class="s">{{ s.best.metric|num }} {{ s.unit }}{% if s.best.attempt %} · attempt #{{ s.best.attempt }}{% endif %}{% if s.best.commit %} · {{ s.best.commit }}{% endif %}</div></div>
  <div class="card"><div class="k">baseline</div><div class="v">{{ s.baseline_metric|num }}</div>
    <div class="s">{{ s.unit }}, {{ "lower" if s.direction == "minimize" else "higher" }} is better</div></div>
  <div class="card"><div class="k">attempts</div><div class="v">{{ s.attempts }}</div>
    <div class="s">{{ s.winners }} winner{{ "" if s.winners == 1 else "s" }}{% if s.in_flight %} · <b>{{ s.in_flight }} in flight</b>{% endif %}</div></div>
  <div class="card"><div class="k">tokens</div><div class="v">{{ s.usage.total_tokens|int_ }}</div>
    <div class="s">{{ s.usage.prompt_tokens|int_ }} prompt · {{ s.usage.completion_tokens|int_ }} completion · {{ s.usage.cached_tokens|int_ }} cached</div></div>
  <div class="card"><div class="k">cost</div><div class="v">{{ s.usage.cost_usd|usd }}</div>
    <div class="s">{{ s.models|join(", ") or "no model calls yet" }}{% if s.judge_usage and s.judge_usage.total_tokens %} · judge {{ s.judge_usage.cost_usd|usd }} of it{% endif %}</div></div>
</section>
<div class="chips" style="margin-top:10px">{% for o, n in s.outcomes.items() %}<span class="badge" style="background:{{ colors.get(o, '#999') }}">{{ o }} {{ n }}</span>{% endfor %}</div>
{% if not s.has_store %}<div class="panel empty">No attempts yet: start the search with <code>looplab run {{ s.root }}</code>; this page fills in as attempts land.</div>{% endif %}

<h2>Search</h2>
{{ figure("best", figs.best, "no baseline measured yet") }}
<div class="grid2">
{{ figure("cases", figs.cases, "per-case speedups appear once a candidate is accepted") }}
{{ figure("usage", figs.usage, "no model calls yet") }}
</div>
<div class="grid2">
{{ figure("winners", figs.winners, "no winners yet") }}
{{ figure("lineage", figs.lineage, "the lineage appears with the first winner") }}
</div>

<h2>Memory</h2>
{% if memory.get('insights') %}<div class="panel"><h3>Insights (the model's own summary)</h3><ul>{% for i in memory.insights %}<li>{{ i }}</li>{% endfor %}</ul></div>{% endif %}
<div class="memory">
  <div class="panel"><h3>Worked</h3>{% if memory.get('worked') %}<ul>{% for w in memory.get('worked', [])|reverse %}
    <li><a href="{{ href(w.id) }}">#{{ w.id }}</a> {{ w.outcome }}{% if w.speedup %} {{ w.speedup|x }}{% endif %}{% if w.ci_low is not none and w.ci_high is not none %} [{{ "%.2f"|format(w.ci_low) }}, {{ "%.2f"|format(w.ci_high) }}]{% endif %}: {{ w.strategy or "(no strategy given)" }}{% if w.best_cases %} <span class="meta">best on {{ w.best_cases|join(", ") }}</span>{% endif %}</li>{% endfor %}</ul>
    {% else %}<div class="empty">nothing yet</div>{% endif %}</div>
  <div class="panel"><h3>Keeps failing</h3>{% if memory.get('failing') %}<ul>{% for f in memory.failing %}
    <li><b>{{ f.count }}×</b> <span class="badge" style="background:{{ colors.get(f.category, '#999') }}">{{ f.category }}</span> {{ f.message or f.signature }} <span class="meta">(last <a href="{{ href(f.last_attempt) }}">#{{ f.last_attempt }}</a>)</span></li>{% endfor %}</ul>
    {% else %}<div class="empty">nothing yet</div>{% endif %}</div>
  <div class="panel"><h3>Unexplored</h3>{% if memory.get('unexplored') %}<ul>{% for u in memory.unexplored %}
    <li>{{ u.idea }}{% if u.suggested_by is not none %} <span class="meta">(suggested by #{{ u.suggested_by }})</span>{% endif %}</li>{% endfor %}</ul>
    {% else %}<div class="empty">nothing left</div>{% endif %}</div>
</div>

<h2>Winners</h2>
{% for w in winners %}
<details class="winner" id="winner-{{ w.id }}"{% if w.is_incumbent %} open{% endif %}>
  <summary><a href="{{ href(w.id) }}">#{{ w.id }}</a> <span class="badge" style="background:{{ w.color }}">{{ w.outcome }}</span>{% if w.is_incumbent %} <b>incumbent</b>{% endif %}
    {% if w.speedup %}<b>{{ w.speedup|x }}</b>{% if w.ci %} [{{ "%.3f"|format(w.ci[0]) }}, {{ "%.3f"|format(w.ci[1]) }}]{% endif %} over #{{ w.parent }}{% endif %}
    {% if w.gain %}· {{ w.gain|x }} vs baseline{% endif %} · {{ w.strategy or "(no strategy given)" }}
    <span class="meta">{% if w.commit %}commit {{ w.commit }}{% endif %}{% if w.best_cases %} · best on {{ w.best_cases|join(", ") }}{% endif %}{% if w.holdout_ok is not none %} · holdout {{ "ok" if w.holdout_ok else "FAILED" }}{% if w.holdout_speedup %} {{ w.holdout_speedup|x }}{% endif %}{% endif %}</span></summary>
  <div class="hl">{{ w.diff_html|safe }}</div>
</details>
{% else %}<div class="panel empty">no winners yet</div>{% endfor %}

<h2>Attempts</h2>
<div class="tablewrap"><table id="attempts">
<thead><tr><th>#</th><th>outcome</th><th class="num">speedup</th><th class="num">vs baseline</th><th class="num">{{ s.unit }}</th><th class="num">tokens</th><th class="num">cost</th><th class="num">time</th><th>strategy · reason</th></tr></thead>
<tbody>{% for a in attempts %}
<tr id="attempt-{{ a.id }}"><td><a href="{{ href(a.id) }}">{{ a.id }}</a></td>
<td><span class="badge" style="background:{{ a.color }}">{{ a.outcome }}</span>{% if a.turns|length > 1 %}<br><span class="meta" title="{{ a.turns|join(' → ') }}">{{ a.turns|length }} turns</span>{% endif %}</td>
<td class="num">{% if a.speedup %}{{ a.speedup|x }}{% endif %}{% if a.ci %}<br><span class="meta">[{{ "%.2f"|format(a.ci[0]) }}, {{ "%.2f"|format(a.ci[1]) }}]</span>{% endif %}</td>
<td class="num">{{ a.gain|x if a.gain else "" }}</td><td class="num">{{ a.metric|num if a.metric is not none else "" }}</td>
<td class="num">{{ a.tokens|int_ }}</td><td class="num">{{ a.cost|usd }}</td><td class="num">{{ a.seconds|secs }}</td>
<td class="reason">{% if a.strategy %}<b>{{ a.strategy }}</b><br>{% endif %}{{ a.reason }}</td></tr>{% endfor %}
</tbody></table></div>
<footer>read from {{ s.root }}/.looplab/looplab.db at {{ read_at|when }} · looplab</footer>
"""

INDEX = """<section class="cards">{% for e in entries %}
<div class="card" id="exp-{{ e.key }}"><div class="k"><a href="{{ e.href }}">{{ e.s.name }}</a></div>
  <div class="v">{% if e.s.best.gain %}{{ e.s.best.gain|x }}{% else %}—{% endif %}</div>
  <div class="s">{{ e.s.attempts }} attempts{% if e.s.in_flight %} · {{ e.s.in_flight }} in flight{% endif %} · {{ e.s.usage.total_tokens|int_ }} tokens · {{ e.s.usage.cost_usd|usd }}</div>
  <div class="s">{{ e.s.root }}</div>
  <div class="chips">{% for o, n in e.s.outcomes.items() %}<span class="badge" style="background:{{ colors.get(o, '#999') }}">{{ o }} {{ n }}</span>{% endfor %}</div>
</div>{% endfor %}</section>
"""

ATTEMPT = """<p><a href="{{ back }}">← {{ s.name }}</a></p>
<section class="cards">
  <div class="card"><div class="k">attempt #{{ a.id }}</div><div class="v"><span class="badge" style="background:{{ color }};font-size:16px">{{ outcome }}</span></div>
    <div class="s">{{ a.model }}</div></div>
  <div class="card"><div class="k">speedup over #{{ parent }}</div><div class="v">{{ a.speedup|x if a.speedup else "—" }}</div>
    <div class="s">{% if a.ci_low is not none and a.ci_high is not none %}[{{ "%.3f"|format(a.ci_low) }}, {{ "%.3f"|format(a.ci_high) }}]{% endif %}{% if gain %} · {{ gain|x }} vs baseline{% endif %}</div></div>
  <div class="card"><div class="k">metric</div><div class="v">{{ a.metric|num }}</div><div class="s">{{ s.unit }}{% if a.commit %} · commit {{ a.commit }}{% endif %}</div></div>
  <div class="card"><div class="k">tokens · cost</div><div class="v">{{ a.usage.total_tokens|int_ }}</div><div class="s">{{ a.usage.cost_usd|usd }}</div></div>
  <div class="card"><div class="k">time</div><div class="v">{{ seconds|secs }}</div><div class="s">started {{ a.started_at|when }}</div></div>
</section>
<div class="panel"><h3>Decision</h3><div>{{ a.reason or "(in flight)" }}</div>
{% if a.strategy %}<p><b>Strategy:</b> {{ a.strategy }}{% if a.tags %} · tags {{ a.tags|join(", ") }}{% endif %}</p>{% endif %}</div>

<h2>Evaluation</h2>
{% if cases %}<div class="tablewrap"><table><thead><tr><th>case</th><th>set</th><th>ok</th><th class="num">median ({{ s.unit }})</th><th class="num">baseline</th><th class="num">vs baseline</th><th class="num">vs incumbent [CI]</th><th class="num">samples</th><th>error · metrics</th></tr></thead><tbody>
{% for c in cases %}<tr><td>{{ c.name }}</td><td>{{ c.set }}</td><td class="{{ 'ok' if c.ok else 'bad' }}">{{ "ok" if c.ok else "FAIL" }}</td>
<td class="num">{{ c.median|num }}</td><td class="num">{{ c.base|num }}</td><td class="num">{{ c.gain|x if c.gain else "" }}</td>
<td class="num">{% if c.cmp %}{{ c.cmp.speedup|x }} [{{ "%.3f"|format(c.cmp.ci_low) }}, {{ "%.3f"|format(c.cmp.ci_high) }}]{% endif %}</td>
<td class="num">{{ c.samples }}</td><td class="reason">{{ c.error or "" }}{% if c.metrics %} {{ c.metrics|tojson }}{% endif %}</td></tr>{% endfor %}
</tbody></table></div>{% else %}<div class="panel empty">no evaluation (the attempt did not get that far)</div>{% endif %}

{% for f in files %}
<h2>{{ f.title }} <span class="meta">{{ f.path }}</span></h2>
{% if f.html %}<div class="panel hl" style="padding:0">{{ f.html|safe }}</div>{% else %}<pre class="text">{{ f.text }}</pre>{% endif %}
{% endfor %}
{% if calls %}<h2>Model calls</h2><div class="tablewrap"><table><thead><tr><th>kind</th><th>model</th><th class="num">prompt</th><th class="num">completion</th><th class="num">cached</th><th class="num">cost</th><th class="num">latency</th><th>error</th></tr></thead><tbody>
{% for c in calls %}<tr><td>{{ c.kind }}</td><td>{{ c.model }}</td><td class="num">{{ c.prompt_tokens|int_ }}</td><td class="num">{{ c.completion_tokens|int_ }}</td><td class="num">{{ c.cached_tokens|int_ }}</td><td class="num">{{ c.cost_usd|usd }}</td><td class="num">{{ c.latency_s|secs }}</td><td>{{ c.error or "" }}</td></tr>{% endfor %}
</tbody></table></div>{% endif %}
"""

TEMPLATES = {"page": PAGE, "figure": FIGURE, "experiment": EXPERIMENT, "index": INDEX, "attempt": ATTEMPT}
