"""The report: collect a study's numbers, draw them with Plotly, write HTML or save to dashboard.

Split as optuna's visualization modules are: ``collect`` reads everything a
figure needs into plain dataclasses (tested against the stored numbers, no
rendering), and the ``*_figure`` functions only draw. The same figures go
into the self-contained HTML file and into the study for optuna-dashboard.

Figures are built from Python lists, not numpy arrays: Plotly serializes
arrays as base64 typed arrays, which older plotly.js builds (the one inside
optuna-dashboard) do not read.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats as sps
from scipy.special import expit

from search.analysis import results as results_module
from search.analysis.recommend import recommend
from search.analysis.stats import CONFIDENCE
from search.errors import NoiseSearchError
from search.noise import BASELINE, format_std
from search.study.record import CURVES_ATTR, SPEC_ATTR, TrialRecord

if TYPE_CHECKING:
    import optuna
    import plotly.graph_objects as go

# One progress callback signature for the CLI's tqdm bar: (what is being done, advance by).
Progress = Callable[[str, int], None]

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
           "#17becf", "#bcbd22", "#7f7f7f")
BASELINE_COLOR = "#444444"
BOUNDARY_GRID = 60  # points per axis of a decision-boundary grid: smooth enough, small to store

# Keys the statistics issue adds to result rows; shown when present, skipped when not.
OPTIONAL_STATS = (("p_value", "p"), ("p_holm", "p (Holm)"), ("cohen_d", "Cohen's d"))


# --- collected data ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigData:
    """One configuration as the figures need it; numbers are the stored ones."""

    config: str
    placement: str
    std: float | dict[str, float]
    state: str
    trial: int
    n: int | None
    mean: float | None
    sd: float | None
    ci_low: float | None
    ci_high: float | None
    train_mean: float | None
    diff: float | None
    test_values: tuple[float, ...]
    train_values: tuple[float, ...]
    extra: dict[str, Any] = field(default_factory=dict)  # p-values, effect sizes if stored

    @property
    def is_baseline(self) -> bool:
        return self.placement == BASELINE

    @property
    def complete(self) -> bool:
        return self.state == "COMPLETE"

    @property
    def sigma(self) -> float | None:
        """σ as a number for a σ axis; None when the sites of the placement differ."""
        return float(self.std) if not isinstance(self.std, dict) else None

    @property
    def sigma_label(self) -> str:
        if isinstance(self.std, dict):
            return ",".join(f"{site}={format_std(v)}" for site, v in self.std.items())
        return format_std(float(self.std))


@dataclass(frozen=True)
class Band:
    """Mean over repeats and its 95% confidence band, one value per recorded epoch."""

    mean: tuple[float, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]


@dataclass(frozen=True)
class Curves:
    config: str
    epochs: tuple[int, ...]
    test: Band
    train: Band


@dataclass(frozen=True)
class Boundary:
    """Decision boundary of repeat 0 of one configuration, retrained from the study file."""

    config: str
    xs: tuple[float, ...]
    ys: tuple[float, ...]
    z: tuple[tuple[float, ...], ...]  # binary: P(class 1); multi-class: predicted class
    kind: str  # probability | class
    test_metric: float  # of the retrained repeat 0, measured like the study measures it
    stored_test_metric: float  # repeat 0 as the study stored it


@dataclass(frozen=True)
class Points:
    x_train: tuple[tuple[float, float], ...]
    y_train: tuple[int, ...]
    x_test: tuple[tuple[float, float], ...]
    y_test: tuple[int, ...]
    feature_names: tuple[str, str]


@dataclass(frozen=True)
class ReportData:
    name: str
    metric: str
    direction: str  # maximize | minimize
    spec: dict[str, Any]
    total: int
    running: int
    waiting: int
    failed: int
    configs: tuple[ConfigData, ...]  # best first, then the unfinished ones
    curves: tuple[Curves, ...]  # baseline first, then the best of each placement
    boundaries: tuple[Boundary, ...]
    points: Points | None
    notes: tuple[str, ...]  # why a figure is missing, in words
    created: str
    advice: str | None = None  # analysis.recommend's text, where the statistics provide it
    diverged: int = 0  # configurations that diverged: done (deterministic), never run again

    @property
    def completed(self) -> tuple[ConfigData, ...]:
        return tuple(c for c in self.configs if c.complete)

    @property
    def baseline(self) -> ConfigData | None:
        return next((c for c in self.completed if c.is_baseline), None)

    @property
    def best(self) -> ConfigData | None:
        return self.completed[0] if self.completed else None

    @property
    def finished(self) -> bool:
        done = len(self.completed) + self.diverged
        return done >= self.total and self.running == 0 and self.waiting == 0

    @property
    def placements(self) -> tuple[str, ...]:
        """Noise placements in the study file's order (the baseline is not one)."""
        listed = list(self.spec.get("noise", {}).get("placements", []))
        seen = [c.placement for c in self.configs if not c.is_baseline]
        return tuple(dict.fromkeys([*listed, *seen]))

    def best_of(self, placement: str) -> ConfigData | None:
        return next((c for c in self.completed if c.placement == placement), None)

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"


