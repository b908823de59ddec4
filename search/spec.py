"""Study file (TOML) -> validated, frozen dataclasses. All validation of user input lives here.

Every section is a frozen dataclass whose fields carry their own check in
``metadata["check"]``; loading iterates the fields, so adding a key means adding
one field. Every message names the file, the key, what is allowed and what was
given, on one line.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search import engine
from search.errors import NoiseSearchError
from search.noise import KINDS, SITE_NAMES, NoiseConfig, expand_grid, parse_placement


class SpecError(NoiseSearchError):
    """A study file or --set override that cannot be used; the message says why."""


class _Invalid(Exception):
    """Raised by a check: carries what is allowed, for the message."""

    def __init__(self, allowed: str) -> None:
        super().__init__(allowed)
        self.allowed = allowed


Check = Callable[[Any], Any]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def integer(minimum: int | None = None) -> Check:
    allowed = "an integer" + (f" >= {minimum}" if minimum is not None else "")

    def check(v: Any) -> int:
        if not _is_int(v) or (minimum is not None and v < minimum):
            raise _Invalid(allowed)
        return int(v)

    return check


def number(minimum: float | None = None, exclusive: bool = False) -> Check:
    op = ">" if exclusive else ">="
    allowed = "a number" + (f" {op} {minimum:g}" if minimum is not None else "")

    def check(v: Any) -> float:
        if not _is_number(v):
            raise _Invalid(allowed)
        if minimum is not None and (v <= minimum if exclusive else v < minimum):
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
    allowed = "a non-empty list of numbers >= 0 (the σ grid)"

    def check(v: Any) -> tuple[float, ...]:
        if _is_number(v):
            v = [v]
        if not isinstance(v, list) or not v or not all(_is_number(x) and x >= 0 for x in v):
            raise _Invalid(allowed)
        return tuple(float(x) for x in v)

    return check


def placement_list() -> Check:
    allowed = (
        "a non-empty list of placements, each a site or sites joined by '+' ("
        + ", ".join(SITE_NAMES)
        + ")"
    )

    def check(v: Any) -> tuple[str, ...]:
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v):
            raise _Invalid(allowed)
        out = []
        for text in v:
            try:
                sites = parse_placement(text)
            except ValueError:
                raise _Invalid(allowed) from None
            if not sites:
                raise _Invalid(allowed + "; the baseline 'none' is always included, "
                               "do not list it")
            out.append("+".join(s.value for s in sites))
        return tuple(out)

    return check


def site_grid_table() -> Check:
    allowed = "a table site -> list of σ, with sites among " + ", ".join(SITE_NAMES)

    def check(v: Any) -> tuple[tuple[str, tuple[float, ...]], ...]:
        if not isinstance(v, dict):
            raise _Invalid(allowed)
        grid = std_list()
        out = []
        for site, values in v.items():
            if site not in SITE_NAMES:
                raise _Invalid(allowed)
            try:
                out.append((site, grid(values)))
            except _Invalid:
                raise _Invalid(allowed + "; each a non-empty list of numbers >= 0") from None
        return tuple(out)

    return check


def _key(check: Check, default: Any = dataclasses.MISSING, doc: str = "") -> Any:
    if default is dataclasses.MISSING:
        return field(metadata={"check": check, "doc": doc})
    return field(default=default, metadata={"check": check, "doc": doc})


DATASETS = ("circles", "moons", "blobs", "classification", "regression", "friedman1", "csv")
CLASSIFICATION_METRICS = ("accuracy",)
REGRESSION_METRICS = ("rmse", "mse", "r2")
LOWER_IS_BETTER = frozenset({"rmse", "mse"})


@dataclass(frozen=True)
class StudySection:
    name: str = _key(string())
    seed: int = _key(integer(0), 1)
    repeats: int = _key(integer(1), 30)
    sampler: str = _key(choice("grid", "tpe", "random"), "grid")
    n_trials: int = _key(integer(1), 50)
    engine: str = _key(choice(*engine.NAMES), "fast")
    record_every: int = _key(integer(1), 10)
    metric: str | None = _key(optional(choice(*CLASSIFICATION_METRICS, *REGRESSION_METRICS)), None)


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
    # csv only
    path: str | None = _key(optional(string()), None)
    target: str | None = _key(optional(string()), None)
    task: str | None = _key(optional(choice("classification", "regression")), None)
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
    momentum: float = _key(number(0), 0.0)


@dataclass(frozen=True)
class NoiseSpec:
    placements: tuple[str, ...] = _key(placement_list())
    std: tuple[float, ...] = _key(std_list())
    kind: str = _key(choice(*KINDS), "additive")
    site_std: tuple[tuple[str, tuple[float, ...]], ...] = _key(site_grid_table(), ())
    gradient_gamma: float = _key(number(0), 0.55)


# Which [data] keys each dataset reads; a key given for a dataset that ignores it is an error,
# so that a typo'd experiment does not silently run something else.
DATASET_KEYS: dict[str, frozenset[str]] = {
    "circles": frozenset({"n_samples", "noise", "random_state", "factor"}),
    "moons": frozenset({"n_samples", "noise", "random_state"}),
    "blobs": frozenset({"n_samples", "random_state", "n_features", "centers", "cluster_std"}),
    "classification": frozenset(
        {"n_samples", "random_state", "n_features", "n_informative", "n_classes"}
    ),
    "regression": frozenset({"n_samples", "noise", "random_state", "n_features", "n_informative"}),
    "friedman1": frozenset({"n_samples", "noise", "random_state", "n_features"}),
    "csv": frozenset({"path", "target", "task"}),
}
_COMMON_DATA_KEYS = frozenset({"dataset", "n_train", "scale", "scale_target"})

SECTIONS: dict[str, type] = {
    "study": StudySection,
    "data": DataSpec,
    "model": ModelSpec,
    "noise": NoiseSpec,
}

# Keys that may change between runs of one study without mixing results.
RESUMABLE_KEYS = frozenset({"study.n_trials"})


@dataclass(frozen=True)
class StudySpec:
    study: StudySection
    data: DataSpec
    model: ModelSpec
    noise: NoiseSpec
    source: Path = field(compare=False)

    @property
    def task(self) -> str:
        """'binary', 'multiclass' or 'regression' as far as the file says; csv decides at load."""
        d = self.data
        if d.dataset in ("regression", "friedman1"):
            return "regression"
        if d.dataset == "csv":
            return d.task or "classification"
        if d.dataset == "blobs":
            return "binary" if (d.centers or 2) == 2 else "multiclass"
        if d.dataset == "classification":
            return "binary" if (d.n_classes or 2) == 2 else "multiclass"
        return "binary"

    @property
    def metric(self) -> str:
        if self.study.metric is not None:
            return self.study.metric
        return "rmse" if self.task == "regression" else "accuracy"

    @property
    def direction(self) -> str:
        return "minimize" if self.metric in LOWER_IS_BETTER else "maximize"

    def configurations(self) -> list[NoiseConfig]:
        """The grid: baseline first, then every placement × σ."""
        return expand_grid(
            self.noise.placements, self.noise.std, dict(self.noise.site_std), self.noise.kind
        )

    def to_dict(self) -> dict[str, Any]:
        """The effective spec as JSON-able data: stored with the study, compared on resume."""
        out: dict[str, Any] = {}
        for name in SECTIONS:
            section = getattr(self, name)
            values: dict[str, Any] = {}
            for f in dataclasses.fields(section):
                value = getattr(section, f.name)
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
            if dotted not in RESUMABLE_KEYS and a.get(key) != b.get(key):
                diffs.append(f"{dotted} (stored {a.get(key)!r}, now {b.get(key)!r})")
    return diffs


def _parse_override_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare word such as moons or hidden_pre is meant as a string


def apply_overrides(raw: dict[str, Any], overrides: list[str], source: str) -> dict[str, Any]:
    """Apply ``--set section.key=value`` (value parsed as TOML) to the raw file contents."""
    result = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for item in overrides:
        dotted, sep, text = item.partition("=")
        dotted = dotted.strip()
        parts = dotted.split(".")
        if not sep or len(parts) < 2 or not all(parts):
            raise SpecError(
                f"--set {item!r}: expected SECTION.KEY=VALUE (e.g. model.epochs=500), got {item!r}"
            )
        section, key = parts[0], parts[1]
        if section not in SECTIONS:
            raise SpecError(
                f"--set {item!r}: unknown section {section!r}; allowed: {', '.join(SECTIONS)}"
            )
        allowed = [f.name for f in dataclasses.fields(SECTIONS[section])]
        if key not in allowed:
            raise SpecError(
                f"--set {item!r}: unknown key '{section}.{key}'; [{section}] allows: "
                + ", ".join(allowed)
            )
        value = _parse_override_value(text.strip())
        target = result.setdefault(section, {})
        if not isinstance(target, dict):
            raise SpecError(f"{source}: [{section}] must be a table, got {target!r}")
        for part in parts[1:-1]:
            nested = target.setdefault(part, {})
            if not isinstance(nested, dict):
                raise SpecError(f"--set {item!r}: '{section}.{part}' is not a table")
            target = nested
        target[parts[-1]] = value
    return result


def _build_section(cls: type, table: Any, section: str, source: str) -> Any:
    if not isinstance(table, dict):
        raise SpecError(f"{source}: [{section}] must be a table, got {table!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise SpecError(
            f"{source}: unknown key '{section}.{unknown[0]}'; [{section}] allows: "
            + ", ".join(fields)
        )
    values = {}
    for name, f in fields.items():
        if name not in table:
            if f.default is dataclasses.MISSING:
                raise SpecError(f"{source}: missing key '{section}.{name}' ({_allowed(f)})")
            continue
        try:
            values[name] = f.metadata["check"](table[name])
        except _Invalid as bad:
            raise SpecError(
                f"{source}: '{section}.{name}' must be {bad.allowed}; got {table[name]!r}"
            ) from None
    return cls(**values)


def _allowed(f: dataclasses.Field[Any]) -> str:
    try:
        f.metadata["check"](object())
    except _Invalid as bad:
        return "must be " + bad.allowed
    return "required"


def from_dict(
    raw: Mapping[str, Any], source: str | Path, study_name: str | None = None
) -> StudySpec:
    """Validate raw TOML data completely; raise SpecError with a one-line message."""
    src = str(source)
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise SpecError(
            f"{src}: unknown section [{unknown[0]}]; allowed: "
            + ", ".join(f"[{s}]" for s in SECTIONS)
        )
    tables = {name: raw.get(name, {}) for name in SECTIONS}
    if study_name is not None:
        tables["study"] = {**tables["study"], "name": study_name}
    for name in ("data", "noise"):
        if name not in raw:
            raise SpecError(f"{src}: missing section [{name}]")
    built = {name: _build_section(cls, tables[name], name, src) for name, cls in SECTIONS.items()}
    spec = StudySpec(source=Path(source), **built)
    _check_across_keys(spec, tables["data"], src)
    return spec


def _check_across_keys(spec: StudySpec, data_table: Mapping[str, Any], src: str) -> None:
    data = spec.data
    usable = DATASET_KEYS[data.dataset] | _COMMON_DATA_KEYS
    for key, value in data_table.items():
        if key not in usable and value is not None:  # None: a stored spec's unused key
            raise SpecError(
                f"{src}: 'data.{key}' does not apply to dataset {data.dataset!r}; it takes: "
                + ", ".join(sorted(usable))
            )
    if data.dataset == "csv":
        for key in ("path", "target"):
            if getattr(data, key) is None:
                raise SpecError(f"{src}: dataset 'csv' needs 'data.{key}' (a {key} string)")
    elif data.n_train >= data.n_samples:
        raise SpecError(
            f"{src}: 'data.n_train' must be < data.n_samples ({data.n_samples}) so that rows "
            f"remain to test on; got {data.n_train}"
        )
    if data.dataset == "friedman1" and (data.n_features or 10) < 5:
        raise SpecError(
            f"{src}: 'data.n_features' must be >= 5 for friedman1; got {data.n_features}")
    if data.dataset == "classification":
        informative = data.n_informative or 2
        features = data.n_features or 20
        classes = data.n_classes or 2
        if informative > features:
            raise SpecError(
                f"{src}: 'data.n_informative' must be <= data.n_features ({features}); "
                f"got {informative}"
            )
        if classes * 2 > 2**informative:
            raise SpecError(
                f"{src}: 'data.n_classes' must satisfy n_classes * 2 <= 2 ** n_informative "
                f"(n_informative = {informative}); got {classes}"
            )
    metric = spec.study.metric
    if metric is not None:
        fits = REGRESSION_METRICS if spec.task == "regression" else CLASSIFICATION_METRICS
        if metric not in fits:
            raise SpecError(
                f"{src}: 'study.metric' must be one of {', '.join(map(repr, fits))} for a "
                f"{spec.task} problem; got {metric!r}"
            )
    if data.scale_target not in (None, "none") and spec.task != "regression":
        raise SpecError(
            f"{src}: 'data.scale_target' applies to regression only ('none' otherwise); got "
            f"{data.scale_target!r} for a {spec.task} problem")
    _check_engine(spec, src)
    placements = spec.noise.placements
    if len(set(placements)) != len(placements):
        raise SpecError(
            f"{src}: 'noise.placements' lists a placement twice; got {list(placements)}")
    if not spec.configurations()[1:]:
        raise SpecError(f"{src}: the noise grid is empty; 'noise.placements' and 'noise.std' "
                        "must give at least one configuration besides the baseline")


def _check_engine(spec: StudySpec, src: str) -> None:
    """Ask the engine the study names (its light declarations: no TensorFlow import)."""
    declared = engine.limits(spec.study.engine)
    for placement in spec.noise.placements:
        other = [site for site in placement.split("+") if site not in declared.SITES]
        if other:
            able = [name for name in engine.NAMES if other[0] in engine.limits(name).SITES]
            raise SpecError(
                f"{src}: 'study.engine' = {declared.NAME!r} supports noise on "
                f"{', '.join(declared.SITES)} only (use engine {' or '.join(map(repr, able))} "
                f"for {other[0]}); got placement {placement!r} in 'noise.placements'")
    for key, tail in declared.check(spec):
        raise SpecError(f"{src}: '{key}' {tail}")


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
    raw = apply_overrides(raw, list(overrides or []), str(p))
    return from_dict(raw, p, study_name=study_name)
