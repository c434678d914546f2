"""The report page: one self-contained HTML document (inline CSS, a few lines of inline JS for sorting,
plots as base64 PNG). It loads nothing from the network, so it can be mailed or archived as is.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
from collections.abc import Iterable, Mapping
from typing import Any

from ..objectives import objective_value, pareto_front
from ..space import space_from_record
from ..store import TrialRecord
from .lineage import lineage
from .plots import PLOTS, pareto_objectives
from .snapshot import RunSnapshot

# Metrics shown first and in this order; any other numeric metric (flops, latency_ms, ...) follows.
KNOWN_METRICS = ("accuracy", "precision", "recall", "f1", "loss", "flops", "latency_ms", "size_bytes")

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#24364b;color:#fff;padding:14px 24px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;opacity:.85}main{padding:8px 24px 40px;max-width:1400px}
section{background:#fff;border:1px solid #e3e3e3;border-radius:6px;padding:8px 16px 14px;margin:14px 0}
h2{font-size:16px;margin:8px 0 10px;color:#24364b}h3{font-size:13px;margin:6px 0 4px;color:#445}
table{border-collapse:collapse;font-size:12.5px}th,td{padding:3px 8px;border-bottom:1px solid #eee;text-align:left;white-space:nowrap}
th{background:#f1f4f8;position:sticky;top:0}table.sortable th{cursor:pointer;user-select:none}
table.sortable th[data-dir=asc]::after{content:' \\25B2'}table.sortable th[data-dir=desc]::after{content:' \\25BC'}
td.num{text-align:right;font-variant-numeric:tabular-nums}tr.best td{background:#fff1f1;font-weight:600}
tr.failed td{color:#999}.scroll{overflow:auto;max-height:560px}.kv td:first-child{color:#555}
.arch{white-space:normal;min-width:280px;font-family:ui-monospace,monospace;font-size:11.5px}
img.plot{max-width:100%;height:auto;display:block;margin:6px 0}.note{color:#666;font-size:12.5px}
.grid{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
"""