def _band(values: np.ndarray) -> Band:
    """(R, T) -> mean and t-based 95% CI of the mean at each of the T points."""
    values = np.asarray(values, dtype=np.float64)
    mean = values.mean(axis=0)
    n = values.shape[0]
    if n < 2:
        return Band(_tuple(mean), _tuple(mean), _tuple(mean))
    half = sps.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * values.std(axis=0, ddof=1) / math.sqrt(n)
    return Band(_tuple(mean), _tuple(mean - half), _tuple(mean + half))


def _tuple(values: Iterable[float], digits: int = 6) -> tuple[float, ...]:
    return tuple(round(float(v), digits) for v in values)


def collect(study: optuna.Study, *, boundaries: bool = True,
            progress: Progress | None = None) -> ReportData:
    """Everything the report shows, read from the study (and, for decision boundaries,
    retrained from its stored spec). Raises NoiseSearchError if nothing is complete yet."""
    res = results_module.collect(study)
    results_module.require_completed(res)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    spec_dict = study.user_attrs.get(SPEC_ATTR) or {}
    configs = []
    for row in res.rows:
        stored = TrialRecord.from_trial(trials[row["trial"]])
        extra = {key: row[key] for key, _ in OPTIONAL_STATS if row.get(key) is not None}
        configs.append(ConfigData(
            config=row["config"], placement=row["placement"], std=row["std"], state=row["state"],
            trial=row["trial"], n=row["n"], mean=row["mean"], sd=row["sd"],
            ci_low=row["ci_low"], ci_high=row["ci_high"], train_mean=row["train_mean"],
            diff=row["diff"], test_values=(stored and stored.test_values) or (),
            train_values=(stored and stored.train_values) or (), extra=extra,
        ))
    if progress is not None:
        progress(f"read {len(trials)} trials", 1)
    p = res.progress
    draft = ReportData(
        name=res.name, metric=res.metric, direction=res.direction, spec=spec_dict,
        total=max(p.total, 1), running=p.running, waiting=p.waiting,
        failed=p.failed, configs=tuple(configs), curves=(), boundaries=(), points=None,
        notes=(), created=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        advice=recommend(res).text, diverged=p.diverged,
    )
    notes: list[str] = []
    curves = []
    shown = [draft.baseline] + [draft.best_of(p) for p in draft.placements]
    for config in shown:
        if config is None:
            continue
        stored = trials[config.trial].system_attrs.get(CURVES_ATTR)
        if not stored:
            notes.append(f"{config.config}: no learning curves stored")
            continue
        curves.append(Curves(config.config, tuple(int(e) for e in stored["epochs"]),
                             _band(stored["test_metric"]), _band(stored["train_metric"])))
    found: tuple[Boundary, ...] = ()
    points = None
    if boundaries:
        found, points, why = _boundaries(draft, progress)
        if why:
            notes.append(why)
        for b in found:
            if not abs(b.test_metric - b.stored_test_metric) <= 1e-6:  # stored to 6 digits
                notes.append(f"{b.config}: the retrained seed 0 scores {b.test_metric:.6f}, the "
                             f"study stored {b.stored_test_metric:.6f}; the engine has changed "
                             "since the study ran")
    return ReportData(**{**draft.__dict__, "curves": tuple(curves), "boundaries": found,
                         "points": points, "notes": tuple(notes)})


