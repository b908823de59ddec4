"""The study file: what loads, and a one-line error for everything that must not."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import tomllib
from pathlib import Path

import pytest

from search import data as data_module
from search import spec
from search.cli import main
from search.noise import Site
from tests.conftest import TINY_STUDY

REPO = Path(__file__).resolve().parents[1]


def test_tutorial_study_is_the_tutorial():
    s = spec.load(REPO / "studies" / "circles.toml")
    assert (s.data.dataset, s.data.n_samples, s.data.noise, s.data.random_state) == (
        "circles", 100, 0.1, 1)
    assert s.data.n_train == 30
    assert s.model.hidden == (500,) and s.model.activation == "relu"
    assert (s.model.epochs, s.model.batch_size, s.model.optimizer) == (4000, 32, "adam")
    assert s.study.repeats == 30
    assert set(s.noise.placements) == {"input", "hidden_pre", "hidden_post", "input+hidden_pre"}
    assert len(s.noise.std) >= 8 and min(s.noise.std) == 0.005 and max(s.noise.std) == 0.5
    configs = s.configurations()
    assert configs[0].is_baseline
    assert len(configs) == 1 + 4 * len(s.noise.std)
    assert s.direction == "maximize" and s.metric == "accuracy"


def test_overrides_are_parsed_as_toml(write_study):
    s = spec.load(write_study(), ["model.epochs=7", "model.hidden=[4, 4]",
                                  "data.dataset=moons", "noise.site_std.input=[0.5]"])
    assert s.model.epochs == 7
    assert s.model.hidden == (4, 4)
    assert s.data.dataset == "moons"
    assert dict(s.noise.site_std) == {"input": (0.5,)}
    keys = [c.key for c in s.configurations()]
    assert "input:0.5" in keys and "input:0.1" not in keys and "hidden_pre:0.3" in keys


def test_spec_round_trips_through_its_stored_form(write_study):
    s = spec.load(write_study())
    again = spec.from_dict(s.to_dict(), "stored")
    assert again == s
    assert spec.differences(s.to_dict(), again.to_dict()) == []


def test_differences_ignore_n_trials_only(write_study):
    a = spec.load(write_study()).to_dict()
    b = spec.load(write_study(), ["study.n_trials=99", "model.epochs=21"]).to_dict()
    diffs = spec.differences(a, b)
    assert len(diffs) == 1 and diffs[0].startswith("model.epochs")


def _replace(old: str, new: str) -> str:
    assert old in TINY_STUDY
    return TINY_STUDY.replace(old, new)


BAD_FILES = {
    "not_toml": ("[study\nname=", "not valid TOML"),
    "unknown_key": (_replace("epochs = 20", "epochs = 20\nepoch = 3"), "'model.epoch'"),
    "unknown_section": (TINY_STUDY + "\n[extra]\na = 1\n", "[extra]"),
    "wrong_type": (_replace("epochs = 20", 'epochs = "many"'),
                   "'model.epochs' must be an integer"),
    "bool_is_not_int": (_replace("epochs = 20", "epochs = true"), "'model.epochs'"),
    "unknown_dataset": (_replace('dataset = "circles"', 'dataset = "mnist"'),
                        "'data.dataset' must be one of 'circles'"),
    "unknown_placement": (_replace('"hidden_pre"]', '"hiden_pre"]'), "'noise.placements'"),
    "negative_std": (_replace("std = [0.1, 0.3]", "std = [0.1, -0.3]"),
                     "'noise.std' must be a non-empty list of finite numbers >= 0"),
    "zero_repeats": (_replace("repeats = 3", "repeats = 0"),
                     "'study.repeats' must be an integer >= 1; got 0"),
    "n_train_too_big": (_replace("n_train = 20", "n_train = 60"),
                        "'data.n_train' must be < data.n_samples (60)"),
    "empty_std": (_replace("std = [0.1, 0.3]", "std = []"), "'noise.std' must be a non-empty"),
    "empty_placements": (_replace('placements = ["input", "hidden_pre"]', "placements = []"),
                         "'noise.placements' must be a non-empty list"),
    "zero_hidden": (_replace("hidden = [8]", "hidden = [0]"),
                    "'model.hidden' must be a non-empty list of integers >= 1"),
    "negative_lr": (_replace("epochs = 20", "epochs = 20\nlearning_rate = -0.1"),
                    "'model.learning_rate' must be a finite number > 0"),
    "key_for_other_dataset": (_replace("noise = 0.1", "noise = 0.1\ncenters = 3"),
                              "'data.centers' does not apply to dataset 'circles'"),
    "missing_noise": (TINY_STUDY.split("[noise]")[0], "missing section [noise]"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_study_file_is_one_line_naming_file_and_key(case, write_study, capsys):
    text, expected = BAD_FILES[case]
    path = write_study(text)
    with pytest.raises(spec.SpecError) as err:
        spec.load(path)
    message = str(err.value)
    assert str(path) in message
    assert expected in message
    assert "\n" not in message
    # The same through the CLI: exit code 2, one line on stderr, no traceback, no storage touched.
    code = main(["run", str(path)])
    out = capsys.readouterr()
    assert code == 2
    assert out.err.strip().count("\n") == 0 and "Traceback" not in out.err
    assert expected in out.err
    assert not Path("noise-search.db").exists()


@pytest.mark.parametrize("override, expected", [
    ("model.epoch=5", "unknown key 'model.epoch'; [model] allows: hidden"),
    ("modle.epochs=5", "unknown section 'modle'"),
    ("epochs=5", "expected SECTION.KEY=VALUE"),
    ("model.epochs", "expected SECTION.KEY=VALUE"),
    ("model.epochs=-1", "'model.epochs' must be an integer >= 1; got -1"),
])
def test_bad_override(override, expected, write_study, capsys):
    code = main(["run", str(write_study()), "--set", override])
    err = capsys.readouterr().err
    assert code == 2 and expected in err and "Traceback" not in err


def test_missing_file(capsys):
    assert main(["run", "nowhere.toml"]) == 2
    err = capsys.readouterr().err
    assert "nowhere.toml: no such study file" in err and "Traceback" not in err


def test_per_site_grids_make_products():
    from search.noise import expand_grid

    configs = expand_grid(["input+hidden_pre", "weights"], [0.1, 0.2],
                          {"input": [0.01, 0.02]}, "additive")
    keys = [c.key for c in configs]
    assert keys[0] == "none"
    combined = [c for c in configs if c.sites == (Site.INPUT, Site.HIDDEN_PRE)]
    assert len(combined) == 4  # input grid (2) × shared std grid for hidden_pre (2)
    assert {c.sigma(Site.INPUT) for c in combined} == {0.01, 0.02}
    assert [c.key for c in configs if c.sites == (Site.WEIGHTS,)] == ["weights:0.1", "weights:0.2"]


# --- generated malformed inputs: every numeric key of every section, in the file and --set ---

def _toml_value(value) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return json.dumps(value)


def _toml(raw: dict) -> str:
    return "\n".join(f"[{section}]\n" + "".join(f"{k} = {_toml_value(v)}\n"
                                                for k, v in table.items())
                     for section, table in raw.items())


def _shape(f: dataclasses.Field) -> str:
    t = str(f.type)
    return "table" if t.startswith("tuple[tuple") else "list" if t.startswith("tuple[") \
        else "scalar"


NUMERIC_KEYS = [(section, f.name) for section, cls in spec.SECTIONS.items()
                for f in dataclasses.fields(cls)
                if ("int" in str(f.type) or "float" in str(f.type))]


def _field(section: str, key: str) -> dataclasses.Field:
    return next(f for f in dataclasses.fields(spec.SECTIONS[section]) if f.name == key)


def _base_for(section: str, key: str) -> dict:
    """TINY_STUDY, with a dataset that reads ``key`` when it is a dataset-specific [data] key."""
    raw = tomllib.loads(TINY_STUDY)
    raw["robustness"] = {"input_std": [0.0, 0.1]}
    raw.setdefault(section, {})  # an optional section ([racing]) that TINY_STUDY leaves out
    if section == "data" and key not in raw["data"]:
        dataset = next(name for name in spec.DATASETS if key in data_module.dataset_keys(name))
        raw["data"] = {"dataset": dataset, "n_samples": 60, "n_train": 20}
    return raw


def _wrap(section: str, key: str, value):
    shape = _shape(_field(section, key))
    return {"input": [value]} if shape == "table" else [1, value] if shape == "list" else value


def _minimum(section: str, key: str):
    """The bound the key's own message states ('>= 1', '> 0'), as (minimum, exclusive)."""
    if (section, key) == ("noise", "site_std"):
        key = "std"  # each site's grid is a σ grid like noise.std
    allowed = spec._allowed(_field(section, key))
    match = re.search(r"(>=|>) (-?[0-9.e+-]+)", allowed)
    assert match, allowed
    number = float(match.group(2))
    return (int(number) if number.is_integer() else number), match.group(1) == ">"


