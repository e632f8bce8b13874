"""Reports of search runs: one self-contained HTML page, PNG plots and a terminal summary.

``python -m nas.report RUN_DIR [RUN_DIR ...] [--out DIR]`` reads the run folders written by
``python -m nas.search`` and writes ``report.html`` (plots inlined as base64 PNG and as an
inline SVG whose points show their architecture on hover; nothing is fetched, so the page
opens offline), ``front.png`` and ``hypervolume.png``. The page holds:

* the fronts of all runs overlaid (accuracy vs MACs, log x), every evaluated point faint,
  baselines marked and labelled;
* hypervolume vs evaluations per run;
* a table of every Pareto architecture (spec string, MACs, params, accuracy), each with its
  per-layer cost table (:mod:`nas.cost`) in a collapsible ``<details>``.

Run folders are read by :func:`nas.run.read_run` (the run folder's one reader); this module
only presents. :func:`write_front_plot` is the plot the search reuses for its own
``pareto.png``/``.html``.

This module imports neither torch nor Lightning: reports are cheap to make.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table

from nas import cost as C
from nas.run import Run, cost_column, cost_label, front_of, ok_rows, quality
from nas.spec import ArchSpec, SpecError

# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
           "#17becf")


@dataclass
class _Series:
    label: str
    evaluated: pd.DataFrame
    front: pd.DataFrame
    color: str


def _with_quality(df: pd.DataFrame | None) -> pd.DataFrame | None:
    """``df`` with a ``quality`` column (:func:`nas.run.quality`: the accuracy, or a
    zero-cost score's percentile in the space), what the plots draw upwards."""
    if df is None:
        return None
    return df.assign(quality=quality(df)) if len(df) else df.assign(quality=np.nan)


def _y_label(label: str) -> str:
    """The y axis of ``label`` (``accuracy`` or ``score (PROXY)``)."""
    if label == "accuracy":
        return "validation accuracy (%)"
    return f"{label}: percentile in the space (%)"


def _value_cell(r: Any, label: str) -> str:
    """A row's accuracy in percent, or its raw zero-cost score."""
    if label == "accuracy":
        return _fmt_num(r.get("accuracy"), pct=True)
    v = pd.to_numeric(r.get("score"), errors="coerce")
    return "-" if v is None or not np.isfinite(v) else f"{float(v):.4g}"


def _finite(df: pd.DataFrame, *cols: str) -> pd.DataFrame:
    """Rows whose ``cols`` are finite numbers (and the cost positive, for a log axis)."""
    if not len(df) or any(c not in df for c in cols):
        return df.iloc[:0]
    mask = pd.Series(True, index=df.index)
    for c in cols:
        v = pd.to_numeric(df[c], errors="coerce")
        mask &= np.isfinite(v)
    return df[mask & (pd.to_numeric(df[cols[0]], errors="coerce") > 0)]


def _search_front(pareto: pd.DataFrame, col: str = "macs") -> pd.DataFrame:
    """The search's rows of a pareto.csv frame (baselines dropped), sorted by cost."""
    if not len(pareto):
        return pareto
    df = pareto
    if "source" in df:
        df = df[df["source"].fillna("search").astype(str).ne("baseline")]
    df = _with_quality(df)
    df = df[np.isfinite(df["quality"])]
    return df.sort_values(col) if col in df else df


def _baseline_rows(frames: Sequence[pd.DataFrame | None]) -> pd.DataFrame:
    rows = [f for f in frames if f is not None and len(f) and "macs" in f]
    if not rows:
        return pd.DataFrame(columns=["name", "macs", "params", "latency_ms", "accuracy",
                                     "quality"])
    df = pd.concat(rows, ignore_index=True)
    for c in ("accuracy", "error", "score", "macs", "params", "latency_ms"):
        df[c] = pd.to_numeric(df[c], errors="coerce") if c in df else np.nan
    df = _with_quality(df)
    if "status" in df:  # a baseline that failed to train has no accuracy to show
        df.loc[df["status"].fillna("ok").astype(str).ne("ok"), "quality"] = np.nan
    key = "name" if "name" in df else "spec"
    # keep the trained row of a baseline when several runs carry it
    df = df.sort_values("quality", na_position="first").drop_duplicates(key, keep="last")
    if "name" not in df:
        df["name"] = df[key]
    return df.sort_values("macs")


def _plot_fronts(series: Sequence[_Series], baselines: pd.DataFrame, title: str,
                 col: str = "macs", ylabel: str = "accuracy"):
    fig = Figure(figsize=(8, 5.2), dpi=110)
    ax = fig.subplots()
    for s in series:
        ok = _finite(_with_quality(ok_rows(s.evaluated)), col)
        if len(ok):
            ax.scatter(ok[col], 100 * ok["quality"], s=14, color=s.color, alpha=0.3,
                       linewidths=0)
        front = _finite(_with_quality(s.front), col, "quality")
        if len(front):
            ax.step(front[col], 100 * front["quality"], where="post", color=s.color,
                    lw=1.6, label=f"{s.label} front ({len(front)})")
            ax.scatter(front[col], 100 * front["quality"], s=26, color=s.color,
                       edgecolors="black", linewidths=0.5, zorder=3)
    trained = _finite(baselines, col, "quality")
    if len(trained):
        ax.scatter(trained[col], 100 * trained["quality"], marker="*", s=110,
                   color="black", zorder=4, label="baselines")
        for _, r in trained.iterrows():
            ax.annotate(str(r["name"]), (r[col], 100 * r["quality"]), fontsize=7,
                        xytext=(4, 4), textcoords="offset points")
    costed = _finite(baselines, col)
    untrained = costed[~np.isfinite(costed["quality"])] if len(costed) else costed
    for _, r in untrained.iterrows():  # cost known, accuracy not: a labelled marker line
        ax.axvline(r[col], color="grey", ls=":", lw=0.8)
        ax.annotate(f"{r['name']} (not trained)", (r[col], 0.02),
                    xycoords=("data", "axes fraction"), rotation=90, fontsize=7,
                    color="grey", xytext=(2, 0), textcoords="offset points")
    if ax.has_data():
        ax.set_xscale("log")
    ax.set_xlabel(f"{cost_label(col)} (log scale)")
    ax.set_ylabel(_y_label(ylabel))
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.25)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def _plot_pairs(evaluated: pd.DataFrame, front: pd.DataFrame, baselines: pd.DataFrame,
                objectives: Sequence[str], title: str):
    """One panel per pair of objectives (K > 2): every evaluated point faint, the K-objective
    front and the baselines on top; cost axes log-scaled."""
    pairs = list(itertools.combinations(objectives, 2))
    ncol = min(3, len(pairs))
    nrow = -(-len(pairs) // ncol)
    fig = Figure(figsize=(4.2 * ncol, 3.6 * nrow), dpi=110)
    axes = fig.subplots(nrow, ncol, squeeze=False)
    ok = ok_rows(evaluated)
    for ax, (a, b) in zip(axes.flat, pairs):
        for df, kw in ((ok, dict(s=10, color=_COLORS[0], alpha=0.25, linewidths=0)),
                       (front, dict(s=22, color=_COLORS[0], edgecolors="black",
                                    linewidths=0.5, label=f"front ({len(front)})")),
                       (baselines, dict(marker="*", s=90, color="black", label="baselines"))):
            if len(df) and a in df and b in df:
                ax.scatter(pd.to_numeric(df[a], errors="coerce"),
                           pd.to_numeric(df[b], errors="coerce"), **kw)
        for name, axis in ((a, "x"), (b, "y")):
            cost = name != "error" and not name.endswith("_error")
            if cost and ax.has_data():
                getattr(ax, f"set_{axis}scale")("log")
            getattr(ax, f"set_{axis}label")(cost_label(name) if cost else name)
        ax.grid(True, which="both", alpha=0.25)
    for ax in list(axes.flat)[len(pairs):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _plot_hypervolume(runs: Sequence[Run]):
    fig = Figure(figsize=(8, 4), dpi=110)
    ax = fig.subplots()
    drawn = False
    for i, run in enumerate(runs):
        hv = run.hypervolume
        if hv is None or not len(hv) or "hypervolume" not in hv:
            continue
        x = hv["evaluations"] if "evaluations" in hv else hv.get("iteration", hv.index)
        cost = str(hv["cost"].iloc[-1]) if "cost" in hv else "cost"
        ax.plot(x, hv["hypervolume"], marker="o", ms=3, color=_COLORS[i % len(_COLORS)],
                label=f"{run.name} (error x {cost})")
        drawn = True
    if not drawn:
        return None
    ax.set_xlabel("evaluated architectures")
    ax.set_ylabel("hypervolume")
    ax.set_title("Hypervolume vs evaluations")
    ax.grid(True, alpha=0.25)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _save_png(fig, path: Path | None) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    data = buf.getvalue()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return data


def _img(png: bytes, alt: str) -> str:
    return (f'<img alt="{html.escape(alt)}" style="max-width:100%" '
            f'src="data:image/png;base64,{base64.b64encode(png).decode()}">')


# An inline SVG scatter: hovering a point shows its architecture (SVG <title>, no script).


def _log_ticks(lo: float, hi: float) -> list[float]:
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    mult = (1, 2, 5) if b - a <= 3 else (1,)
    ticks = [m * 10.0 ** e for e in range(a, b + 1) for m in mult]
    return [t for t in ticks if lo <= t <= hi] or [lo, hi]


def _tip(r: Any, label: str = "accuracy") -> str:
    name = r.get("name", r.get("arch_id", ""))
    lat = r.get("latency_ms")
    lat_s = f"  latency {float(lat):.3g} ms" if lat is not None and pd.notna(lat) else ""
    value = (f"acc {100 * r['quality']:.2f}%" if label == "accuracy"
             else f"{label} {_value_cell(r, label)} (percentile {100 * r['quality']:.1f})")
    return html.escape(f"{name}  {value}  MACs {_fmt_num(r.get('macs'))}"
                       f"  params {_fmt_num(r.get('params'))}{lat_s}\n{r.get('spec', '')}")


def _svg_front(series: Sequence[_Series], baselines: pd.DataFrame, title: str,
               col: str = "macs", ylabel: str = "accuracy") -> str:
    W, H, L, R, T, B = 760, 440, 64, 16, 30, 46
    frames = [_finite(_with_quality(ok_rows(s.evaluated)), col, "quality") for s in series]
    fronts = [_finite(_with_quality(s.front), col, "quality") for s in series]
    base = _finite(baselines, col, "quality")
    have = [f for f in (*frames, *fronts, base) if col in f and "quality" in f]
    xs = np.concatenate([f[col].to_numpy(float) for f in have] or [[]])
    ys = np.concatenate([f["quality"].to_numpy(float) for f in have] or [[]])
    if not len(xs):
        return ""
    x0, x1 = math.log10(xs.min()) - 0.1, math.log10(xs.max()) + 0.1
    pad = max((ys.max() - ys.min()) * 0.08, 0.005)
    y0, y1 = max(0.0, ys.min() - pad), min(1.0, ys.max() + pad)
    if y1 <= y0:
        y1 = y0 + 0.01

    def X(v: float) -> float:
        return L + (math.log10(v) - x0) / (x1 - x0) * (W - L - R)

    def Y(a: float) -> float:
        return T + (y1 - a) / (y1 - y0) * (H - T - B)

    e = html.escape
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="11">',
           f'<text x="{W / 2}" y="18" text-anchor="middle" font-size="13">{e(title)}</text>',
           f'<rect x="{L}" y="{T}" width="{W - L - R}" height="{H - T - B}" fill="none" '
           f'stroke="#888"/>']
    for t in _log_ticks(10 ** x0, 10 ** x1):
        x = X(t)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{T}" y2="{H - B}" stroke="#eee"/>'
                   f'<text x="{x:.1f}" y="{H - B + 14}" text-anchor="middle">'
                   f'{e(C.human(t))}</text>')
    for a in np.linspace(y0, y1, 6):
        y = Y(a)
        out.append(f'<line x1="{L}" x2="{W - R}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
                   f'<text x="{L - 4}" y="{y + 4:.1f}" text-anchor="end">{100 * a:.1f}</text>')
    out.append(f'<text x="{(L + W - R) / 2}" y="{H - 8}" text-anchor="middle">'
               f'{e(cost_label(col))} (log)</text><text transform="translate(14 '
               f'{(T + H - B) / 2}) rotate(-90)" text-anchor="middle">'
               f'{e(_y_label(ylabel))}</text>')
    for s, ok, front in zip(series, frames, fronts):
        for _, r in ok.iterrows():
            out.append(f'<circle cx="{X(r[col]):.1f}" cy="{Y(r["quality"]):.1f}" r="2.5" '
                       f'fill="{s.color}" fill-opacity="0.2"><title>{_tip(r, ylabel)}</title>'
                       f'</circle>')
        if len(front):
            xy = [(X(v), Y(a)) for v, a in zip(front[col], front["quality"])]
            steps = [f"{x:.1f},{y:.1f} {xy[i + 1][0]:.1f},{y:.1f}"
                     for i, (x, y) in enumerate(xy[:-1])]
            steps.append(f"{xy[-1][0]:.1f},{xy[-1][1]:.1f}")
            out.append(f'<polyline points="{" ".join(steps)}" fill="none" '
                       f'stroke="{s.color}" stroke-width="1.5"/>')
            for (x, y), (_, r) in zip(xy, front.iterrows()):
                out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{s.color}" '
                           f'stroke="black" stroke-width="0.5"><title>{_tip(r, ylabel)}'
                           f'</title></circle>')
    for _, r in base.iterrows():
        x, y = X(r[col]), Y(r["quality"])
        out.append(f'<g><rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" '
                   f'fill="black" transform="rotate(45 {x:.1f} {y:.1f})"/>'
                   f'<title>{_tip(r, ylabel)}</title></g><text x="{x + 6:.1f}" y="{y - 6:.1f}">'
                   f'{e(str(r["name"]))}</text>')
    for i, s in enumerate(series):
        out.append(f'<rect x="{L + 8}" y="{T + 8 + 15 * i}" width="10" height="10" '
                   f'fill="{s.color}"/><text x="{L + 22}" y="{T + 17 + 15 * i}">'
                   f'{e(s.label)}</text>')
    out.append("</svg>")
    return "".join(out)