def _boundaries(data: ReportData, progress: Progress | None,
                ) -> tuple[tuple[Boundary, ...], Points | None, str | None]:
    """Retrain repeat 0 of the baseline and the best configuration; their boundaries on a grid.

    The study stores metrics, not weights, so the model is trained again from the
    stored spec: same initial weights, data order and noise as the study's repeat 0
    (DESIGN.md decision 3), which the stored test metric confirms.
    """
    from search import spec as spec_module
    from search.data import load_dataset

    try:
        spec = spec_module.from_dict(data.spec, "stored spec", data.name)
        dataset = load_dataset(spec)
    except NoiseSearchError as exc:
        return (), None, f"decision boundaries skipped: the data cannot be rebuilt ({exc})"
    if dataset.n_features != 2:
        return (), None, (f"decision boundaries are drawn for 2-D data only; this dataset has "
                          f"{dataset.n_features} features")
    if dataset.task == "regression":
        return (), None, "decision boundaries are drawn for classification only"
    chosen = [c for c in (data.baseline, data.best) if c is not None]
    chosen = list({c.config: c for c in chosen}.values())
    if not chosen:
        return (), None, None

    import tensorflow as tf

    from search.engine import fast
    from search.noise import parse_config_key

    train_with_weights = getattr(fast, "train_with_weights", None)
    if train_with_weights is None:
        return (), None, "decision boundaries skipped: this engine does not return weights"

    x_all = np.concatenate([dataset.x_train, dataset.x_test])
    lo, hi = x_all.min(axis=0), x_all.max(axis=0)
    pad = 0.1 * (hi - lo)
    xs = np.linspace(lo[0] - pad[0], hi[0] + pad[0], BOUNDARY_GRID)
    ys = np.linspace(lo[1] - pad[1], hi[1] + pad[1], BOUNDARY_GRID)
    gx, gy = np.meshgrid(xs, ys)  # z[i][j] belongs to (xs[j], ys[i]), as Plotly expects
    grid = tf.constant(np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32))
    found = []
    for config in chosen:
        if progress is not None:
            progress(f"retraining {config.config}", 0)
        noise = parse_config_key(config.config, spec.noise.kind)
        # All repeats, exactly as the study trained them: a batch of one rounds differently.
        _, weights = train_with_weights(spec, dataset, noise)
        params = [tf.constant(a) for pair in weights for a in pair]
        cfg = fast.step_config(spec, dataset, noise)
        logits = fast.forward(cfg, params, grid).numpy()[0]
        if dataset.task == "binary":
            z = expit(logits[:, 0])  # logistic without overflow for large logits
            kind = "probability"
        else:
            z = np.argmax(logits, axis=1).astype(np.float64)
            kind = "class"
        _, metric = fast.evaluate(cfg, params, tf.constant(dataset.x_test),
                                  tf.constant(dataset.y_test), spec.metric)
        test_metric = float(metric.numpy()[0])
        if dataset.task != "regression":
            # Accuracy is a count over the test rows: undo float32 rounding, as the engine does.
            test_metric = round(test_metric * len(dataset.x_test)) / len(dataset.x_test)
        z2 = z.reshape(gx.shape)
        found.append(Boundary(
            config=config.config, xs=_tuple(xs, 4), ys=_tuple(ys, 4),
            z=tuple(_tuple(row, 3) for row in z2), kind=kind, test_metric=test_metric,
            stored_test_metric=float(config.test_values[0]) if config.test_values else math.nan,
        ))
        if progress is not None:
            progress(f"retrained {config.config}", 1)
    def labels(y: np.ndarray) -> tuple[int, ...]:
        return tuple(int(v) for v in np.asarray(y).reshape(len(y), -1)[:, 0])

    names = dataset.feature_names if len(dataset.feature_names) == 2 else ("x0", "x1")
    points = Points(
        x_train=tuple((round(float(a), 4), round(float(b), 4)) for a, b in dataset.x_train),
        y_train=labels(dataset.y_train),
        x_test=tuple((round(float(a), 4), round(float(b), 4)) for a, b in dataset.x_test),
        y_test=labels(dataset.y_test), feature_names=(str(names[0]), str(names[1])),
    )
    return tuple(found), points, None