def test_every_numeric_key_is_generated():
    # The generator below must see every number of a study file; a new numeric key is covered
    # by adding its field, and this list says which ones exist today.
    assert {f"{s}.{k}" for s, k in NUMERIC_KEYS} == {
        "study.seed", "study.repeats", "study.n_trials", "study.record_every",
        "study.max_replicas",
        "data.n_samples", "data.noise", "data.random_state", "data.n_train", "data.n_features",
        "data.n_informative", "data.n_classes", "data.centers", "data.cluster_std",
        "data.factor", "model.hidden", "model.epochs", "model.batch_size",
        "model.learning_rate", "model.momentum", "noise.std", "noise.site_std",
        "noise.gradient_gamma", "robustness.input_std", "robustness.draws",
        "robustness.certify_std", "robustness.certify_n", "robustness.certify_alpha",
        "robustness.certify_radii", "racing.first", "racing.each",
        "racing.alpha"}


def _maximum(section: str, key: str):
    match = re.search(r"<= (-?[0-9.e+-]+)", spec._allowed(_field(section, key)))
    return None if match is None else float(match.group(1))


def _bad_values(section: str, key: str) -> list:
    minimum, exclusive = _minimum(section, key)
    below = minimum if exclusive else minimum - 1
    maximum = _maximum(section, key)
    return [math.inf, -math.inf, math.nan, below, *([] if maximum is None else [maximum + 0.5])]


