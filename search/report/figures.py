"""The report's Plotly figures: draw what `collect` read, nothing else.

Figures are built from Python lists, not numpy arrays: Plotly serializes arrays as base64
typed arrays, which older plotly.js builds (the one inside optuna-dashboard) do not read.
A new figure: a ``*_figure(data)`` function here and one line in `figures`.
"""

from __future__ import annotations

import html
import math
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from search import format as fmt
from search.noise import BASELINE
from search.report.collect import ConfigData, ReportData

if TYPE_CHECKING:
    import plotly.graph_objects as go

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
           "#17becf", "#bcbd22", "#7f7f7f")
BASELINE_COLOR = "#444444"


def _color(placements: tuple[str, ...], placement: str) -> str:
    return PALETTE[placements.index(placement) % len(PALETTE)] if placement in placements \
        else BASELINE_COLOR


# Plotly draws a hover box on one line unless told: text wider than this is wrapped.
HOVER_WIDTH = 80
# Pixels per row of text in a heatmap cell, so that Plotly, which shrinks cell text to fit
# its cell, keeps it at a readable size; and the rows of a dashboard card (450 px tall).
LINE_PX = 16
DASHBOARD_ROWS_PX = 340
STOPPED_MARKER = "circle-open"


def _hover(text: str) -> str:
    """Text for a hover box: wrapped, and escaped (Plotly reads a subset of HTML, so a
    reason's "<=" must not start a tag)."""
    return "<br>".join(html.escape(line, quote=False)
                       for line in textwrap.wrap(text, HOVER_WIDTH))


def _rows_axis(labels: list[str], px_per_row: float) -> dict[str, object]:
    """A category axis that labels every row (Plotly skips labels that it finds crowded),
    its font no taller than a row."""
    return {"type": "category", "tickmode": "array", "tickvals": labels, "ticktext": labels,
            "categoryorder": "array", "categoryarray": labels,
            "tickfont": {"size": max(7, min(12, int(px_per_row * 0.8)))}}


def _stopped_legend(fig: go.Figure, data: ReportData) -> None:
    """A legend entry for the open markers of configurations racing stopped."""
    import plotly.graph_objects as go

    if any(c.stopped for c in data.measured):
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers",
                                 name="open: stopped by racing (fewer seeds)",
                                 marker={"symbol": STOPPED_MARKER, "color": BASELINE_COLOR,
                                         "size": 9}))


def _sigma_order(configs: Iterable[ConfigData]) -> list[str]:
    labels = {c.sigma_label: (c.sigma if c.sigma is not None else math.inf, c.sigma_label)
              for c in configs if not c.is_baseline}
    return sorted(labels, key=lambda k: labels[k])


def _cell(c: ConfigData, compact: bool) -> str:
    """A heatmap cell: the mean, its Δ from the baseline, and whether racing stopped it;
    ``compact`` (a dashboard card, narrow cells): the Δ alone, the rest on hover."""
    if compact:
        return fmt.signed(c.diff, 3) if not c.is_baseline else fmt.number(c.mean, 3)
    text = fmt.number(c.mean, 3)
    if not c.is_baseline and c.diff is not None:
        text += f"<br>{fmt.signed(c.diff, 3)}"
    return text + (f"<br>stopped at {c.n}" if c.stopped else "")