# --- words ------------------------------------------------------------------------------------


def _f(value: float | None, digits: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.{digits}f}"


def _p(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.3f}" if value >= 1e-3 else f"{value:.1e}"


def _stat(key: str, value: float | None) -> str:
    return _p(value) if key.startswith("p_") else _f(value, 2)


def paired_difference(config: ConfigData, baseline: ConfigData) -> tuple[float, float, float]:
    """Mean of (config − baseline) over repeats paired by seed, and its 95% CI.

    Repeat r of both starts from the same weights and data order (common random
    numbers), so the paired difference is the honest comparison.
    """
    n = min(len(config.test_values), len(baseline.test_values))
    d = np.asarray(config.test_values[:n]) - np.asarray(baseline.test_values[:n])
    mean = float(d.mean()) if n else math.nan
    if n < 2 or np.ptp(d) == 0.0:
        return mean, mean, mean
    half = float(sps.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * d.std(ddof=1) / math.sqrt(n))
    return mean, mean - half, mean + half


def recommendation(data: ReportData) -> str:
    """The answer in words: where to put noise and how much, and how sure that is."""
    if data.advice:
        return data.advice[:1].upper() + data.advice[1:] + "."
    best, base = data.best, data.baseline
    if best is None:
        return "No configuration has completed yet."
    better = "higher" if data.maximize else "lower"
    if base is None:
        return (f"The baseline (no noise) has not completed yet; so far the best configuration "
                f"is {best.config} with mean test {data.metric} {_f(best.mean)}.")
    if best.is_baseline:
        return (f"No noise configuration beats the baseline: training without noise gives the "
                f"best mean test {data.metric}, {_f(base.mean)} "
                f"(95% CI {_f(base.ci_low)}–{_f(base.ci_high)}, n={base.n}).")
    mean, low, high = paired_difference(best, base)
    sure = (low > 0) if data.maximize else (high < 0)
    head = (f"Best: {_describe(best)} — mean test {data.metric} {_f(best.mean)} "
            f"(95% CI {_f(best.ci_low)}–{_f(best.ci_high)}) against {_f(base.mean)} without "
            f"noise, a difference of {mean:+.4f} (paired by seed, 95% CI {low:+.4f} to "
            f"{high:+.4f}).")
    if sure:
        return head + f" Recommended: {_describe(best)}; it is reliably {better} than no noise."
    return head + (" That difference is within the noise of the repeats: no configuration is "
                   "reliably better than training without noise; more repeats would tell.")


def _describe(config: ConfigData) -> str:
    if config.is_baseline:
        return "no noise"
    return f"{config.placement.replace('+', ' + ')} noise with σ = {config.sigma_label}"


def status_line(data: ReportData) -> str | None:
    """None when the study is finished; else what is done and what is not."""
    if data.finished:
        return None
    return (f"Study still running: {len(data.completed)} of {data.total} configurations "
            f"complete ({data.running} running, {data.waiting} queued, {data.failed} failed "
            f"trials). This report shows what is done.")


