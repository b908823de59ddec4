"""The Python API: run a study, open one, read its results, compare, draw, write the report.

What `noise-search` prints is what these return; in a notebook::

    import search

    study = search.run("studies/circles.toml", overrides={"study.repeats": 5})
    results = study.results()
    results.recommendation.decision          # "noise" | "no noise" | ...
    results.to_pandas()                      # one row per configuration
    results.to_pandas("seed")                # one row per configuration × repeat
    study.compare("hidden_pre:0.3", "none").p_paired
    study.figures()["heatmap"]               # a plotly Figure

Errors are exceptions (search.errors.NoiseSearchError and its subclasses, one-line
messages as the CLI prints them), never SystemExit. Reading is read-only: `Study.results`,
`compare` and `figures` train nothing (decision boundaries only when asked, in `report`).
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from search.errors import NoiseSearchError

if TYPE_CHECKING:
    import optuna
    import pandas as pd
    import plotly.graph_objects as go

    from search.analysis import stats
    from search.analysis.paired import PairedComparison
    from search.analysis.recommend import Recommendation
    from search.analysis.results import StudyResults
    from search.report import Progress as ReportProgress
    from search.report import ReportData
    from search.study.record import Progress

__all__ = ["Comparison", "Results", "Study", "StudyInfo", "delete_study", "open_study", "run",
           "studies"]

LEVELS = ("config", "seed", "profile")


# --- overrides: a dict of dotted keys, as --set ------------------------------------------------


def _toml_value(value: Any) -> str:
    """A Python value as the TOML text `--set key=VALUE` would hold."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string: JSON's escapes are TOML's
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise NoiseSearchError(f"overrides: a value must be a bool, number, string, list or dict; "
                           f"got {type(value).__name__} ({value!r})")


def override_items(overrides: Mapping[str, Any] | None) -> list[str]:
    """``{"study.repeats": 5}`` -> ``["study.repeats=5"]``, the --set items of the CLI."""
    return [f"{key}={_toml_value(value)}" for key, value in (overrides or {}).items()]