def write_front_plot(df_evaluated: pd.DataFrame, df_pareto: pd.DataFrame | None,
                     df_baselines: pd.DataFrame | None, path_png: str | Path,
                     path_html: str | Path | None = None, *, title: str = "Pareto front",
                     cost: str = "macs", label: str = "search",
                     objectives: Sequence[str] | None = None,
                     quality_label: str = "accuracy") -> Path:
    """Accuracy-vs-cost plot of one run: all evaluated points faint, the front, baselines.

    Args:
        df_evaluated: evaluated.csv as a frame (columns macs, accuracy, status, ...).
        df_pareto: the front (pareto.csv rows; baseline rows are drawn as baselines only),
            or None to compute it from df_evaluated.
        df_baselines: baselines.csv as a frame (name, macs, accuracy, ...), or None.
        path_png: where to write the PNG.
        path_html: if given, also write a self-contained HTML page: the PNG, a hoverable
            inline SVG and the table of the front (no network needed to open it).
        title: plot title.
        cost: x axis: ``macs``, ``params`` or ``latency_ms`` (log scale).
        label: legend label of the front.
        objectives: the run's objective columns; with more than two the PNG shows one
            panel per pair of objectives (the accuracy-vs-cost plot stays in the HTML).
        quality_label: ``accuracy``, or ``score (PROXY)`` for a zero-cost run (drawn as
            the score's percentile in the space, never called an accuracy).
    Returns:
        The PNG path.
    """
    col = cost_column(cost, df_evaluated)
    front = (front_of(df_evaluated, col) if df_pareto is None
             else _search_front(df_pareto, col))
    s = _Series(label, df_evaluated, front, _COLORS[0])
    base = _baseline_rows([df_baselines])
    fig = _plot_fronts([s], base, title, col, quality_label)
    if objectives is not None and len(objectives) > 2:
        main = _save_png(fig, None)
        png = _save_png(_plot_pairs(df_evaluated, front, base, list(objectives), title),
                        Path(path_png))
        png_html = _img(png, title) + _img(main, title)
    else:
        png = _save_png(fig, Path(path_png))
        png_html = _img(png, title)
    if path_html is not None:
        body = (f"<h1>{html.escape(title)}</h1>{png_html}"
                f"<details open><summary>interactive (hover a point)</summary>"
                f"{_svg_front([s], base, title, col, quality_label)}</details>"
                f"<h2>Pareto architectures</h2>"
                f"{_pareto_table([('', front)], quality_label)}")
        Path(path_html).write_text(_page(title, body))
    return Path(path_png)