def summary_markdown(data: ReportData) -> str:
    """The dashboard note: the recommendation and the results table in markdown."""
    lines = [f"## noise-search: {data.name}", ""]
    status = status_line(data)
    if status:
        lines += [f"**{status}**", ""]
    lines += [recommendation(data), ""]
    extras = [(k, label) for k, label in OPTIONAL_STATS if any(k in c.extra for c in data.configs)]
    header = ["configuration", "n", f"mean {data.metric}", "95% CI", "Δ baseline",
              *[label for _, label in extras], "train", "state"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for c in data.configs:
        cells = [f"`{c.config}`", str(c.n or "-"), _f(c.mean),
                 f"{_f(c.ci_low)}–{_f(c.ci_high)}" if c.ci_low is not None else "-",
                 f"{c.diff:+.4f}" if c.diff is not None else "-",
                 *[_stat(k, c.extra.get(k)) for k, _ in extras], _f(c.train_mean),
                 c.state.lower()]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *[f"- {note}" for note in data.notes],
              "", f"_Figures: the study's \"noise-search\" graphs above; written {data.created} "
                  "by `noise-search`._"]
    return "\n".join(lines)


# --- figures ----------------------------------------------------------------------------------


def _color(placements: tuple[str, ...], placement: str) -> str:
    return PALETTE[placements.index(placement) % len(PALETTE)] if placement in placements \
        else BASELINE_COLOR


def _sigma_order(configs: Iterable[ConfigData]) -> list[str]:
    labels = {c.sigma_label: (c.sigma if c.sigma is not None else math.inf, c.sigma_label)
              for c in configs if not c.is_baseline}
    return sorted(labels, key=lambda k: labels[k])


def heatmap_figure(data: ReportData) -> go.Figure:
    """Placement × σ of the mean test metric; colours diverge from the baseline's mean."""
    import plotly.graph_objects as go

    base = data.baseline
    sigmas = _sigma_order(data.completed)
    columns = ["0 (baseline)", *sigmas] if base else sigmas
    rows = (["none (baseline)"] if base else []) + list(data.placements)
    z: list[list[float | None]] = [[None] * len(columns) for _ in rows]
    text: list[list[str]] = [[""] * len(columns) for _ in rows]
    for c in data.completed:
        if c.is_baseline:
            i, j = 0, 0
        elif c.placement in data.placements:
            i = rows.index(c.placement)
            j = columns.index(c.sigma_label)
        else:
            continue
        z[i][j] = c.mean
        text[i][j] = _f(c.mean, 3) + ("" if c.is_baseline or c.diff is None
                                      else f"<br>{c.diff:+.3f}")
    scale = "RdBu" if data.maximize else "RdBu_r"
    fig = go.Figure(go.Heatmap(
        z=z, x=columns, y=rows, text=text, texttemplate="%{text}", colorscale=scale,
        zmid=base.mean if base else None, hoverongaps=False,
        colorbar={"title": {"text": f"mean test<br>{data.metric}"}},
        hovertemplate="%{y}, σ=%{x}<br>mean %{z:.4f}<extra></extra>",
    ))
    if base:
        # The baseline cell is outlined: it is the reference every colour is relative to.
        fig.add_shape(type="rect", x0=-0.5, x1=0.5, y0=-0.5, y1=0.5, xref="x", yref="y",
                      line={"color": "black", "width": 3})
    best = data.best
    fig.update_layout(
        title={"text": f"Mean test {data.metric} by placement and σ"
               + (f" — baseline {_f(base.mean, 3)}, cells show mean and Δ baseline" if base
                  else "") + (f"; best {best.config}" if best else "")},
        xaxis={"title": {"text": "σ"}, "type": "category"},
        yaxis={"title": {"text": "placement"}, "autorange": "reversed", "type": "category"},
        height=max(320, 90 + 60 * len(rows)),
    )
    return fig