def heatmap_figure(data: ReportData, compact: bool = False) -> go.Figure:
    """Placement × σ of the mean test metric of every measured configuration (one racing
    stopped: on the seeds it ran, marked); colours diverge from the baseline's mean.
    ``compact``: one line a cell (see `_cell`)."""
    import plotly.graph_objects as go

    base = data.baseline
    sigmas = _sigma_order(data.measured)
    columns = ["0 (baseline)", *sigmas] if base else sigmas
    rows = (["none (baseline)"] if base else []) + list(data.placements)
    z: list[list[float | None]] = [[None] * len(columns) for _ in rows]
    text: list[list[str]] = [[""] * len(columns) for _ in rows]
    status: list[list[str]] = [[""] * len(columns) for _ in rows]
    for c in data.measured:
        if c.is_baseline:
            if not base:
                continue
            i, j = 0, 0
        elif c.placement in data.placements:
            i = rows.index(c.placement)
            j = columns.index(c.sigma_label)
        else:
            continue
        z[i][j], text[i][j], status[i][j] = c.mean, _cell(c, compact), _hover(c.status)
    scale = "RdBu" if data.maximize else "RdBu_r"
    fig = go.Figure(go.Heatmap(
        z=z, x=columns, y=rows, text=text, texttemplate="%{text}", colorscale=scale,
        zmid=base.mean if base else None, hoverongaps=False, customdata=status,
        colorbar={"title": {"text": f"mean test<br>{data.metric}"}},
        hovertemplate="%{y}, σ=%{x}<br>mean %{z:.4f}<br>%{customdata}<extra></extra>",
    ))
    if base:
        # The baseline cell is outlined: it is the reference every colour is relative to.
        fig.add_shape(type="rect", x0=-0.5, x1=0.5, y0=-0.5, y1=0.5, xref="x", yref="y",
                      line={"color": "black", "width": 3})
    best = data.best
    lines = 1 if compact else 3 if any(c.stopped for c in data.measured) else 2
    fig.update_layout(
        title={"text": f"Mean test {data.metric} by placement and σ"
               + (f" — baseline {fmt.number(base.mean, 3)}, cells show mean and Δ baseline" if base
                  else "") + (f"; best {best.config}" if best else "")
               + ("<br>stopped at n: racing stopped it after n seeds (the mean of those)"
                  if lines == 3 else "")},
        xaxis={"title": {"text": "σ"}, "type": "category"},
        yaxis={"title": {"text": "placement"}, "autorange": "reversed", "type": "category"},
        height=max(320, 170 + (LINE_PX * lines + 14) * len(rows)),
    )
    return fig


def sigma_figure(data: ReportData) -> go.Figure:
    """Mean test metric against σ (log axis): a line and 95% CI band per placement."""
    import plotly.graph_objects as go

    fig = go.Figure()
    base = data.baseline
    numeric = data.on_sigma_axis
    if base and base.ci_low is not None:
        fig.add_hrect(y0=base.ci_low, y1=base.ci_high, fillcolor=BASELINE_COLOR, opacity=0.15,
                      line_width=0)
    if base:
        fig.add_hline(y=base.mean, line={"color": BASELINE_COLOR, "dash": "dash"},
                      annotation_text=f"no noise {fmt.number(base.mean, 3)}",
                      annotation_position="bottom right")
    for placement in data.placements:
        points = sorted((c for c in numeric if c.placement == placement),
                        key=lambda c: c.sigma or 0.0)
        if not points:
            continue
        color = _color(data.placements, placement)
        x = [c.sigma for c in points]
        if all(c.ci_low is not None for c in points):
            fig.add_trace(go.Scatter(
                x=x + x[::-1], y=[c.ci_high for c in points] + [c.ci_low for c in points][::-1],
                fill="toself", fillcolor=color, opacity=0.18, line={"width": 0},
                hoverinfo="skip", showlegend=False, legendgroup=placement))
        fig.add_trace(go.Scatter(
            x=x, y=[c.mean for c in points], mode="lines+markers", name=placement,
            line={"color": color}, legendgroup=placement,
            marker={"symbol": [STOPPED_MARKER if c.stopped else "circle" for c in points],
                    "size": 8},
            customdata=[[c.ci_low, c.ci_high, _hover(c.status)] for c in points],
            hovertemplate=(f"{placement} σ=%{{x}}<br>mean %{{y:.4f}}<br>95% CI "
                           "%{customdata[0]:.4f}–%{customdata[1]:.4f}<br>%{customdata[2]}"
                           "<extra></extra>")))
    if base:
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name="no noise (95% CI)",
                                 line={"color": BASELINE_COLOR, "dash": "dash"}))
    _stopped_legend(fig, data)
    fig.update_layout(title={"text": f"Mean test {data.metric} against σ, with 95% CI bands"},
                      xaxis={"title": {"text": "σ (log scale)"}, "type": "log"},
                      yaxis={"title": {"text": f"test {data.metric}"}}, height=460)
    return fig