# --------------------------------------------------------------------------------------------
# HTML page
# --------------------------------------------------------------------------------------------

_CSS = """
body{font-family:sans-serif;margin:1.5em auto;max-width:1200px;color:#222}
table{border-collapse:collapse;font-size:12px;margin:.5em 0}
th,td{border:1px solid #ccc;padding:2px 6px;text-align:right}
th{background:#f2f2f2} td.l,th.l{text-align:left}
td.spec{text-align:left;font-family:monospace;max-width:520px;word-break:break-all}
details{margin:.3em 0} summary{cursor:pointer;font-family:monospace}
tr.baseline td{color:#555;font-style:italic}
"""


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>'
            f'{html.escape(title)}</title><style>{_CSS}</style></head><body>{body}'
            f'</body></html>\n')


def _fmt_num(v: Any, pct: bool = False) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return ""
    if not np.isfinite(f):
        return "-"
    return f"{100 * f:.2f}%" if pct else C.human(f)


def _cost_table(spec_text: str) -> str:
    """Per-layer cost table (nas.cost) of a spec string as HTML."""
    try:
        c = C.cost(ArchSpec.from_string(spec_text))
    except SpecError as ex:
        return f"<p>cannot cost this spec: {html.escape(str(ex))}</p>"
    head = ("layer", "output", "activations", "MACs", "FLOPs", "params", "memory (b=1)")
    rows = [(r.name, "x".join(map(str, r.out_shape)), C.human(r.activations), C.human(r.macs),
             C.human(r.flops), C.human(r.params), C.human(r.memory_bytes(), "B"))
            for r in c.layers]
    rows.append(("total", "", C.human(c.activations), C.human(c.macs), C.human(c.flops),
                 C.human(c.params), C.human(c.memory_bytes(), "B")))
    th = "".join(f'<th class="{"l" if i < 2 else ""}">{h}</th>' for i, h in enumerate(head))
    trs = "".join("<tr>" + "".join(f'<td class="{"l" if i < 2 else ""}">{html.escape(str(x))}'
                                   f"</td>" for i, x in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{trs}</table>"


def _pareto_table(groups: Sequence[tuple[str, pd.DataFrame]],
                  label: str = "accuracy") -> str:
    """One table row per Pareto architecture (all runs), each with its cost details."""
    multi = len(groups) > 1
    graded = any("true_accuracy" in df for _, df in groups)
    head = (["run"] if multi else []) + ["name / arch id", "source", label,
                                         *(["true accuracy"] if graded else []), "MACs",
                                         "params", "latency", "spec"]
    th = "".join(f'<th class="{"l" if h in ("run", "name / arch id", "spec") else ""}">'
                 f"{h}</th>" for h in head)
    rows = []
    for run_label, df in groups:
        if not len(df):
            continue
        for _, r in df.sort_values("macs").iterrows():
            src = str(r.get("source", "search"))
            name = str(r.get("name", r.get("arch_id", "")))
            if src != "baseline" and "arch_id" in r and str(r["arch_id"]) not in name:
                name = f"{name} ({r['arch_id']})"
            spec_text = str(r.get("spec", ""))
            lat = r.get("latency_ms", float("nan"))
            lat_s = f"{float(lat):.2f} ms" if pd.notna(lat) else "-"
            cells = ([f'<td class="l">{html.escape(run_label)}</td>'] if multi else []) + [
                f'<td class="l">{html.escape(name)}</td>', f"<td>{html.escape(src)}</td>",
                f"<td>{_value_cell(r, label)}</td>",
                *([f"<td>{_fmt_num(r.get('true_accuracy'), pct=True)}</td>"] if graded else []),
                f"<td>{_fmt_num(r.get('macs'))}</td>", f"<td>{_fmt_num(r.get('params'))}</td>",
                f"<td>{lat_s}</td>",
                f'<td class="spec"><details><summary>{html.escape(spec_text)}</summary>'
                f"{_cost_table(spec_text)}</details></td>"]
            cls = ' class="baseline"' if src == "baseline" else ""
            rows.append(f"<tr{cls}>{''.join(cells)}</tr>")
    if not rows:
        return "<p>No Pareto architectures (no successful evaluations).</p>"
    return f"<table><tr>{th}</tr>{''.join(rows)}</table>"


def _run_summary(run: Run) -> dict:
    ev = run.evaluated
    front = _search_front(run.pareto, "macs")
    hv = run.hypervolume
    label = run.quality_label
    if label == "accuracy":
        best = run.ok["accuracy"].max() if len(run.ok) else float("nan")
    else:  # the raw score of the network the search ranks first
        best = (float(run.ok.loc[run.ok["error"].idxmin(), "score"]) if len(run.ok)
                else float("nan"))
    return {"run": run.name, "evaluated": len(ev), "ok": len(run.ok),
            "failed": int(len(ev) - len(run.ok)), "front": len(front),
            f"best {label}": best,
            "hypervolume": (float(hv["hypervolume"].iloc[-1])
                            if hv is not None and len(hv) and "hypervolume" in hv
                            else float("nan"))}


def _summaries(runs: Sequence[Run]) -> list[dict]:
    """One summary per run, every run with the same keys (a "best" column per label)."""
    summ = [_run_summary(r) for r in runs]
    keys = list(dict.fromkeys(k for s in summ for k in s))
    return [{k: s.get(k, float("nan")) for k in keys} for s in summ]


def _fmt_cell(key: str, v: Any) -> str:
    """A run-summary value as printed (accuracy in percent, floats to 4 digits)."""
    if key == "best accuracy":
        return _fmt_num(v, pct=True)
    if key.startswith("best score"):
        return f"{v:.4g}"
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def _describe_run(run: Run) -> str:
    """``space mobile, data cifar10, seed 0`` from the run's config (what is known)."""
    cfg = run.config
    parts = [f"space {run.space}"] if run.space else []
    data = cfg.get("data")
    if isinstance(data, dict):
        data = data.get("name")
    if data:
        parts.append(f"data {data}")
    state = run.status.get("state")
    if state and state != "complete":
        parts.append(f"status {state}")
    if "seed" in cfg:
        parts.append(f"seed {cfg['seed']}")
    obj = cfg.get("objectives")
    if isinstance(obj, dict) and obj.get("cost"):
        parts.append(f"cost {obj['cost']}")
    elif isinstance(obj, list) and obj:
        parts.append(f"objectives {', '.join(map(str, obj))}")
    return ", ".join(parts)


def write_report(runs: Sequence[Run], out: str | Path, *, cost: str = "macs") -> Path:
    """Write ``report.html``, ``front.png`` and ``hypervolume.png`` under ``out``.

    The plotted fronts are the non-dominated ok architectures on (error, ``cost``); the
    table lists each run's own ``pareto.csv`` (its front in its own cost, and baselines)."""
    col = cost_column(cost, pd.concat([r.evaluated.iloc[:0] for r in runs])
                      if runs else None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    series = [_Series(r.name, r.evaluated, front_of(r.evaluated, col),
                      _COLORS[i % len(_COLORS)]) for i, r in enumerate(runs)]
    base = _baseline_rows([r.baselines for r in runs]
                          + [r.pareto[r.pareto["source"].astype(str).eq("baseline")]
                             for r in runs if len(r.pareto) and "source" in r.pareto])
    labels = sorted({r.quality_label for r in runs})
    ylabel = " / ".join(labels)
    title = (f"{ylabel[0].upper()}{ylabel[1:]} vs {cost_label(col)}"
             + (f" ({len(runs)} runs)" if len(runs) > 1 else ""))
    front_png = _save_png(_plot_fronts(series, base, title, col, ylabel), out / "front.png")
    hv_fig = _plot_hypervolume(runs)
    hv_html = "<p>No hypervolume.csv in these runs.</p>"
    if hv_fig is not None:
        hv_html = _img(_save_png(hv_fig, out / "hypervolume.png"), "hypervolume")
    summ = _summaries(runs)
    th = "".join(f"<th>{html.escape(k)}</th>" for k in summ[0])
    trs = "".join("<tr>" + "".join(
        f"<td>{html.escape(_fmt_cell(k, v))}</td>"
        for k, v in s.items()) + "</tr>" for s in summ)
    cfgs = "".join(f"<li><b>{html.escape(r.name)}</b>: {html.escape(str(r.path))} "
                   f"{html.escape(_describe_run(r))}</li>" for r in runs)
    body = (f"<h1>NAS report</h1><ul>{cfgs}</ul><table><tr>{th}</tr>{trs}</table>"
            f"<h2>Pareto fronts</h2>{_img(front_png, 'fronts')}"
            f"<details open><summary>interactive (hover a point)</summary>"
            f"{_svg_front(series, base, title, col, ylabel)}</details>"
            f"<h2>Hypervolume</h2>{hv_html}"
            f"<h2>Pareto architectures</h2><p>Click a spec for its per-layer cost table "
            f"(MACs exclude biases; memory is the training rule of thumb at batch 1).</p>"
            f"{_pareto_table([(r.name, r.pareto) for r in runs], ylabel)}")
    path = out / "report.html"
    path.write_text(_page("NAS report", body))
    return path


def print_summary(runs: Sequence[Run], *, console: Any = None) -> None:
    """The report's numbers as rich tables on the terminal."""
    console = console or Console()
    t = Table(title="runs")
    summ = _summaries(runs)
    for k in summ[0]:
        t.add_column(k, justify="left" if k == "run" else "right")
    for s in summ:
        t.add_row(*[_fmt_cell(k, v) for k, v in s.items()])
    console.print(t)
    for r in runs:
        ft = Table(title=f"Pareto architectures of {r.name}")
        for col, just in (("name", "left"), ("source", "left"), (r.quality_label, "right"),
                          ("MACs", "right"), ("params", "right"), ("spec", "left")):
            ft.add_column(col, justify=just, overflow="fold")
        for _, row in (r.pareto.sort_values("macs") if len(r.pareto) else r.pareto).iterrows():
            ft.add_row(str(row.get("name", row.get("arch_id", ""))),
                       str(row.get("source", "search")),
                       _value_cell(row, r.quality_label), _fmt_num(row.get("macs")),
                       _fmt_num(row.get("params")), str(row.get("spec", "")))
        console.print(ft)


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


__all__ = ["print_summary", "write_front_plot", "write_report"]