# --- results -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """The recommendation: ``decision`` ("noise", "no noise", "not significant", "none"),
    ``configuration`` (what to train with: the best configuration, the baseline "none", or
    None when there is no answer yet) and the sentence ``text`` the CLI prints."""

    decision: str
    configuration: str | None
    text: str
    significant_configurations: tuple[str, ...]
    details: Recommendation = field(repr=False)


@dataclass(frozen=True)
class Results:
    """A study's results: ``rows`` (one per configuration, best first, as `results --format
    json` lists them), the per-seed values, the recommendation and the progress."""

    recommendation: Answer
    _raw: StudyResults = field(repr=False)

    @property
    def study(self) -> str:
        return self._raw.name

    @property
    def metric(self) -> str:
        return self._raw.metric

    @property
    def direction(self) -> str:
        """maximize | minimize"""
        return self._raw.direction

    @property
    def rows(self) -> list[dict[str, Any]]:
        """One per configuration, best first, as `results --format json` lists them."""
        return self._raw.rows

    @property
    def progress(self) -> Progress:
        return self._raw.progress

    @property
    def values(self) -> dict[str, list[float]]:
        """Per configuration measured, its test metric per repeat."""
        return self._raw.values

    @property
    def robust_values(self) -> dict[str, list[float]]:
        """With [robustness]: per configuration measured, its robust score per repeat."""
        return self._raw.robust_values

    @property
    def objective(self) -> str:
        """study.objective: "clean", "robust" or "both"."""
        return self._raw.objective

    @property
    def has_robustness(self) -> bool:
        return self._raw.has_robustness

    @property
    def total(self) -> int:
        """Configurations the study has (or, before any is queued, the rows)."""
        return self._raw.total or len(self.rows)

    @property
    def maximize(self) -> bool:
        return self._raw.maximize

    @property
    def completed(self) -> list[dict[str, Any]]:
        """The rows of the configurations trained on every seed, best first."""
        return self._raw.completed

    @property
    def baseline(self) -> dict[str, Any] | None:
        """The baseline's row (no noise), once measured."""
        return self._raw.baseline

    def to_json(self, with_recommendation: bool = False) -> str:
        """`results --format json`: the rows, or (``with_recommendation``) an object with the
        rows and the recommendation. An undefined statistic is null, never NaN."""
        from search.analysis.recommend import recommendation_json

        out = recommendation_json(self._raw) if with_recommendation else self.rows
        return json.dumps(out, indent=2, allow_nan=False)

    def to_csv(self) -> str:
        """`results --format csv`: the JSON's columns, nested values (profile, certified) as
        JSON text in their cell."""
        import csv
        import io

        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(self.rows[0]), lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: json.dumps(v) if isinstance(v, (dict, list)) else v
                             for k, v in row.items()})
        return buf.getvalue()

    def to_pandas(self, level: str = "config") -> pd.DataFrame:
        """A DataFrame at one of three levels:

        - ``"config"``: one row per configuration, the JSON's columns (nested profile and
          certified lists left out: they are the "profile" level);
        - ``"seed"``: one row per configuration × repeat: ``config``, ``placement``, ``std``,
          ``repeat``, ``value`` (test metric), ``train_value``, ``robust_score`` (with
          [robustness]), ``state``;
        - ``"profile"``: one row per configuration × test σ of [robustness]: ``config``,
          ``placement``, ``std``, ``test_std``, ``mean``, ``sd``, ``ci_low``, ``ci_high``,
          ``n``, ``diff``, ``p_holm``.
        """
        pd = _pandas()
        if level not in LEVELS:
            raise NoiseSearchError(f"to_pandas: 'level' must be one of "
                                   f"{', '.join(map(repr, LEVELS))}; got {level!r}")
        if level == "config":
            return pd.DataFrame([{k: v for k, v in row.items()
                                  if k not in ("robustness", "certified")}
                                 for row in self.rows])
        if level == "seed":
            return pd.DataFrame(self._seed_rows())
        return pd.DataFrame([{"config": row["config"], "placement": row["placement"],
                              "std": row["std"], **point}
                             for row in self.rows for point in row.get("robustness") or ()])

    def _seed_rows(self) -> list[dict[str, Any]]:
        train = self._raw.train_values
        out = []
        for row in self.rows:
            values = self.values.get(row["config"])
            if values is None:
                continue
            none: list[float | None] = [None] * len(values)
            trains: list[float | None] = list(train.get(row["config"]) or none)
            robust: list[float | None] = list(self.robust_values.get(row["config"]) or none)
            for repeat, (value, train_value, score) in enumerate(zip(values, trains, robust)):
                out.append({"config": row["config"], "placement": row["placement"],
                            "std": row["std"], "repeat": repeat, "value": value,
                            "train_value": train_value, "robust_score": score,
                            "state": row["state"]})
        return out


@dataclass(frozen=True)
class Comparison:
    """Configuration ``a`` against ``b`` (A − B), paired by seed (`noise-search compare`).

    ``a`` and ``b`` are the two results rows; ``paired`` the paired comparison the verdict
    rests on (its numbers are also attributes here: ``p_paired``, ``diff``, ``diff_ci_low``,
    ``diff_ci_high``, ``p_wilcoxon``, ``n`` shared seeds, ``test``, ``p_improve``,
    ``seeds_needed``); ``unpaired`` Welch's test, Cohen's d and the same-seed wins;
    ``robust`` the robust scores' paired comparison with [robustness]; ``verdict`` the
    sentence the CLI prints."""

    study: str
    metric: str
    direction: str
    a: dict[str, Any]
    b: dict[str, Any]
    paired: PairedComparison
    unpaired: stats.Comparison
    robust: PairedComparison | None
    verdict: str

    def __getattr__(self, name: str) -> Any:
        # Only reached for names the dataclass does not have: the paired test's numbers.
        if name in _PAIRED_FIELDS:
            return getattr(self.paired, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def as_dict(self) -> dict[str, Any]:
        """`compare --format json`."""
        from search.analysis.results import unpaired_dict

        out = {"study": self.study, "metric": self.metric, "direction": self.direction,
               "a": self.a, "b": self.b, **self.paired.as_dict(),
               **unpaired_dict(self.unpaired)}
        if self.robust is not None:
            out["robust"] = self.robust.as_dict()
        return out

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, allow_nan=False)


_PAIRED_FIELDS = frozenset({"n", "diff", "diff_ci_low", "diff_ci_high", "p_paired",
                            "p_wilcoxon", "p_improve", "p_improve_low", "p_improve_high",
                            "test", "seeds_needed"})


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise NoiseSearchError("to_pandas needs pandas: pip install 'noise-search[pandas]' "
                               "(or pip install pandas)") from None
    return pandas


def _answer(results: StudyResults) -> Answer:
    from search.analysis.recommend import decision, recommend
    from search.noise import BASELINE

    rec = recommend(results)
    answer = decision(rec)
    use = {"noise": rec.best, "no noise": BASELINE}.get(answer)
    return Answer(answer, use, rec.text, tuple(rec.significant_configs), rec)


def results_of(raw: StudyResults) -> Results:
    """The API's view of analysis.results.StudyResults."""
    return Results(_answer(raw), raw)


# --- studies -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StudyInfo:
    """One study of a storage and its progress (`noise-search studies`)."""

    name: str
    metric: str
    complete: int
    diverged: int
    pruned: int
    total: int
    running: int
    waiting: int
    failed: int
    finished: bool


class Study:
    """A study in a storage, opened by name; every method reads it anew (workers may still be
    writing), through the storage's retry policy."""

    def __init__(self, name: str, storage: str | None = None) -> None:
        from search.storage import open_storage, resolve_url

        self.name = name
        self.storage = resolve_url(storage)
        self._rdb = open_storage(self.storage, must_exist=True)
        self._load()  # an unknown name fails here, listing the studies

    def __repr__(self) -> str:
        from search.storage import mask_password

        return f"Study({self.name!r}, storage={mask_password(self.storage)!r})"

    def load(self) -> optuna.Study:
        """The Optuna study itself (for Optuna's own tools), read through the retry policy."""
        return self._load()

    def _load(self) -> optuna.Study:
        from search.analysis.results import load_study
        from search.storage import retrying

        return retrying(lambda: load_study(self._rdb, self.name),
                        f"reading study {self.name!r}")

    def _raw_results(self) -> StudyResults:
        from search.analysis.results import read_results
        from search.storage import retrying

        return retrying(lambda: read_results(self._load()), f"reading study {self.name!r}")

    def results(self, require_complete: bool = True) -> Results:
        """The results as `noise-search results` shows them (also while the study runs); a
        study with no configuration complete yet is a StudyError unless not
        ``require_complete``."""
        from search.analysis.results import require_completed

        raw = self._raw_results()
        if require_complete:
            require_completed(raw)
        return results_of(raw)

    def compare(self, a: str, b: str) -> Comparison:
        """Configuration ``a`` against ``b`` (A − B), paired by seed, as `noise-search compare`
        (see Comparison: ``.p_paired``, ``.diff``, ``.verdict``, ...)."""
        from search.analysis.recommend import compare_verdict
        from search.analysis.results import compare_configs

        raw = self._raw_results()
        pair = compare_configs(raw, a, b)
        return Comparison(raw.name, raw.metric, raw.direction, pair.a, pair.b, pair.paired,
                          pair.comparison, pair.robust, compare_verdict(pair, raw.maximize))

    def verdict(self, a: str, b: str) -> str:
        """`noise-search compare`'s verdict line for ``a`` against ``b``."""
        return self.compare(a, b).verdict

    def figures(self, boundaries: bool = False) -> dict[str, go.Figure]:
        """The report's Plotly figures by id (e.g. "heatmap", "repeats", "curves").
        ``boundaries=True`` also draws decision boundaries, which may retrain models."""
        from search import report

        data = self.report_data(boundaries)
        # ids are "noise-search-<n>-<name>" (stable for the dashboard); the name is the key
        return {f.id.split("-", 3)[-1]: f.figure for f in report.figures(data)}

    def report_data(self, boundaries: bool = True,
                    progress: ReportProgress | None = None) -> ReportData:
        """What the report shows: read through the retry policy (it trains nothing), then, if
        ``boundaries``, the decision boundaries, their own step outside the retries (it may
        train repeat 0 of a configuration whose weights were not stored, and an outage must
        not repeat that). ``progress(what, steps)`` is told of each step (reading: 1, each
        boundary: 1)."""
        from search import report
        from search.storage import retrying

        data = retrying(lambda: report.collect(self._load(), progress=progress),
                        f"reading study {self.name!r}")
        if not boundaries:
            return data
        from search.startup import quiet_tensorflow_logging

        quiet_tensorflow_logging()  # drawing a boundary may load an engine
        return report.with_boundaries(data, progress)

    def report(self, path: str | Path, boundaries: bool = True, quiet: bool = True) -> Path:
        """Write the self-contained HTML report to ``path``; returns the path."""
        from search import report

        target = Path(path)
        report.check_writable(target)
        with report_steps(boundaries, quiet) as progress:
            data = self.report_data(boundaries, progress)
            figures = report.figures(data)
        report.write_html(data, figures, target)
        return target

    def save_to_dashboard(self, data: ReportData | None = None, quiet: bool = True) -> int:
        """Save the report's figures and a summary note into the study, where
        optuna-dashboard shows them (replacing earlier ones); returns how many figures."""
        from search import report
        from search.storage import retrying

        if data is None:
            with report_steps(True, quiet) as progress:
                data = self.report_data(True, progress)
        drawn = data
        return retrying(lambda: report.save_to_dashboard(self._load(), drawn),
                        "saving the figures into the study")

    def _save_after_run(self, results: Results, quiet: bool,
                        warn: Callable[[str], None]) -> int | None:
        """A run's last step: figures and note into the study, unless they already show every
        completed trial (report.save_after_run decides, by the ``results`` the run ended
        with, and draws once when workers finish together); None when nothing was saved
        (``warn`` says why if drawing failed)."""
        from search import report

        def build() -> ReportData:
            with report_steps(True, quiet) as progress:
                return self.report_data(True, progress)

        study = self._load()
        return report.save_after_run(study, results._raw, build, warn)

    def delete(self, force: bool = False) -> None:
        """Delete the study and its trials (refused while trials run, unless ``force``)."""
        delete_study(self.name, self.storage, force)


def open_study(name: str, storage: str | None = None) -> Study:
    """The study ``name`` in ``storage`` (default: $NOISE_SEARCH_STORAGE, else the SQLite
    file noise-search.db in the working directory)."""
    return Study(name, storage)


def studies(storage: str | None = None) -> list[StudyInfo]:
    """Every study in the storage with its progress."""
    from search.analysis.results import study_overview
    from search.storage import open_storage, retrying

    rdb = open_storage(storage, must_exist=True)
    rows = retrying(lambda: study_overview(rdb), "reading the studies")
    return [StudyInfo(r["name"], r["metric"], r["complete"], r["diverged"], r["pruned"],
                      r["total"], r["running"], r["waiting"], r["failed"], r["finished"])
            for r in rows]


def delete_study(name: str, storage: str | None = None, force: bool = False) -> None:
    """Delete study ``name`` and its trials; the SQL views stay."""
    from search.storage import open_storage
    from search.study.deleting import delete_study as delete

    delete(open_storage(storage, must_exist=True), name, force)


# --- the report's steps ---------------------------------------------------------------------


@contextlib.contextmanager
def report_steps(boundaries: bool, quiet: bool) -> Iterator[ReportProgress]:
    """A progress bar (tqdm.auto: a widget in a notebook, stderr in a terminal) over building
    a report: reading, the two decision boundaries, drawing; none if ``quiet``."""
    from tqdm.auto import tqdm

    with tqdm(total=4 if boundaries else 2, desc="report: reading trials", unit="step",
              disable=quiet, dynamic_ncols=True) as bar:
        def progress(what: str, advance: int) -> None:
            bar.set_description(f"report: {what}")
            bar.update(advance)

        yield progress
        progress("drawing figures", 0)
        bar.update(bar.total - bar.n)


# --- running -------------------------------------------------------------------------------


def run(study_file: str | Path, overrides: Mapping[str, Any] | Sequence[str] | None = None,
        storage: str | None = None, study_name: str | None = None, workers: int = 1,
        quiet: bool = False, reporter: Callable[[Any, Any, Any], Reporter] | None = None,
        ) -> Study:
    """Run (or resume) the study a study file describes, as `noise-search run` does.

    ``overrides`` maps dotted keys to values, as ``--set`` (``{"study.repeats": 5}``), or is
    the ``--set`` items themselves (``["study.repeats=5"]``). Everything is validated before
    the storage is opened. ``quiet=False`` shows a progress bar (tqdm.auto: a widget in a
    notebook); ``reporter(spec, study, data)``, if given, makes what reports progress instead
    (the CLI's header and per-configuration lines): its ``done(outcome)`` is called as each
    configuration (or racing block) finishes, its ``close()`` at the end.
    """
    from search import spec as spec_module
    from search.data import load_dataset
    from search.startup import quiet_tensorflow_logging
    from search.storage import check_shareable, resolve_url

    quiet_tensorflow_logging()
    if workers < 1:
        raise NoiseSearchError(f"run: 'workers' must be >= 1; got {workers}")
    items = (override_items(overrides) if overrides is None or isinstance(overrides, Mapping)
             else list(overrides))
    spec = spec_module.load(Path(study_file), items, study_name)
    url = resolve_url(storage)
    if workers > 1:
        check_shareable(url)
    data = load_dataset(spec)  # bad data fails here, before the storage is opened or created
    if spec.model.builder is not None:  # and a model of the user's that does not fit the data
        from search.builder import check_fits_data

        check_fits_data(spec, data)
    make = reporter or (lambda spec, study, data: _Bar(spec, study, quiet))
    report = _train(spec, data, url, workers, make)
    study = Study(spec.study.name, url)
    # Read once, for the summary and for whether the saved figures are up to date.
    results = study.results(require_complete=False)
    report.finished(results)
    saved = study._save_after_run(results, quiet, report.warn)
    if saved is not None:
        report.saved_figures(saved)
    return study


def _train(spec: Any, data: Any, url: str, workers: int,
           make: Callable[[Any, Any, Any], Reporter]) -> Reporter:
    """Train what the study still needs, in this process or in ``workers`` local worker
    processes (then this one only opens the study and reports); returns the reporter."""
    from search.storage import open_storage

    rdb = open_storage(url)
    if workers > 1:
        from search.study.opening import open_study as open_optuna_study
        from search.workers import run_workers

        report = make(spec, open_optuna_study(spec, rdb), data)
        try:
            run_workers(spec, url, workers, on_done=report.done)
        finally:
            report.close()
        return report
    from search.interrupts import catch_interrupts
    from search.startup import load_tensorflow
    from search.study.runner import StudyRunner

    load_tensorflow()  # quietly: the Keras engines import it lazily, while training
    runner = StudyRunner(spec, rdb, data=data)
    report = make(spec, runner.study, data)
    try:
        with catch_interrupts() as stop:
            runner.run(on_done=report.done, stop=stop)
    finally:
        report.close()
    return report


def study_progress(study: optuna.Study) -> Progress:
    """How far an open study is (configurations done of its total), read through the retry
    policy: where a run's progress display starts."""
    from search.storage import retrying
    from search.study import record

    def read() -> Progress:
        meta = record.StudyMeta.read(study)
        assert meta is not None  # the run opened it: noise-search's
        return record.progress(meta, study.get_trials(deepcopy=False))

    return retrying(read, "reading the study")


class Reporter(Protocol):
    """What reports a run's progress (`run`'s ``reporter``)."""

    def done(self, outcome: Any) -> None:
        """A configuration (or a raced block of one) finished: a runner.TrialOutcome."""

    def close(self) -> None:
        """The training is over."""

    def finished(self, results: Results) -> None:
        """The run is over and these are the study's results (the figures are saved next)."""

    def warn(self, message: str) -> None:
        """Something went wrong that leaves the study intact (the figures not saved)."""

    def saved_figures(self, count: int) -> None:
        """The run's last step saved ``count`` figures for optuna-dashboard."""


class _Bar:
    """The API's progress: a tqdm.auto bar over the study's configurations (none if quiet)."""

    def __init__(self, spec: Any, study: Any, quiet: bool) -> None:
        self.bar: Any = None
        self.quiet = quiet
        if quiet:
            return
        from tqdm.auto import tqdm

        progress = study_progress(study)
        self.bar = tqdm(total=progress.total, initial=progress.done, unit="config",
                        desc=spec.study.name)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def finished(self, results: Results) -> None:
        pass  # the caller has the study: study.results()

    def warn(self, message: str) -> None:
        import warnings

        warnings.warn(message, RuntimeWarning, stacklevel=3)

    def saved_figures(self, count: int) -> None:
        if not self.quiet:
            print(f"saved {count} figures and a summary note for optuna-dashboard")

    def done(self, outcome: Any) -> None:
        if self.bar is not None:
            self.bar.update(outcome.configurations_done)