def repeats_figure(data: ReportData) -> go.Figure:
    """Every repeat's test metric per measured configuration (box and points), baseline
    first; a configuration racing stopped has the seeds it ran, open markers."""
    import plotly.graph_objects as go

    order = {p: i for i, p in enumerate(data.placements)}
    sigmas = _sigma_order(data.measured)
    shown = sorted(data.measured, key=lambda c: (
        -1 if c.is_baseline else order.get(c.placement, len(order)),
        sigmas.index(c.sigma_label) if not c.is_baseline else -1))
    fig = go.Figure()
    for c in shown:
        fig.add_trace(go.Box(
            y=list(c.test_values), name=c.label, boxpoints="all", jitter=0.4, pointpos=0,
            marker={"color": _color(data.placements, c.placement), "size": 4,
                    "symbol": STOPPED_MARKER if c.stopped else "circle"},
            line={"width": 1}, showlegend=False,
            hovertemplate=f"{c.config}<br>%{{y:.4f}}<br>{_hover(c.status)}<extra></extra>"))
    if data.baseline:
        fig.add_hline(y=data.baseline.mean, line={"color": BASELINE_COLOR, "dash": "dot"})
    stopped = any(c.stopped for c in shown)
    fig.update_layout(title={"text": f"Test {data.metric} of every repeat (dotted: baseline "
                             "mean" + ("; stopped: racing stopped it, the seeds it ran"
                                       if stopped else "") + ")"},
                      xaxis={"title": {"text": "configuration"}, "tickangle": -45},
                      yaxis={"title": {"text": f"test {data.metric}"}}, height=480)
    return fig