# Click a header to sort by it; numbers sort as numbers (from data-v), empty cells always last.
_JS = """
document.querySelectorAll('table.sortable').forEach(function(table){
  table.querySelectorAll('th').forEach(function(th, col){
    th.addEventListener('click', function(){
      var asc = th.dataset.dir !== 'asc';
      table.querySelectorAll('th').forEach(function(h){ delete h.dataset.dir; });
      th.dataset.dir = asc ? 'asc' : 'desc';
      function key(row){
        var c = row.cells[col], v = c.hasAttribute('data-v') ? c.getAttribute('data-v') : c.textContent.trim();
        if (v === '') return null;
        var n = Number(v); return isNaN(n) ? v.toLowerCase() : n;
      }
      var body = table.tBodies[0];
      Array.prototype.slice.call(body.rows).sort(function(a, b){
        var x = key(a), y = key(b);
        if (x === null || y === null) return (x === null) - (y === null);
        var d = (typeof x === typeof y) ? (x < y ? -1 : x > y ? 1 : 0) : (typeof x === 'number' ? -1 : 1);
        return asc ? d : -d;
      }).forEach(function(r){ body.appendChild(r); });
    });
  });
});
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any, digits: int = 4) -> tuple[str, str]:
    """(shown text, sort value) of a cell."""
    if value is None:
        return "–", ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value), str(value)
    if isinstance(value, int) or (float(value).is_integer() and abs(value) >= 1000):
        return f"{int(value):,}", repr(value)
    return f"{value:.{digits}f}" if abs(value) < 1e5 else f"{value:.3g}", repr(float(value))


def _td(value: Any, digits: int = 4, cls: str = "num") -> str:
    shown, sort = _num(value, digits)
    return f'<td class="{cls}" data-v="{_e(sort)}">{_e(shown)}</td>'


def _flatten(data: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _flatten(value, name + ".")
        else:
            yield name, value


def _kv_table(pairs: Iterable[tuple[str, Any]]) -> str:
    rows = "".join(f"<tr><td>{_e(k)}</td><td>{_e(json.dumps(v) if isinstance(v, (list, dict)) else v)}</td></tr>" for k, v in pairs)
    return f'<table class="kv">{rows}</table>'


def metric_columns(trials: Iterable[TrialRecord]) -> list[str]:
    """Numeric metrics present in any trial: the known ones in order, then the rest sorted."""
    present: set[str] = set()
    for t in trials:
        present |= {k for k, v in (t.metrics or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return [k for k in KNOWN_METRICS if k in present] + sorted(present - set(KNOWN_METRICS))


def ranked(trials: Iterable[TrialRecord]) -> list[TrialRecord]:
    """Complete trials by reward (best first, ties to the earlier trial), then the rest by id."""
    return sorted(trials, key=lambda t: (t.status != "complete" or t.reward is None, -(t.reward or 0.0), t.id))


class _Describer:
    """Short architecture strings; tolerant of a genome the stored space no longer accepts."""

    def __init__(self, snap: RunSnapshot):
        try:
            self.space = space_from_record(snap.space) if snap.space else None
        except Exception:  # a space not rebuildable here (unknown name, function not importable): no descriptions
            self.space = None

    def __call__(self, genome: Any) -> str:
        if self.space is None:
            return json.dumps(genome)[:200]
        try:
            return self.space.describe(self.space.from_json(genome))
        except Exception:
            return json.dumps(genome)[:200]


def leaderboard(snap: RunSnapshot, describe: _Describer) -> str:
    metrics = metric_columns(snap.trials)
    best = snap.best
    head = ["rank", "trial", "status", f"reward ({snap.reward_name})", *metrics, "params", "train s", "operator", "parents", "architecture"]
    rows = []
    rank = 0
    for t in ranked(snap.trials):
        complete = t.status == "complete" and t.reward is not None
        rank += complete
        cls = "best" if best is not None and t.id == best.id else ("failed" if t.status == "failed" else "")
        cells = [_td(rank if complete else None), _td(t.id), f"<td>{_e(t.status)}</td>", _td(t.reward)]
        cells += [_td(t.metrics.get(m)) for m in metrics]
        cells += [_td(t.params), _td(t.train_seconds, 2), f"<td>{_e(t.operator)}</td>",
                  f'<td data-v="{_e(t.parents[0] if t.parents else "")}">{_e(", ".join(map(str, t.parents)) or "–")}</td>',
                  f'<td class="arch" title="{_e(t.error or "")}">{_e("error: " + t.error[:120] if t.error else describe(t.genome))}</td>']
        rows.append(f'<tr class="{cls}" data-trial="{t.id}">{"".join(cells)}</tr>')
    header = "".join(f"<th>{_e(h)}</th>" for h in head)
    return (f'<div class="scroll"><table id="leaderboard" class="sortable"><thead><tr>{header}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div><p class="note">Click a column header to sort.</p>')


def _settings(snap: RunSnapshot) -> str:
    """One small table per config section (dataset, space, strategy, ...), then the dataset summary."""
    groups: dict[str, list[tuple[str, Any]]] = {}
    for key, value in snap.config.items():
        if isinstance(value, Mapping):
            groups[key] = list(_flatten(value))
        else:
            groups.setdefault("study", []).append((key, value))
    d = snap.dataset
    groups["dataset summary"] = [
        ("name", d.get("name")), ("input shape", "×".join(map(str, d.get("input_shape", [])))), ("classes", d.get("num_classes")),
        *(("split: " + k, v) for k, v in (d.get("sizes") or {}).items()),
    ]
    tables = "".join(f"<div><h3>{_e(name)}</h3>{_kv_table(pairs)}</div>" for name, pairs in groups.items())
    return f'<div class="grid">{tables}</div>'


def _final(snap: RunSnapshot, describe: _Describer) -> str:
    best = snap.best
    if best is None:
        return '<p class="note">No trial has completed yet.</p>'
    rows = [("trial", best.id), (f"validation {snap.reward_name}", f"{best.reward:.4f}"),
            ("params", f"{best.params:,}" if best.params else "–"), ("architecture", describe(best.genome))]
    if snap.final is not None:
        test = snap.final.get("test") or {}
        rows += [("weights", snap.final.get("weights")), ("source", snap.final.get("source"))]
        rows += [(f"test {k}", f"{v:.4f}") for k, v in test.items() if isinstance(v, (int, float))]
    else:
        rows.append(("status", "search still running: best trial so far, not yet scored on the test split"))
    return _kv_table(rows)


def _lineage_table(snap: RunSnapshot, describe: _Describer) -> str:
    best = snap.best
    if best is None:
        return ""
    lin = lineage(snap.trials, best.id)
    rows = "".join(
        f"<tr><td>{t.id}</td><td>{_e(t.operator)}</td><td>{_e(', '.join(map(str, t.parents)) or '–')}</td>"
        f"{_td(t.reward)}{_td(t.params)}<td class='arch'>{_e(describe(t.genome))}</td></tr>"
        for t in lin.chain()
    )
    note = f'<p class="note">Parents not in the store: {lin.missing}</p>' if lin.missing else ""
    return ('<table id="lineage"><thead><tr><th>trial</th><th>operator</th><th>parents</th><th>reward</th><th>params</th>'
            f'<th>architecture</th></tr></thead><tbody>{rows}</tbody></table>{note}')


def _pareto_text(snap: RunSnapshot) -> str:
    objs, declared = pareto_objectives(snap)
    if not declared:
        return (f'<p class="note">This study optimised a single objective ({_e(snap.reward_name)}), so it has no Pareto '
                'front; the plot shows the trade-off between reward and parameter count for reference.</p>')
    front = pareto_front(snap.complete, objs)
    head = "".join(f"<th>{_e(o.label)}</th>" for o in objs)
    rows = "".join(f"<tr><td>{t.id}</td>{''.join(_td(objective_value(t, o.name)) for o in objs)}</tr>" for t in front)
    return (f'<p>{len(front)} trials on the front of {len(objs)} objectives.</p>'
            f'<table id="pareto" class="sortable"><thead><tr><th>trial</th>{head}</tr></thead><tbody>{rows}</tbody></table>')


def render_html(snap: RunSnapshot, pngs: Mapping[str, bytes], refresh_seconds: float | None = None) -> str:
    """The whole page. `refresh_seconds` makes the browser reload it (the live view)."""
    describe = _Describer(snap)
    counts: dict[str, int] = {}
    for t in snap.trials:
        counts[t.status] = counts.get(t.status, 0) + 1
    status = "finished" if snap.finished else "running or interrupted"
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    when = _dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    meta_refresh = f'<meta http-equiv="refresh" content="{max(1, round(refresh_seconds))}">' if refresh_seconds else ""
    live = f" · live, refreshes every {refresh_seconds:g} s" if refresh_seconds else ""
    elapsed = f" · {snap.elapsed_seconds:.0f} s of search" if snap.elapsed_seconds else ""

    def plot(name: str, title: str) -> str:
        if name not in pngs:
            return f'<p class="note">Nothing to plot yet for {_e(title.lower())}.</p>'
        data = base64.b64encode(pngs[name]).decode("ascii")
        return f'<img class="plot" id="plot-{name}" alt="{_e(title)}" src="data:image/png;base64,{data}">'

    titles = {spec.name: spec.title for spec in PLOTS}
    sections = [
        ("settings", "Settings", _settings(snap)),
        ("best", "Returned model", _final(snap, describe)),
        ("leaderboard-section", f"Leaderboard ({len(snap.trials)} trials)", leaderboard(snap, describe)),
        ("progress", "Search progress",
         f'<div class="grid"><div>{plot("reward_by_trial", titles["reward_by_trial"])}</div>'
         f'<div>{plot("reward_by_time", titles["reward_by_time"])}</div></div>'),
        ("front", "Pareto front", _pareto_text(snap) + plot("pareto", titles["pareto"])),
        ("ancestry", "Lineage of the best model", plot("lineage", titles["lineage"]) + _lineage_table(snap, describe)),
        ("learning", "Learning curves", plot("curves", titles["curves"])),
        ("confusion-section", "Confusion matrix of the best model", plot("confusion", titles["confusion"])),
        ("arch-section", "Architecture of the best model", plot("architecture", titles["architecture"])),
    ]
    body = "".join(f'<section id="{sid}"><h2>{_e(title)}</h2>{content}</section>' for sid, title, content in sections)
    name = snap.run_dir.resolve().name
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">{meta_refresh}
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>nasforge report: {_e(name)}</title><style>{_CSS}</style></head>
<body><header><h1>nasforge report: {_e(name)}</h1>
<p>{_e(status)} · {_e(summary or "no trials yet")}{_e(elapsed)} · generated {_e(when)}{_e(live)}</p></header>
<main>{body}</main><script>{_JS}</script></body></html>
"""