BAD_NUMBERS = [(s, k, v) for s, k in NUMERIC_KEYS for v in _bad_values(s, k)]


@pytest.mark.parametrize("route", ["file", "set"])
@pytest.mark.parametrize("section, key, bad", BAD_NUMBERS,
                         ids=[f"{s}.{k}={v}" for s, k, v in BAD_NUMBERS])
def test_non_finite_or_out_of_range_number_is_one_line_before_storage(
        section, key, bad, route, write_study, sqlite_url, tmp_path, capsys):
    raw = _base_for(section, key)
    value = _wrap(section, key, bad)
    if route == "file":
        raw[section][key] = value
        path = write_study(_toml(raw))
        sets, where = [], str(path)
    else:
        path = write_study(_toml(raw))
        dotted = f"{section}.{key}" + (".input" if isinstance(value, dict) else "")
        item = f"{dotted}={_toml_value(value['input'] if isinstance(value, dict) else value)}"
        sets, where = [item], f"--set {item!r}"
    with pytest.raises(spec._Invalid) as invalid:
        _field(section, key).metadata["check"](value)
    allowed = invalid.value.allowed
    # Integers are refused as integers; every other number by the one finite-number rule.
    assert ("integer" if "int" in str(_field(section, key).type) else "finite number") \
        in allowed
    expected = f"{where}: '{section}.{key}' must be {allowed}; got {value!r}"
    with pytest.raises(spec.SpecError) as err:
        spec.load(path, sets)
    assert str(err.value) == expected
    args = ["run", str(path), "--storage", sqlite_url, "--quiet"]
    assert main([*args, *(a for item in sets for a in ("--set", item))]) == 2
    assert capsys.readouterr().err.strip() == f"noise-search: error: {expected}"
    assert not (tmp_path / "studies.db").exists()