def sigma_figure(data: ReportData) -> go.Figure:
    """Mean test metric against σ (log axis): a line and 95% CI band per placement."""
    import plotly.graph_objects as go

    fig = go.Figure()
    base = data.baseline
    numeric = [c for c in data.completed if not c.is_baseline and c.sigma and c.sigma > 0]
    if base and base.ci_low is not None:
        fig.add_hrect(y0=base.ci_low, y1=base.ci_high, fillcolor=BASELINE_COLOR, opacity=0.15,
                      line_width=0)
    if base:
        fig.add_hline(y=base.mean, line={"color": BASELINE_COLOR, "dash": "dash"},
                      annotation_text=f"no noise {_f(base.mean, 3)}",
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
            customdata=[[c.ci_low, c.ci_high, c.n] for c in points],
            hovertemplate=(f"{placement} σ=%{{x}}<br>mean %{{y:.4f}}<br>95% CI "
                           "%{customdata[0]:.4f}–%{customdata[1]:.4f}, n=%{customdata[2]}"
                           "<extra></extra>")))
    if base:
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name="no noise (95% CI)",
                                 line={"color": BASELINE_COLOR, "dash": "dash"}))
    fig.update_layout(title={"text": f"Mean test {data.metric} against σ, with 95% CI bands"},
                      xaxis={"title": {"text": "σ (log scale)"}, "type": "log"},
                      yaxis={"title": {"text": f"test {data.metric}"}}, height=460)
    return fig


def repeats_figure(data: ReportData) -> go.Figure:
    """Every repeat's test metric per configuration (box and points), baseline first."""
    import plotly.graph_objects as go

    order = {p: i for i, p in enumerate(data.placements)}
    sigmas = _sigma_order(data.completed)
    shown = sorted(data.completed, key=lambda c: (
        -1 if c.is_baseline else order.get(c.placement, len(order)),
        sigmas.index(c.sigma_label) if not c.is_baseline else -1))
    fig = go.Figure()
    for c in shown:
        fig.add_trace(go.Box(
            y=list(c.test_values), name=c.config, boxpoints="all", jitter=0.4, pointpos=0,
            marker={"color": _color(data.placements, c.placement), "size": 4},
            line={"width": 1}, showlegend=False,
            hovertemplate=f"{c.config}<br>%{{y:.4f}}<extra></extra>"))
    if data.baseline:
        fig.add_hline(y=data.baseline.mean, line={"color": BASELINE_COLOR, "dash": "dot"})
    fig.update_layout(title={"text": f"Test {data.metric} of every repeat (dotted: baseline "
                             "mean)"},
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
    done = [c for c in data.completed if c.train_mean is not None and c.mean is not None]
    for placement in (BASELINE, *data.placements):
        cs = [c for c in done if c.placement == placement]
        if not cs:
            continue
        fig.add_trace(go.Scatter(
            x=[c.train_mean for c in cs], y=[c.mean for c in cs], mode="markers",
            name="no noise" if placement == BASELINE else placement,
            marker={"color": _color(data.placements, placement),
                    "size": 13 if placement == BASELINE else 9,
                    "symbol": "star" if placement == BASELINE else "circle"},
            error_y={"type": "data", "symmetric": False,
                     "array": [_half(c.mean, c.ci_high) for c in cs],
                     "arrayminus": [_half(c.mean, c.ci_low) for c in cs], "thickness": 1},
            text=[c.config for c in cs],
            hovertemplate="%{text}<br>train %{x:.4f}<br>test %{y:.4f}<extra></extra>"))
    if done:
        lo = min(min(c.train_mean for c in done), min(c.mean for c in done))  # type: ignore
        hi = max(max(c.train_mean for c in done), max(c.mean for c in done))  # type: ignore
        fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="test = train",
                                 line={"color": "#999999", "dash": "dot"}, hoverinfo="skip"))
    fig.update_layout(title={"text": f"Generalization gap: mean train vs test {data.metric} "
                             "(error bars: 95% CI of the test mean)"},
                      xaxis={"title": {"text": f"train {data.metric}"}},
                      yaxis={"title": {"text": f"test {data.metric}"}}, height=480)
    return fig