def curves_figure(data: ReportData, compact: bool = False) -> go.Figure:
    """Train and test learning curves (mean and 95% band) of the baseline and each best.

    ``compact``: small panel titles, for the dashboard's fixed-height cards."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    panels = list(data.curves)
    cols = min(3, max(1, len(panels)))
    rows = max(1, math.ceil(len(panels) / cols))
    titles = [("no noise" if p.config == BASELINE else p.config if compact
               else f"best {p.config}") for p in panels]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles or None,
                        shared_yaxes=True, horizontal_spacing=0.05, vertical_spacing=0.14)
    for k, p in enumerate(panels):
        r, c = k // cols + 1, k % cols + 1
        x = list(p.epochs)
        for which, band, color in (("train", p.train, "#1f77b4"), ("test", p.test, "#ff7f0e")):
            fig.add_trace(go.Scatter(x=x + x[::-1], y=list(band.high) + list(band.low)[::-1],
                                     fill="toself", fillcolor=color, opacity=0.2,
                                     line={"width": 0}, hoverinfo="skip", showlegend=False),
                          row=r, col=c)
            fig.add_trace(go.Scatter(x=x, y=list(band.mean), mode="lines", name=which,
                                     line={"color": color}, legendgroup=which,
                                     showlegend=k == 0,
                                     hovertemplate=f"{which} epoch %{{x}}: %{{y:.4f}}"
                                                   "<extra></extra>"),
                          row=r, col=c)
        fig.update_xaxes(title_text=None if compact else "epoch", row=r, col=c)
    if compact:
        fig.update_annotations(font_size=10)
    fig.update_yaxes(title_text=data.metric, col=1)
    fig.update_layout(title={"text": f"Learning curves: train vs test {data.metric} "
                             "(mean over repeats, 95% band)"},
                      height=120 + 300 * rows)
    return fig


def _half(mean: float | None, bound: float | None) -> float:
    """Length of an error bar from the mean to a CI bound; 0 where the CI is undefined (n = 1)."""
    if mean is None or bound is None:
        return 0.0
    return abs(bound - mean)


def gap_figure(data: ReportData) -> go.Figure:
    """Mean train against mean test metric per configuration: the generalization gap."""
    import plotly.graph_objects as go

    fig = go.Figure()
    done = [c for c in data.measured if c.train_mean is not None and c.mean is not None]
    for placement in (BASELINE, *data.placements):
        cs = [c for c in done if c.placement == placement]
        if not cs:
            continue
        fig.add_trace(go.Scatter(
            x=[c.train_mean for c in cs], y=[c.mean for c in cs], mode="markers",
            name="no noise" if placement == BASELINE else placement,
            marker={"color": _color(data.placements, placement),
                    "size": 13 if placement == BASELINE else 9,
                    "symbol": ["star" if c.is_baseline else STOPPED_MARKER if c.stopped
                               else "circle" for c in cs]},
            error_y={"type": "data", "symmetric": False,
                     "array": [_half(c.mean, c.ci_high) for c in cs],
                     "arrayminus": [_half(c.mean, c.ci_low) for c in cs], "thickness": 1},
            text=[c.config for c in cs], customdata=[_hover(c.status) for c in cs],
            hovertemplate="%{text}<br>train %{x:.4f}<br>test %{y:.4f}<br>%{customdata}"
                          "<extra></extra>"))
    if done:
        lo = min(min(c.train_mean for c in done), min(c.mean for c in done))  # type: ignore
        hi = max(max(c.train_mean for c in done), max(c.mean for c in done))  # type: ignore
        fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="test = train",
                                 line={"color": "#999999", "dash": "dot"}, hoverinfo="skip"))
    _stopped_legend(fig, data)
    fig.update_layout(title={"text": f"Generalization gap: mean train vs test {data.metric} "
                             "(error bars: 95% CI of the test mean)"},
                      xaxis={"title": {"text": f"train {data.metric}"}},
                      yaxis={"title": {"text": f"test {data.metric}"}}, height=480)
    return fig


def boundary_figure(data: ReportData, compact: bool = False) -> go.Figure:
    """Decision boundaries of repeat 0 of each configuration over the training and test points."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    panels = list(data.boundaries)
    scores = [fmt.number(b.test_metric, 3) for b in panels]
    titles = [(f"{'no noise' if b.config == BASELINE else b.config}: "
               + (score if compact else f"test {data.metric} {score} (repeat 0)"))
              for b, score in zip(panels, scores)]
    fig = make_subplots(rows=1, cols=max(1, len(panels)), subplot_titles=titles or None,
                        horizontal_spacing=0.08)
    pts = data.points
    for k, b in enumerate(panels):
        col = k + 1
        if b.kind == "probability":
            fig.add_trace(go.Contour(
                x=list(b.xs), y=list(b.ys), z=[list(r) for r in b.z], zmin=0, zmax=1,
                colorscale="RdBu", opacity=0.55, contours={"start": 0, "end": 1, "size": 0.1},
                line={"width": 0}, showscale=k == 0, showlegend=False,
                colorbar={"title": {"text": "P(class 1)"}},
                hovertemplate="P(class 1) %{z:.2f}<extra></extra>"), row=1, col=col)
            fig.add_trace(go.Contour(
                x=list(b.xs), y=list(b.ys), z=[list(r) for r in b.z], showscale=False,
                showlegend=False,
                contours={"start": 0.5, "end": 0.5, "size": 1, "coloring": "none"},
                line={"width": 2, "color": "black"}, hoverinfo="skip"), row=1, col=col)
        else:
            fig.add_trace(go.Heatmap(x=list(b.xs), y=list(b.ys), z=[list(r) for r in b.z],
                                     colorscale="Viridis", opacity=0.45, showscale=False,
                                     hovertemplate="class %{z}<extra></extra>"),
                          row=1, col=col)
        if pts is None:
            continue
        for label, xy, cls, symbol in (("train", pts.x_train, pts.y_train, "circle"),
                                       ("test", pts.x_test, pts.y_test, "x")):
            fig.add_trace(go.Scatter(
                x=[p[0] for p in xy], y=[p[1] for p in xy], mode="markers", name=label,
                legendgroup=label, showlegend=k == 0,
                marker={"symbol": symbol, "size": 8 if symbol == "circle" else 7,
                        "color": list(cls), "colorscale": [[0, "#d62728"], [1, "#1f77b4"]],
                        "line": {"width": 1, "color": "white"} if symbol == "circle" else None},
                hovertemplate=f"{label} class %{{marker.color}}<extra></extra>"),
                row=1, col=col)
        fig.update_xaxes(title_text=pts.feature_names[0], row=1, col=col)
    if pts is not None:
        fig.update_yaxes(title_text=pts.feature_names[1], row=1, col=1)
    fig.update_layout(title={"text": "Decision boundary (black: P = 0.5) of the baseline and the "
                             "best configuration; ○ train, × test"},
                      height=520, legend={"orientation": "h", "y": -0.15})
    return fig


