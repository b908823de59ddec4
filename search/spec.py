"""Study file (TOML) -> validated, frozen dataclasses. All validation of user input lives here.

Every section is a frozen dataclass whose fields carry their own check in
``metadata["check"]``; loading iterates the fields, so adding a key means adding
one field. Every message names the file, the key, what is allowed and what was
given, on one line.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search import data as datasets
from search import engine, metrics
from search.analysis.racing import MIN_FIRST
from search.errors import SpecError
from search.noise import (
    KINDS,
    SITE_NAMES,
    NoiseConfig,
    expand_grid,
    is_site_name,
    parse_placement,
    site_name,
)


class _Invalid(Exception):
    """Raised by a check: carries what is allowed, for the message."""

    def __init__(self, allowed: str) -> None:
        super().__init__(allowed)
        self.allowed = allowed


Check = Callable[[Any], Any]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    """The one rule for every number of a study file: an int or float, and finite.

    TOML (and so ``--set``) can spell inf, -inf and nan; none of them is a σ, a rate or a
    size, and an accepted one would only show up later as diverged trials.
    """
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def integer(minimum: int | None = None, maximum: int | None = None) -> Check:
    allowed = ("an integer" + (f" >= {minimum}" if minimum is not None else "")
               + (f" and <= {maximum}" if maximum is not None else ""))

    def check(v: Any) -> int:
        if (not _is_int(v) or (minimum is not None and v < minimum)
                or (maximum is not None and v > maximum)):
            raise _Invalid(allowed)
        return int(v)

    return check


def number(minimum: float | None = None, exclusive: bool = False,
           maximum: float | None = None) -> Check:
    op = ">" if exclusive else ">="
    allowed = ("a finite number" + (f" {op} {minimum:g}" if minimum is not None else "")
               + (f" and <= {maximum:g}" if maximum is not None else ""))

    def check(v: Any) -> float:
        if not _is_number(v):
            raise _Invalid(allowed)
        if minimum is not None and (v <= minimum if exclusive else v < minimum):
            raise _Invalid(allowed)
        if maximum is not None and v > maximum:
            raise _Invalid(allowed)
        return float(v)

    return check


def choice(*options: str) -> Check:
    allowed = "one of " + ", ".join(repr(o) for o in options)

    def check(v: Any) -> str:
        if v not in options:
            raise _Invalid(allowed)
        return str(v)

    return check


def string() -> Check:
    def check(v: Any) -> str:
        if not isinstance(v, str) or not v:
            raise _Invalid("a non-empty string")
        return v

    return check


def optional(inner: Check) -> Check:
    def check(v: Any) -> Any:
        return None if v is None else inner(v)

    return check


def int_list(minimum: int) -> Check:
    allowed = f"a non-empty list of integers >= {minimum}"

    def check(v: Any) -> tuple[int, ...]:
        if not isinstance(v, list) or not v or not all(_is_int(x) and x >= minimum for x in v):
            raise _Invalid(allowed)
        return tuple(v)

    return check


def std_list() -> Check:
    allowed = "a non-empty list of finite numbers >= 0 (the σ grid)"

    def check(v: Any) -> tuple[float, ...]:
        if _is_number(v):
            v = [v]
        if not isinstance(v, list) or not v or not all(_is_number(x) and x >= 0 for x in v):
            raise _Invalid(allowed)
        return tuple(float(x) for x in v)

    return check


def function_ref() -> Check:
    allowed = "a 'file.py:function' string (the file relative to the study file)"

    def check(v: Any) -> str:
        path, sep, name = v.rpartition(":") if isinstance(v, str) else ("", "", "")
        if not sep or not path.strip() or not name.isidentifier():
            raise _Invalid(allowed)
        return v

    return check


# The built-in MLP's sites; a builder study's sites are the builder's (checked across keys).
PLACEMENTS_ALLOWED = ("a non-empty list of placements, each a site or sites joined by '+' ("
                      + ", ".join(SITE_NAMES) + ")")
SITE_STD_ALLOWED = "a table site -> list of σ, with sites among " + ", ".join(SITE_NAMES)


def placement_list() -> Check:
    allowed = PLACEMENTS_ALLOWED

    def check(v: Any) -> tuple[str, ...]:
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v):
            raise _Invalid(allowed)
        out = []
        for text in v:
            try:  # any site name here: whose sites they are is checked across keys
                sites = parse_placement(text, allowed=None)
            except ValueError:
                raise _Invalid(allowed) from None
            if not sites:
                raise _Invalid(allowed + "; the baseline 'none' is always included, "
                               "do not list it")
            out.append("+".join(site_name(s) for s in sites))
        return tuple(out)

    return check


def site_grid_table() -> Check:
    allowed = SITE_STD_ALLOWED

    def check(v: Any) -> tuple[tuple[str, tuple[float, ...]], ...]:
        if not isinstance(v, dict):
            raise _Invalid(allowed)
        grid = std_list()
        out = []
        for site, values in v.items():
            if site not in SITE_NAMES and not is_site_name(site):
                raise _Invalid(allowed)
            try:
                out.append((site, grid(values)))
            except _Invalid:
                raise _Invalid(allowed + "; each a non-empty list of finite numbers >= 0"
                               ) from None
        return tuple(out)

    return check


def _key(check: Check, default: Any = dataclasses.MISSING, doc: str = "") -> Any:
    if default is dataclasses.MISSING:
        return field(metadata={"check": check, "doc": doc})
    return field(default=default, metadata={"check": check, "doc": doc})


DATASETS = datasets.DATASETS
OBJECTIVES = ("clean", "robust", "both")
# A builder's model trains on this engine unless the file names another (search/engine).
BUILDER_ENGINE = "jax"


@dataclass(frozen=True)
class StudySection:
    name: str = _key(string())
    seed: int = _key(integer(0), 1)
    repeats: int = _key(integer(1), 30)
    sampler: str = _key(choice("grid", "tpe", "random"), "grid")
    n_trials: int = _key(integer(1), 50)
    engine: str = _key(choice(*engine.NAMES), "fast")
    record_every: int = _key(integer(1), 10)
    metric: str | None = _key(optional(choice(*metrics.NAMES)), None)
    # Added after studies existed: left out of the stored spec at its default, so that their
    # stored spec still compares equal (see _OMITTED_AT_DEFAULT).
    objective: str = _key(choice(*OBJECTIVES), "clean",
                          doc="what Optuna optimises and results rank: the clean metric, the "
                              "robust score of [robustness], or both (multi-objective)")
    # How many repeats train at once, not what they compute (repeat r is the same run in any
    # block): resumable, and left out of the stored spec at its default.
    max_replicas: int | None = _key(optional(integer(1)), None,
                                    doc="most repeats the jax engine trains at once (memory); "
                                        "default: as many as fit")


@dataclass(frozen=True)
class DataSpec:
    dataset: str = _key(choice(*DATASETS))
    n_samples: int = _key(integer(2), 100)
    noise: float = _key(number(0), 0.1)
    random_state: int = _key(integer(0), 1)
    n_train: int = _key(integer(1), 30)
    scale: str = _key(choice("none", "standard", "minmax"), "none")
    # generator shapes (only for the datasets that take them)
    n_features: int | None = _key(optional(integer(1)), None)
    n_informative: int | None = _key(optional(integer(1)), None)
    n_classes: int | None = _key(optional(integer(2)), None)
    centers: int | None = _key(optional(integer(2)), None)
    cluster_std: float | None = _key(optional(number(0, exclusive=True)), None)
    factor: float | None = _key(optional(number(0, exclusive=True)), None)
    # csv and npz: the file; csv: the target column; csv, npz and python: the task
    path: str | None = _key(optional(string()), None)
    target: str | None = _key(optional(string()), None)
    task: str | None = _key(optional(choice("classification", "regression")), None)
    # python only: a function returning x_train, y_train, x_test, y_test
    loader: str | None = _key(optional(function_ref()), None)
    # Regression targets scaled like the features, fitted on the training rows ("none" when
    # absent). Unscaled targets such as make_regression's (sd ~150) leave Adam at lr 0.001
    # thousands of epochs from the right output scale; with "standard", rmse / mse and the
    # targets' σ are in units of the training targets' standard deviation.
    scale_target: str | None = _key(
        optional(choice("none", "standard", "minmax")), None,
        doc="regression only: scale the target on the training rows; metrics are then in "
            "scaled units")


@dataclass(frozen=True)
class ModelSpec:
    hidden: tuple[int, ...] = _key(int_list(1), (500,))
    activation: str = _key(choice("relu", "tanh", "sigmoid", "elu"), "relu")
    epochs: int = _key(integer(1), 4000)
    batch_size: int = _key(integer(1), 32)
    optimizer: str = _key(choice("adam", "sgd", "rmsprop"), "adam")
    learning_rate: float | None = _key(optional(number(0, exclusive=True)), None)
    # Keras's SGD refuses a momentum outside [0, 1]; the fast engine follows the same rule.
    momentum: float = _key(number(0, maximum=1), 0.0)
    # Your own Keras model instead of the MLP: build(noise) -> keras.Model (search.builder).
    builder: str | None = _key(optional(function_ref()), None)


@dataclass(frozen=True)
class NoiseSpec:
    placements: tuple[str, ...] = _key(placement_list())
    std: tuple[float, ...] = _key(std_list())
    kind: str = _key(choice(*KINDS), "additive")
    site_std: tuple[tuple[str, tuple[float, ...]], ...] = _key(site_grid_table(), ())
    gradient_gamma: float = _key(number(0), 0.55)


def ascending_std_list() -> Check:
    """A σ grid of test-time noise, sorted ascending (the profile's x axis), without repeats."""
    grid = std_list()

    def check(v: Any) -> tuple[float, ...]:
        return tuple(sorted(set(grid(v))))

    return check


def number_list(minimum: float) -> Check:
    allowed = f"a non-empty list of finite numbers >= {minimum:g}"

    def check(v: Any) -> tuple[float, ...]:
        if _is_number(v):
            v = [v]
        if not isinstance(v, list) or not v or not all(_is_number(x) and x >= minimum for x in v):
            raise _Invalid(allowed)
        return tuple(sorted(float(x) for x in v))

    return check


def probability() -> Check:
    allowed = "a finite number > 0 and < 1"

    def check(v: Any) -> float:
        if not _is_number(v) or not 0 < v < 1:
            raise _Invalid(allowed)
        return float(v)

    return check


# Beyond these, more draws only cost time (each is a forward pass of every test point, for
# every repeat of every configuration): 10,000 draws leave a profile point a Monte Carlo
# standard error of at most 0.5 / √10,000 = 0.005 even on a single test point, below any
# seed-to-seed spread worth measuring; 1,000,000 estimation draws are ten times Cohen et al.'s
# (2019) 100,000, and with all of them agreeing certify a radius of 4.3 σ at alpha 0.001
# (3.8 σ at 100,000): each tenfold adds only about 0.5 σ.
MAX_DRAWS = 10_000
MAX_CERTIFY_N = 1_000_000


@dataclass(frozen=True)
class RobustnessSpec:
    """[robustness] (optional; absent: only the clean metric is measured). Every repeat's final
    model is evaluated with Gaussian noise on the test inputs at each σ of ``input_std``,
    ``draws`` times per test point (search.engine.noisy_eval, search.analysis.robustness).
    ``draws`` and ``certify_n`` are bounded (MAX_DRAWS, MAX_CERTIFY_N): past them a study
    runs for hours and its numbers hardly move."""

    input_std: tuple[float, ...] = _key(ascending_std_list(),
                                        doc="test-time σ grid on the inputs (sorted ascending)")
    draws: int = _key(integer(1, MAX_DRAWS), 20,
                      doc=f"noise draws per test point and σ (at most {MAX_DRAWS})")
    kind: str | None = _key(optional(choice(*KINDS)), None,
                            doc="additive or multiplicative; default: noise.kind")
    # Randomized smoothing (Cohen et al. 2019), classification only; absent: not certified.
    certify_std: float | None = _key(optional(number(0, exclusive=True)), None,
                                     doc="σ of the smoothing noise")
    certify_n: int = _key(integer(1, MAX_CERTIFY_N), 1000,
                          doc=f"estimation draws per test point (at most {MAX_CERTIFY_N})")
    certify_alpha: float = _key(probability(), 0.001, doc="1 - confidence of the bound")
    certify_radii: tuple[float, ...] = _key(number_list(0), (0.0, 0.1, 0.25, 0.5),
                                            doc="radii at which certified accuracy is reported")


@dataclass(frozen=True)
class RacingSpec:
    """[racing] (optional; absent: every configuration gets study.repeats seeds). Seeds are
    given in rounds and a configuration that cannot be the answer stops (search.analysis.racing);
    study.repeats is the most a configuration gets."""

    first: int = _key(integer(1), 5, doc=f"seeds every configuration gets (>= {MIN_FIRST})")
    each: int = _key(integer(1), 5, doc="seeds added per round")
    alpha: float = _key(probability(), 0.05, doc="chance of stopping the true best, at most")
    test: str = _key(choice("t", "wilcoxon"), "t", doc="paired t-test or Wilcoxon signed-rank")


# The [data] keys every dataset reads; the others depend on the dataset (data.dataset_keys).
# A key given for a dataset that ignores it is an error, so that a typo'd experiment does not
# silently run something else.
_COMMON_DATA_KEYS = frozenset({"dataset", "n_train", "scale", "scale_target"})

SECTIONS: dict[str, type] = {
    "study": StudySection,
    "data": DataSpec,
    "model": ModelSpec,
    "noise": NoiseSpec,
    "robustness": RobustnessSpec,
    "racing": RacingSpec,
}
# Sections a study file may leave out; absent, they are None in StudySpec and absent from
# to_dict(), so the stored spec of a study made before the section existed still compares equal.
OPTIONAL_SECTIONS = frozenset({"robustness", "racing"})
# Keys added to a section after studies were stored: to_dict() leaves them out at their
# default, so an older stored spec (without them) still compares equal.
_OMITTED_AT_DEFAULT = frozenset({"study.objective", "model.builder", "data.loader",
                                 "study.max_replicas"})

# Keys that may change between runs of one study without mixing results.
RESUMABLE_KEYS = frozenset({"study.n_trials", "study.max_replicas"})


@dataclass(frozen=True)
class StudySpec:
    study: StudySection
    data: DataSpec
    model: ModelSpec
    noise: NoiseSpec
    source: Path = field(compare=False)
    robustness: RobustnessSpec | None = None
    racing: RacingSpec | None = None

    @property
    def robustness_kind(self) -> str:
        """The kind of test-time noise: [robustness] kind, else noise.kind."""
        given = self.robustness.kind if self.robustness is not None else None
        return given or self.noise.kind

    @property
    def task(self) -> str:
        """'binary', 'multiclass' or 'regression' as far as the file says ('classification'
        for a csv file until its labels are counted); decided by search.data.task_of."""
        return datasets.task_of(self.data)

    @property
    def metric(self) -> str:
        if self.study.metric is not None:
            return self.study.metric
        return metrics.default_for(self.task)

    @property
    def direction(self) -> str:
        return metrics.METRICS[self.metric].direction

    def configurations(self) -> list[NoiseConfig]:
        """The grid: baseline first, then every placement × σ."""
        allowed = None if self.model.builder else SITE_NAMES  # a builder's sites: any names
        return expand_grid(self.noise.placements, self.noise.std, dict(self.noise.site_std),
                           self.noise.kind, allowed)

    def to_dict(self) -> dict[str, Any]:
        """The effective spec as JSON-able data: stored with the study, compared on resume."""
        out: dict[str, Any] = {}
        for name in SECTIONS:
            section = getattr(self, name)
            if section is None:  # an optional section left out
                continue
            values: dict[str, Any] = {}
            for f in dataclasses.fields(section):
                value = getattr(section, f.name)
                if f"{name}.{f.name}" in _OMITTED_AT_DEFAULT and value == f.default:
                    continue
                if f.name == "site_std":
                    value = {site: list(grid) for site, grid in value}
                elif isinstance(value, tuple):
                    value = list(value)
                values[f.name] = value
            out[name] = values
        return out


def differences(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Keys whose values differ between two ``to_dict()`` results, as 'section.key'."""
    diffs = []
    for section in sorted(set(stored) | set(current)):
        a, b = stored.get(section, {}), current.get(section, {})
        for key in sorted(set(a) | set(b)):
            dotted = f"{section}.{key}"
            was, now = _stored_value(a, section, key), _stored_value(b, section, key)
            if dotted not in RESUMABLE_KEYS and was != now:
                diffs.append(f"{dotted} (stored {was!r}, now {now!r})")
    return diffs


def _stored_value(table: Mapping[str, Any], section: str, key: str) -> Any:
    """A key's value in a stored section; a key left out at its default reads as the default."""
    if key not in table and f"{section}.{key}" in _OMITTED_AT_DEFAULT:
        return next(f.default for f in dataclasses.fields(SECTIONS[section]) if f.name == key)
    return table.get(key)


def _parse_override_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare word such as moons or hidden_pre is meant as a string


def _override_key(item: str) -> list[str]:
    """``--set SECTION.KEY[.SUB]=VALUE`` -> [SECTION, KEY, SUB...]; SpecError if malformed."""
    dotted, sep, _ = item.partition("=")
    parts = dotted.strip().split(".")
    if not sep or len(parts) < 2 or not all(parts):
        raise SpecError(
            f"--set {item!r}: expected SECTION.KEY=VALUE (e.g. model.epochs=500), got {item!r}")
    section, key = parts[0], parts[1]
    if section not in SECTIONS:
        raise SpecError(
            f"--set {item!r}: unknown section {section!r}; allowed: {', '.join(SECTIONS)}")
    allowed = [f.name for f in dataclasses.fields(SECTIONS[section])]
    if key not in allowed:
        raise SpecError(f"--set {item!r}: unknown key '{section}.{key}'; [{section}] allows: "
                        + ", ".join(allowed))
    return parts


def apply_overrides(raw: dict[str, Any], overrides: list[str], source: str) -> dict[str, Any]:
    """Apply ``--set section.key=value`` (value parsed as TOML) to the raw file contents."""
    result = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for item in overrides:
        parts = _override_key(item)
        value = _parse_override_value(item.partition("=")[2].strip())
        target = result.setdefault(parts[0], {})
        if not isinstance(target, dict):
            raise SpecError(f"{source}: [{parts[0]}] must be a table, got {target!r}")
        for part in parts[1:-1]:
            nested = target.setdefault(part, {})
            if not isinstance(nested, dict):
                raise SpecError(f"--set {item!r}: '{parts[0]}.{part}' is not a table")
            target = nested
        target[parts[-1]] = value
    return result


@dataclass(frozen=True)
class _Origin:
    """Where each key's value came from, so that a message names the file or the ``--set``."""

    file: str
    overrides: Sequence[str] = ()

    def of(self, key: str) -> str:
        """The file, or the ``--set`` item(s) that gave ``key`` ('section.key[.sub]')."""
        section_key = key.split(".")[:2]
        items = [item for item in self.overrides
                 if [p.strip() for p in item.partition("=")[0].split(".")][:2] == section_key]
        return ", ".join(f"--set {item!r}" for item in items) if items else self.file

    def error(self, key: str, tail: str) -> SpecError:
        return SpecError(f"{self.of(key)}: '{key}' {tail}")


def _build_section(cls: type, table: Any, section: str, origin: _Origin) -> Any:
    src = origin.file
    if not isinstance(table, dict):
        raise SpecError(f"{src}: [{section}] must be a table, got {table!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise SpecError(
            f"{src}: unknown key '{section}.{unknown[0]}'; [{section}] allows: "
            + ", ".join(fields)
        )
    values = {}
    for name, f in fields.items():
        if name not in table:
            if f.default is dataclasses.MISSING:
                raise SpecError(f"{src}: missing key '{section}.{name}' ({_allowed(f)})")
            continue
        try:
            values[name] = f.metadata["check"](table[name])
        except _Invalid as bad:
            raise origin.error(f"{section}.{name}",
                               f"must be {bad.allowed}; got {table[name]!r}") from None
    return cls(**values)


def _allowed(f: dataclasses.Field[Any]) -> str:
    try:
        f.metadata["check"](object())
    except _Invalid as bad:
        return "must be " + bad.allowed
    return "required"


def from_dict(
    raw: Mapping[str, Any], source: str | Path, study_name: str | None = None,
    overrides: Sequence[str] = (),
) -> StudySpec:
    """Validate raw TOML data completely; raise SpecError with a one-line message.

    ``overrides`` are the ``--set`` items already applied to ``raw``: a message about a
    value one of them gave names it instead of the file.
    """
    origin = _Origin(str(source), tuple(overrides))
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise SpecError(
            f"{origin.file}: unknown section [{unknown[0]}]; allowed: "
            + ", ".join(f"[{s}]" for s in SECTIONS)
        )
    tables = {name: raw.get(name, {}) for name in SECTIONS}
    if study_name is not None:
        tables["study"] = {**tables["study"], "name": study_name}
    for name in ("data", "noise"):
        if name not in raw:
            raise SpecError(f"{origin.file}: missing section [{name}]")
    if isinstance(tables["model"], dict) and tables["model"].get("builder") is not None \
            and isinstance(tables["study"], dict) and "engine" not in tables["study"]:
        tables["study"] = {**tables["study"], "engine": BUILDER_ENGINE}
    built = {name: _build_section(cls, tables[name], name, origin)
             for name, cls in SECTIONS.items()
             if name in raw or name not in OPTIONAL_SECTIONS}
    spec = StudySpec(source=Path(source), **built)
    problem = next(iter(_data_keys_apply(spec.data, tables["data"])
                        or _model_keys_apply(spec.model, tables["model"])
                        or _across_keys(spec)), None)
    if problem is not None:
        raise origin.error(*problem)
    return spec


# --- checks across keys: each returns its problems as (key, message tail), first one wins ---

Problems = list[tuple[str, str]]


def _data_keys_apply(data: DataSpec, given: Mapping[str, Any]) -> Problems:
    """A [data] key the dataset does not read must not be set. A stored spec (``to_dict``)
    holds every key, the unused ones at their defaults, so a default is not "set"."""
    kind = datasets.DATASET_KINDS[data.dataset]
    usable = kind.keys | _COMMON_DATA_KEYS
    if kind.split_given:
        usable -= {"n_train"}  # the file or the loader gives the split
    defaults = {f.name: f.default for f in dataclasses.fields(DataSpec)}
    for key, value in given.items():
        if key not in usable and value != defaults[key]:
            return [(f"data.{key}", f"does not apply to dataset {data.dataset!r}; it takes: "
                                    + ", ".join(sorted(usable)))]
    return []


# A model builder's own choices: these keys shape the built-in MLP only.
_MLP_ONLY_KEYS = ("hidden", "activation")


def _model_keys_apply(model: ModelSpec, given: Mapping[str, Any]) -> Problems:
    """With a builder, keys that shape the built-in MLP must not be set (as _data_keys_apply)."""
    defaults = {f.name: f.default for f in dataclasses.fields(ModelSpec)}
    for key in _MLP_ONLY_KEYS:
        if model.builder is not None and key in given and given[key] != defaults[key]:
            return [(f"model.{key}", "does not apply with 'model.builder' (the builder makes "
                                     "the layers)")]
    return []


def _dataset_names_its_source(spec: StudySpec) -> Problems:
    d = spec.data
    return [(f"data.{key}", f"is required for dataset {d.dataset!r} (a {key} string)")
            for key in datasets.DATASET_KINDS[d.dataset].required if getattr(d, key) is None]


def _rows_remain_to_test(spec: StudySpec) -> Problems:
    d = spec.data  # a file's rows are counted when it is read (search.data)
    known = datasets.DATASET_KINDS[d.dataset].rows(d)
    if known is not None and d.n_train >= known[0]:
        rows, named = known
        return [("data.n_train", f"must be < {named} ({rows}) so that rows remain to test "
                                 f"on; got {d.n_train}")]
    return []


def _dataset_takes_its_values(spec: StudySpec) -> Problems:
    return datasets.DATASET_KINDS[spec.data.dataset].refused(spec.data)


def _metric_fits_task(spec: StudySpec) -> Problems:
    metric = spec.study.metric
    fits = metrics.names_for(spec.task)
    if metric is not None and metric not in fits:
        return [("study.metric", f"must be one of {', '.join(map(repr, fits))} for a "
                                 f"{spec.task} problem; got {metric!r}")]
    return []


def _scale_target_fits_task(spec: StudySpec) -> Problems:
    scale = spec.data.scale_target
    if scale not in (None, "none") and spec.task != "regression":
        return [("data.scale_target", "applies to regression only ('none' otherwise); got "
                                      f"{scale!r} for a {spec.task} problem")]
    return []


def _sites_are_built_in(spec: StudySpec) -> Problems:
    """Without a builder, placements name the built-in MLP's sites (a builder's: its own)."""
    if spec.model.builder is not None:
        return []
    for placement in spec.noise.placements:
        if any(site not in SITE_NAMES for site in placement.split("+")):
            return [("noise.placements", f"must be {PLACEMENTS_ALLOWED}; got "
                                         f"{list(spec.noise.placements)}")]
    for site, _ in spec.noise.site_std:
        if site not in SITE_NAMES:
            return [("noise.site_std", f"must be {SITE_STD_ALLOWED}; got site {site!r}")]
    return []


def _engine_trains_the_model(spec: StudySpec) -> Problems:
    """The engine trains this kind of model (its limits' MODELS: "mlp", "builder")."""
    model = "mlp" if spec.model.builder is None else "builder"
    if model in engine.limits(spec.study.engine).MODELS:
        return []
    able = [name for name in engine.NAMES if model in engine.limits(name).MODELS]
    if model == "builder":
        return [("study.engine", f"= {spec.study.engine!r} cannot train 'model.builder' (a "
                 f"Keras model of your own); use {BUILDER_ENGINE!r}, the default with a "
                 f"builder, or {' or '.join(repr(a) for a in able if a != BUILDER_ENGINE)}")]
    return [("study.engine", f"= {spec.study.engine!r} trains a model of your own "
             f"('model.builder') only; use {' or '.join(map(repr, able))} for the built-in MLP")]


def _builder_asks_for_sites(spec: StudySpec) -> Problems:
    """Build the builder's model once (the only check that imports Keras: builder studies
    only) and check that every site the file names is one it asks for."""
    if spec.model.builder is None:
        return []
    from search import builder

    return builder.site_problems(spec, builder.declared_sites(spec))


def _engine_trains_every_site(spec: StudySpec) -> Problems:
    """The engine the study names declares its sites (without importing TensorFlow)."""
    if spec.model.builder is not None:
        return []  # the builder's sites, checked by _builder_asks_for_sites
    declared = engine.limits(spec.study.engine)
    for placement in spec.noise.placements:
        other = [site for site in placement.split("+") if site not in declared.SITES]
        if other:
            able = [name for name in engine.NAMES if other[0] in engine.limits(name).SITES]
            return [("study.engine", f"= {declared.NAME!r} supports noise on "
                     f"{', '.join(declared.SITES)} only (use engine "
                     f"{' or '.join(map(repr, able))} for {other[0]}); got placement "
                     f"{placement!r} in 'noise.placements'")]
    return []


def _engine_limits(spec: StudySpec) -> Problems:
    return engine.limits(spec.study.engine).check(spec)


def _placements_distinct(spec: StudySpec) -> Problems:
    placements = spec.noise.placements
    if len(set(placements)) != len(placements):
        return [("noise.placements", f"lists a placement twice; got {list(placements)}")]
    return []


def _grid_not_empty(spec: StudySpec) -> Problems:
    if not spec.configurations()[1:]:
        return [("noise.placements", "and 'noise.std' must give at least one configuration "
                                     "besides the baseline; the noise grid is empty")]
    return []


def _objective_has_robustness(spec: StudySpec) -> Problems:
    objective = spec.study.objective
    if objective != "clean" and spec.robustness is None:
        return [("study.objective", f"= {objective!r} needs a [robustness] section (the test-time "
                                    "σ grid the robust score is measured on)")]
    return []


def _certify_is_classification(spec: StudySpec) -> Problems:
    r = spec.robustness
    if r is not None and r.certify_std is not None and spec.task == "regression":
        return [("robustness.certify_std", "applies to classification only (randomized "
                                           f"smoothing certifies a class); got {r.certify_std!r} "
                                           "for a regression problem")]
    return []


def _racing_fits_study(spec: StudySpec) -> Problems:
    racing = spec.racing
    if racing is None:
        return []
    if spec.study.sampler != "grid":
        return [("study.sampler", f"must be 'grid' with [racing] (a race runs the grid's "
                                  f"configurations side by side); got {spec.study.sampler!r}")]
    if racing.first < MIN_FIRST:
        return [("racing.first", f"must be >= {MIN_FIRST} (on fewer seeds no exact paired "
                                 f"test can find a configuration worse: its smallest p is "
                                 f"2/2^n >= {2.0 ** (2 - MIN_FIRST):g}); got {racing.first}")]
    if racing.first >= spec.study.repeats:
        return [("racing.first", f"must be < study.repeats ({spec.study.repeats}, the most "
                                 f"seeds a configuration gets; with as many from the start "
                                 f"nothing is left to race); got {racing.first}")]
    if spec.study.objective != "clean":
        return [("study.objective", f"must be 'clean' with [racing] (a race decides on the "
                                    f"clean test metric); got {spec.study.objective!r}")]
    return []


_ACROSS_KEYS: tuple[Callable[[StudySpec], Problems], ...] = (
    _dataset_names_its_source, _rows_remain_to_test, _dataset_takes_its_values,
    _metric_fits_task, _scale_target_fits_task, _sites_are_built_in, _engine_trains_the_model,
    _engine_trains_every_site, _engine_limits, _placements_distinct, _grid_not_empty,
    _objective_has_robustness, _certify_is_classification, _racing_fits_study,
    _builder_asks_for_sites,
)


def _across_keys(spec: StudySpec) -> Iterable[tuple[str, str]]:
    for check in _ACROSS_KEYS:
        yield from check(spec)


def load(path: str | Path, overrides: list[str] | None = None,
         study_name: str | None = None) -> StudySpec:
    """Read, override and validate a study file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{p}: no such study file") from None
    except IsADirectoryError:
        raise SpecError(f"{p}: is a directory, expected a study file (.toml)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{p}: cannot be read ({exc})") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{p}: not valid TOML: {exc}") from None
    items = list(overrides or [])
    return from_dict(apply_overrides(raw, items, str(p)), p, study_name, items)