def boundary_figure(data: ReportData, compact: bool = False) -> go.Figure:
    """Decision boundaries of the retrained models over the training and test points."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    panels = list(data.boundaries)
    titles = [(f"{'no noise' if b.config == BASELINE else b.config}: "
               + (f"{b.test_metric:.3f}" if compact
                  else f"test {data.metric} {b.test_metric:.3f} (repeat 0)")) for b in panels]
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


def figures(data: ReportData, compact: bool = False) -> list[Figure]:
    """The report's figures in reading order; a figure whose data is missing is left out.

    ``compact``: for optuna-dashboard, which draws each figure in a half-width card
    of fixed height: short titles, the card's height.
    """
    m = data.metric
    out = [Figure("noise-search-1-heatmap", "Placement × σ", heatmap_figure(data))]
    if any(not c.is_baseline and c.sigma for c in data.completed):
        out.append(Figure("noise-search-2-sigma", "Test metric against σ", sigma_figure(data)))
    out.append(Figure("noise-search-3-repeats", "Every repeat", repeats_figure(data)))
    if data.curves:
        out.append(Figure("noise-search-4-curves", "Learning curves",
                          curves_figure(data, compact)))
    out.append(Figure("noise-search-5-gap", "Generalization gap", gap_figure(data)))
    if data.boundaries:
        out.append(Figure("noise-search-6-boundary", "Decision boundary",
                          boundary_figure(data, compact)))
    if compact:
        short = {"noise-search-1-heatmap": f"Mean test {m}: placement × σ (baseline outlined)",
                 "noise-search-2-sigma": f"Mean test {m} against σ (95% CI bands)",
                 "noise-search-3-repeats": f"Test {m} of every repeat",
                 "noise-search-4-curves": f"Learning curves: train (blue) vs test {m}",
                 "noise-search-5-gap": f"Train vs test {m} (generalization gap)",
                 "noise-search-6-boundary": "Decision boundary: baseline vs best (seed 0)"}
        for f in out:
            f.figure.update_layout(height=None, title={"text": short[f.id], "font": {"size": 14}},
                                   margin={"l": 50, "r": 20, "t": 60, "b": 40})
    return out


# --- outputs ----------------------------------------------------------------------------------

# Errors in the page are written into it: a person sees that a figure failed, and the
# browser test reads them from the DOM.
_ERROR_CAPTURE = """<script>
window.__nsErrors = [];
function __nsReport(text) {
  window.__nsErrors.push(String(text));
  var box = document.getElementById("page-errors");
  if (box) { box.hidden = false; box.textContent = window.__nsErrors.join("\\n"); }
}
window.addEventListener("error", function (e) { __nsReport("error: " + e.message); });
window.addEventListener("unhandledrejection",
                        function (e) { __nsReport("rejection: " + e.reason); });
var __nsConsoleError = console.error;
console.error = function () {
  __nsReport("console.error: " + Array.prototype.join.call(arguments, " "));
  __nsConsoleError.apply(console, arguments);
};
</script>"""

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto;
       max-width: 1200px; padding: 1.5rem; color: #222; }
h1 { margin-bottom: 0.2rem; } .meta { color: #666; margin-top: 0; }
.status { background: #fff4ce; border: 1px solid #e0c050; padding: 0.6rem 1rem; }
.answer { background: #eef6ee; border-left: 5px solid #2ca02c; padding: 0.8rem 1rem;
          font-size: 1.05rem; }
#page-errors { background: #fde2e2; border: 1px solid #d62728; padding: 0.6rem 1rem; }
table { border-collapse: collapse; font-size: 0.88rem; margin: 1rem 0; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: right; }
td { white-space: nowrap; }
th:first-child, td:first-child { text-align: left; } tr.baseline { background: #f2f2f2; }
tr.best { font-weight: 600; } .figure { margin: 1.5rem 0; } .notes { color: #666; }
"""