@dataclass(frozen=True)
class Figure:
    id: str  # stable: saving to the dashboard again replaces the figure with this id
    title: str
    figure: go.Figure


def race_figure(data: ReportData, compact: bool = False) -> go.Figure:
    """Racing: the seeds each configuration ran, stopped ones apart, with why they stopped.
    Every row is labelled: the figure is as tall as its rows need (``compact``: a dashboard
    card's height, the labels smaller)."""
    import plotly.graph_objects as go

    rows = list(reversed(data.race))  # Plotly draws the first bar at the bottom
    fig = go.Figure()
    for state, name, color in (("COMPLETE", "ran to the maximum", PALETTE[0]),
                               ("PRUNED", "stopped by racing", BASELINE_COLOR)):
        chosen = [r for r in rows if r.state == state]
        fig.add_trace(go.Bar(
            x=[r.seeds for r in chosen], y=[r.config for r in chosen], orientation="h",
            name=name, marker={"color": color},
            customdata=[_hover(r.reason or "") for r in chosen],
            hovertemplate="%{y}: %{x} seeds<br>%{customdata}<extra></extra>"))
    per_row = DASHBOARD_ROWS_PX / max(1, len(rows)) if compact else 22
    fig.update_layout(title={"text": "Seeds per configuration: "
                             + fmt.racing_seeds(*data.race_seeds)},
                      xaxis={"title": {"text": "seeds run"}}, barmode="overlay",
                      yaxis={"title": {"text": "configuration"},
                             **_rows_axis([r.config for r in rows], per_row)},
                      height=max(300, 22 * len(rows) + 140))
    return fig


def robustness_heatmap_figure(data: ReportData, compact: bool = False) -> go.Figure:
    """[robustness]: configuration × test σ of the metric under test-time input noise, coloured
    by the paired Δ from the baseline at the same σ (the baseline's row is its own level).

    Plotly shrinks cell text to fit its cell, so the figure is as tall as two lines of text a
    row need; ``compact`` (a dashboard card of fixed height): one line, the Δ, while a row is
    tall enough for it, else the numbers on hover only."""
    import plotly.graph_objects as go

    profiles = list(data.profiles)
    stds = [fmt.std(s) for s in profiles[0].test_stds] if profiles else []
    z = [[(0.0 if p.placement == BASELINE else d) for d in p.diff] for p in profiles]
    per_row = DASHBOARD_ROWS_PX / max(1, len(profiles)) if compact else 2 * LINE_PX + 8
    if not compact:
        text = [[fmt.number(m, 3) + ("" if d is None else f"<br>{fmt.signed(d, 3)}")
                 for m, d in zip(p.mean, p.diff)] for p in profiles]
    elif per_row >= LINE_PX:
        text = [[fmt.number(m, 3) if d is None else fmt.signed(d, 3)
                 for m, d in zip(p.mean, p.diff)] for p in profiles]
    else:
        text = [[""] * len(stds) for _ in profiles]
    labels = [p.label for p in profiles]
    fig = go.Figure(go.Heatmap(
        z=z, x=stds, y=labels, text=text, texttemplate="%{text}",
        colorscale="RdBu" if data.maximize else "RdBu_r", zmid=0.0, hoverongaps=False,
        customdata=[[[fmt.number(m, 4), _hover(p.status)] for m in p.mean] for p in profiles],
        colorbar={"title": {"text": "Δ baseline<br>at that σ"}},
        hovertemplate="%{y}, test σ=%{x}<br>mean %{customdata[0]}, Δ baseline %{z:+.4f}"
                      "<br>%{customdata[1]}<extra></extra>"))
    fig.update_layout(
        title={"text": f"Test {data.metric} under input noise at test time: configuration × "
                       "test σ (cells: mean and paired Δ from the baseline at that σ)"},
        xaxis={"title": {"text": "test-time σ on the inputs"}, "type": "category"},
        yaxis={"title": {"text": "configuration"}, "autorange": "reversed",
               **_rows_axis(labels, per_row)},
        height=max(320, 170 + int(per_row) * len(profiles)))
    return fig