def test_a_set_error_names_every_set_item_that_gave_the_key(write_study):
    items = ["noise.site_std.input=[0.1]", "noise.site_std.hidden_pre=[nan]"]
    with pytest.raises(spec.SpecError) as err:
        spec.load(write_study(), ["model.epochs=5", *items])
    assert str(err.value).startswith(
        "--set 'noise.site_std.input=[0.1]', --set 'noise.site_std.hidden_pre=[nan]': "
        "'noise.site_std' must be a table site -> list of σ")


def test_an_error_in_the_file_names_the_file_even_with_unrelated_set_items(write_study):
    path = write_study(TINY_STUDY.replace("epochs = 20", "epochs = 0"))
    with pytest.raises(spec.SpecError) as err:
        spec.load(path, ["model.batch_size=4"])
    assert str(err.value) == f"{path}: 'model.epochs' must be an integer >= 1; got 0"


def test_the_stored_form_is_unchanged(write_study):
    """Stored studies resume only if ``to_dict`` keeps its keys and values."""
    assert spec.load(write_study()).to_dict() == {
        "study": {"name": "tiny", "seed": 3, "repeats": 3, "sampler": "grid", "n_trials": 50,
                  "engine": "fast", "record_every": 5, "metric": None},
        "data": {"dataset": "circles", "n_samples": 60, "noise": 0.1, "random_state": 1,
                 "n_train": 20, "scale": "none", "n_features": None, "n_informative": None,
                 "n_classes": None, "centers": None, "cluster_std": None, "factor": None,
                 "path": None, "target": None, "task": None, "scale_target": None},
        "model": {"hidden": [8], "activation": "relu", "epochs": 20, "batch_size": 32,
                  "optimizer": "adam", "learning_rate": None, "momentum": 0.0},
        "noise": {"placements": ["input", "hidden_pre"], "std": [0.1, 0.3], "kind": "additive",
                  "site_std": {}, "gradient_gamma": 0.55}}


@pytest.mark.parametrize("dataset", spec.DATASETS)
def test_every_dataset_round_trips_through_its_stored_form(dataset, write_study):
    raw = tomllib.loads(TINY_STUDY)
    own = {"csv": {"path": "t.csv", "target": "y", "n_train": 20}, "npz": {"path": "a.npz"},
           "python": {"loader": "load.py:load"}}  # npz and python give their own split
    raw["data"] = {"dataset": dataset, **own.get(dataset, {"n_train": 20})}
    s = spec.load(write_study(_toml(raw)))
    assert spec.from_dict(s.to_dict(), "stored") == s
    # A key the dataset ignores is still refused when it is set to something else.
    other = "factor" if dataset != "circles" else "centers"
    with pytest.raises(spec.SpecError, match=f"'data.{other}' does not apply to dataset"):
        spec.from_dict({**s.to_dict(), "data": {**s.to_dict()["data"], other: 3}}, "stored")


ROBUST_STUDY = TINY_STUDY + """
[robustness]
input_std = [0.2, 0.0, 0.1]
"""


def test_robustness_section_is_optional_and_absent_from_the_stored_form(write_study):
    s = spec.load(write_study())
    assert s.robustness is None and s.study.objective == "clean"
    assert "robustness" not in s.to_dict() and "objective" not in s.to_dict()["study"]


def test_robustness_section_loads_sorted_with_defaults_and_round_trips(write_study):
    s = spec.load(write_study(ROBUST_STUDY))
    r = s.robustness
    assert r.input_std == (0.0, 0.1, 0.2) and r.draws == 20 and r.certify_std is None
    assert s.robustness_kind == "additive"
    stored = s.to_dict()
    assert stored["robustness"]["input_std"] == [0.0, 0.1, 0.2]
    assert spec.from_dict(stored, "stored") == s
    # A study stored without the section is a different study from one with it.
    plain = spec.load(write_study()).to_dict()
    assert any(d.startswith("robustness.input_std") for d in spec.differences(plain, stored))