def render_html(data: ReportData, figs: list[Figure]) -> str:
    """One self-contained page: plotly.js inlined, so it opens offline and can be shared."""
    import plotly.io as pio
    from plotly.offline import get_plotlyjs

    e = html.escape
    status = status_line(data)
    extras = [(k, label) for k, label in OPTIONAL_STATS if any(k in c.extra for c in data.configs)]
    head = ["configuration", "n", f"mean test {data.metric}", "sd", "95% CI", "Δ baseline",
            *[label for _, label in extras], f"train {data.metric}", "gap", "state"]
    rows = []
    for c in data.configs:
        gap = (c.train_mean - c.mean) if c.train_mean is not None and c.mean is not None \
            else None
        cls = "baseline" if c.is_baseline else ("best" if c is data.best else "")
        cells = [c.config, str(c.n or "-"), _f(c.mean), _f(c.sd),
                 f"{_f(c.ci_low)}–{_f(c.ci_high)}" if c.ci_low is not None else "-",
                 f"{c.diff:+.4f}" if c.diff is not None else "-",
                 *[_stat(k, c.extra.get(k)) for k, _ in extras], _f(c.train_mean), _f(gap),
                 c.state.lower()]
        rows.append(f'<tr class="{cls}">' + "".join(f"<td>{e(x)}</td>" for x in cells)
                    + "</tr>")
    table = ("<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in head)
             + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")
    divs = []
    for f in figs:
        div = pio.to_html(f.figure, full_html=False, include_plotlyjs=False, div_id=f.id,
                          default_width="100%", config={"displaylogo": False})
        divs.append(f'<section class="figure"><h2>{e(f.title)}</h2>{div}</section>')
    s = data.spec
    model, dset = s.get("model", {}), s.get("data", {})
    meta = (f"{dset.get('dataset', '?')} data, {dset.get('n_train', '?')} training rows; "
            f"model hidden {model.get('hidden', '?')}, {model.get('epochs', '?')} epochs; "
            f"{s.get('study', {}).get('repeats', '?')} repeats per configuration; "
            f"{len(data.completed)} of {data.total} configurations complete; written "
            f"{data.created}")
    notes = "".join(f"<li>{e(n)}</li>" for n in data.notes)
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>noise-search report: {e(data.name)}</title>", _ERROR_CAPTURE,
        f"<style>{_CSS}</style>",
        f'<script type="text/javascript">{get_plotlyjs()}</script>', "</head><body>",
        '<pre id="page-errors" hidden></pre>',
        f"<h1>noise-search report: {e(data.name)}</h1>", f'<p class="meta">{e(meta)}</p>',
        f'<p class="status">{e(status)}</p>' if status else "",
        f'<p class="answer">{e(recommendation(data))}</p>',
        "<h2>Summary</h2>", table,
        f'<ul class="notes">{notes}</ul>' if notes else "",
        *divs, "</body></html>",
    ])


def write_html(data: ReportData, figs: list[Figure], path: Path) -> None:
    text = render_html(data, figs)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise NoiseSearchError(
            f"cannot write the report to {str(path)!r}: {exc.strerror or exc}") from None


def save_to_dashboard(study: optuna.Study, data: ReportData) -> int:
    """Store the (compact) figures and the summary note in the study, replacing earlier ones.

    optuna-dashboard keys a figure by its id and a note by the study, so saving
    again overwrites in place instead of adding copies. Returns the number of figures.
    """
    from optuna_dashboard import save_note, save_plotly_graph_object

    figs = figures(data, compact=True)
    for f in figs:
        save_plotly_graph_object(study, f.figure, graph_object_id=f.id)
    save_note(study, summary_markdown(data))
    return len(figs)