def robustness_curves_figure(data: ReportData) -> go.Figure:
    """[robustness]: the profiles (metric against test σ) of the baseline and of the most
    robust configuration of each placement, with 95% CI bands over the seeds."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for p in data.shown_profiles():
        color = _color(data.placements, p.placement)
        x = list(p.test_stds)
        if all(v is not None for v in (*p.low, *p.high)):
            fig.add_trace(go.Scatter(
                x=x + x[::-1], y=list(p.high) + list(p.low)[::-1], fill="toself",
                fillcolor=color, opacity=0.18, line={"width": 0}, hoverinfo="skip",
                showlegend=False, legendgroup=p.config))
        name = "no noise" if p.placement == BASELINE else p.label
        fig.add_trace(go.Scatter(
            x=x, y=list(p.mean), mode="lines+markers", name=name, legendgroup=p.config,
            line={"color": color, "dash": "dash" if p.placement == BASELINE else "solid"},
            marker={"symbol": STOPPED_MARKER if p.stopped else "circle"},
            customdata=[[lo, hi, _hover(p.status)] for lo, hi in zip(p.low, p.high)],
            hovertemplate=(f"{name} test σ=%{{x}}<br>mean %{{y:.4f}}<br>95% CI "
                           "%{customdata[0]:.4f}–%{customdata[1]:.4f}<br>%{customdata[2]}"
                           "<extra></extra>")))
    fig.update_layout(title={"text": f"Robustness profiles: test {data.metric} against test-time "
                                     "input σ, with 95% CI bands"},
                      xaxis={"title": {"text": "test-time σ on the inputs"}},
                      yaxis={"title": {"text": f"test {data.metric} under noise"}}, height=460)
    return fig


def figures(data: ReportData, compact: bool = False) -> list[Figure]:
    """The report's figures in reading order; a figure whose data is missing is left out.

    ``compact``: for optuna-dashboard, which draws each figure in a half-width card
    of fixed height: short titles, the card's height.
    """
    m = data.metric
    out = [Figure("noise-search-1-heatmap", "Placement × σ", heatmap_figure(data, compact))]
    if data.on_sigma_axis:  # else a note says why it is left out (collect)
        out.append(Figure("noise-search-2-sigma", "Test metric against σ", sigma_figure(data)))
    out.append(Figure("noise-search-3-repeats", "Every repeat", repeats_figure(data)))
    if data.curves:
        out.append(Figure("noise-search-4-curves", "Learning curves",
                          curves_figure(data, compact)))
    out.append(Figure("noise-search-5-gap", "Generalization gap", gap_figure(data)))
    if data.boundaries:
        out.append(Figure("noise-search-6-boundary", "Decision boundary",
                          boundary_figure(data, compact)))
    if data.race:
        out.append(Figure("noise-search-7-race", "Racing: seeds per configuration",
                          race_figure(data, compact)))
    if data.profiles:
        out.append(Figure("noise-search-8-robustness", "Robustness: configuration × test σ",
                          robustness_heatmap_figure(data, compact)))
        out.append(Figure("noise-search-9-profiles", "Robustness profiles",
                          robustness_curves_figure(data)))
    if compact:
        short = {"noise-search-1-heatmap": f"Test {m}: Δ baseline by placement × σ (hover: "
                                           "mean, seeds)",
                 "noise-search-2-sigma": f"Mean test {m} against σ (95% CI bands)",
                 "noise-search-3-repeats": f"Test {m} of every repeat",
                 "noise-search-4-curves": f"Learning curves: train (blue) vs test {m}",
                 "noise-search-5-gap": f"Train vs test {m} (generalization gap)",
                 "noise-search-6-boundary": "Decision boundary: baseline vs best (seed 0)",
                 "noise-search-7-race": "Racing: seeds each configuration ran",
                 "noise-search-8-robustness": f"Test {m} under input noise: Δ baseline per σ",
                 "noise-search-9-profiles": f"Robustness profiles: {m} against test σ"}
        for f in out:
            f.figure.update_layout(height=None, title={"text": short[f.id], "font": {"size": 14}},
                                   margin={"l": 50, "r": 20, "t": 60, "b": 40})
    return out