def test_robustness_keys_work_with_set(write_study):
    s = spec.load(write_study(), ["robustness.input_std=[0.0, 0.3]", "robustness.draws=5",
                                  "robustness.kind=multiplicative", "study.objective=both"])
    assert s.robustness.input_std == (0.0, 0.3) and s.robustness.draws == 5
    assert s.robustness_kind == "multiplicative" and s.study.objective == "both"
    assert s.to_dict()["study"]["objective"] == "both"


@pytest.mark.parametrize("text, sets, message", [
    (TINY_STUDY, ["study.objective=robust"],
     "--set 'study.objective=robust': 'study.objective' = 'robust' needs a [robustness] "
     "section (the test-time σ grid the robust score is measured on)"),
    (TINY_STUDY, ["study.objective=best"],
     "--set 'study.objective=best': 'study.objective' must be one of 'clean', 'robust', "
     "'both'; got 'best'"),
    (ROBUST_STUDY, ["robustness.input_std=[]"],
     "--set 'robustness.input_std=[]': 'robustness.input_std' must be a non-empty list of "
     "finite numbers >= 0 (the σ grid); got []"),
    (ROBUST_STUDY, ["robustness.draws=0"],
     "--set 'robustness.draws=0': 'robustness.draws' must be an integer >= 1 and <= 10000; "
     "got 0"),
    (ROBUST_STUDY, ["robustness.kind=uniform"],
     "--set 'robustness.kind=uniform': 'robustness.kind' must be one of 'additive', "
     "'multiplicative'; got 'uniform'"),
    (ROBUST_STUDY, ["robustness.certify_alpha=1"],
     "--set 'robustness.certify_alpha=1': 'robustness.certify_alpha' must be a finite number "
     "> 0 and < 1; got 1"),
    (ROBUST_STUDY.replace('"circles"', '"friedman1"'), ["robustness.certify_std=0.25"],
     "--set 'robustness.certify_std=0.25': 'robustness.certify_std' applies to classification "
     "only (randomized smoothing certifies a class); got 0.25 for a regression problem"),
])
def test_bad_robustness_key_is_one_line(text, sets, message, write_study):
    with pytest.raises(spec.SpecError) as err:
        spec.load(write_study(text), sets)
    assert str(err.value) == message


@pytest.mark.parametrize("key, bound", [("draws", 10_000), ("certify_n", 1_000_000)])
def test_draws_and_certify_n_have_a_documented_bound(key, bound, write_study):
    """Issue 20: 10¹⁰ draws ran for hours; the bound is in the key's message and doc."""
    certify = "certify_std = 0.25\n" if key == "certify_n" else ""
    assert getattr(spec.load(write_study(ROBUST_STUDY + certify),
                             [f"robustness.{key}={bound}"]).robustness, key) == bound
    allowed = f"an integer >= 1 and <= {bound}"
    assert f"at most {bound}" in _field("robustness", key).metadata["doc"]
    path = write_study(ROBUST_STUDY + certify + f"{key} = 10000000000\n")
    with pytest.raises(spec.SpecError) as err:
        spec.load(path)
    assert str(err.value) == f"{path}: 'robustness.{key}' must be {allowed}; got 10000000000"
    with pytest.raises(spec.SpecError) as err:
        spec.load(write_study(ROBUST_STUDY + certify), [f"robustness.{key}={bound + 1}"])
    assert str(err.value) == (f"--set 'robustness.{key}={bound + 1}': 'robustness.{key}' "
                              f"must be {allowed}; got {bound + 1}")


def test_an_older_stored_spec_without_objective_compares_equal(write_study):
    s = spec.load(write_study())
    stored = s.to_dict()
    assert spec.differences(stored, s.to_dict()) == []
    robust = spec.load(write_study(ROBUST_STUDY), ["study.objective=robust"]).to_dict()
    older = spec.load(write_study(ROBUST_STUDY)).to_dict()
    assert spec.differences(older, robust) == [
        "study.objective (stored 'clean', now 'robust')"]
