"""Datasets: generators, CSV files, the split, scaling on training rows; bad input is one line."""

from __future__ import annotations

from numbers import Integral
from pathlib import Path

import numpy as np
import pytest

from search import data as data_module
from search import spec as spec_module
from search.cli import main
from search.data import load_dataset
from search.errors import NoiseSearchError
from tests.conftest import TINY_STUDY

CIRCLES = 'dataset = "circles"\nn_samples = 60\nnoise = 0.1\n'


def study_with_data(data_lines: str, extra: str = "") -> str:
    assert CIRCLES in TINY_STUDY
    return TINY_STUDY.replace(CIRCLES, data_lines) + extra


def csv_study(write_study, tmp_path: Path, rows: list[str], target: str = "label",
              task: str | None = None, n_train: int = 4) -> Path:
    (tmp_path / "table.csv").write_text("\n".join(rows) + "\n")
    lines = f'dataset = "csv"\npath = "table.csv"\ntarget = "{target}"\n'
    if task:
        lines += f'task = "{task}"\n'
    text = study_with_data(lines).replace("random_state = 1\n", "").replace(
        "n_train = 20", f"n_train = {n_train}")
    return write_study(text)


GOOD_ROWS = ["a,b,label", "0.1,1,yes", "0.2,2,no", "0.3,3,yes", "0.4,4,no", "0.5,5,yes",
             "0.6,6,no"]


def test_csv_classification_maps_labels_and_splits_in_file_order(write_study, tmp_path):
    path = csv_study(write_study, tmp_path, GOOD_ROWS)
    data = load_dataset(spec_module.load(path))
    assert data.task == "binary" and data.feature_names == ("a", "b")
    assert data.x_train.shape == (4, 2) and data.x_test.shape == (2, 2)
    np.testing.assert_allclose(data.x_train[:, 1], [1, 2, 3, 4])
    # Labels sorted: "no" -> 0, "yes" -> 1.
    assert data.y_train.ravel().tolist() == [1, 0, 1, 0]


def test_csv_regression_target(write_study, tmp_path):
    rows = ["a,b,label", *(f"{i},{i * 2},{i * 1.5}" for i in range(8))]
    path = csv_study(write_study, tmp_path, rows, task="regression")
    spec = spec_module.load(path)
    data = load_dataset(spec)
    assert data.task == "regression" and spec.metric == "rmse" and spec.direction == "minimize"
    np.testing.assert_allclose(data.y_train.ravel(), [0, 1.5, 3, 4.5])


@pytest.mark.parametrize("rows, target, task, expected", [
    (GOOD_ROWS, "class", None, "'data.target' must name a column of table.csv (a, b, label); "
                               "got 'class'"),
    (["a,b,label", "0.1,x,yes", *GOOD_ROWS[2:]], "label", None,
     "feature column 'b' must hold finite numbers; got 'x' on line 2"),
    (GOOD_ROWS, "label", "regression", "regression target column 'label' must hold finite "
                                       "numbers; got 'yes' on line 2"),
    (["a,b,label", "1,2,yes", "3,4,yes", "5,6,yes", "7,8,yes", "9,10,yes"], "label", None,
     "target column 'label' must hold at least 2 classes"),
])
def test_bad_csv_is_one_line_naming_column_allowed_and_given(rows, target, task, expected,
                                                             write_study, tmp_path, capsys,
                                                             sqlite_url):
    path = csv_study(write_study, tmp_path, rows, target=target, task=task)
    with pytest.raises(NoiseSearchError) as err:
        load_dataset(spec_module.load(path))
    assert expected in str(err.value) and "\n" not in str(err.value)
    # Through the CLI: exit 2, one line, no traceback, nothing stored.
    assert main(["run", str(path), "--storage", sqlite_url, "--quiet"]) == 2
    out = capsys.readouterr().err.strip()
    assert expected in out and "\n" not in out and "Traceback" not in out
    assert not (tmp_path / "studies.db").exists()  # the data is read before the storage opens


BAD_SPECS = {
    "keras_engine_weights": (
        TINY_STUDY.replace('placements = ["input", "hidden_pre"]',
                           'placements = ["input", "weights"]')
        .replace("[study]\n", "[study]\nengine = \"keras\"\n"),
        "'study.engine' = 'keras' supports noise on input, hidden_pre, hidden_post only "
        "(use engine 'fast' for weights); got placement 'weights'"),
    "keras_engine_combined_gradients": (
        TINY_STUDY.replace('placements = ["input", "hidden_pre"]',
                           'placements = ["input+gradients"]')
        .replace("[study]\n", "[study]\nengine = \"keras\"\n"),
        "got placement 'input+gradients'"),
    "keras_engine_targets": (
        TINY_STUDY.replace('placements = ["input", "hidden_pre"]', 'placements = ["targets"]')
        .replace("[study]\n", "[study]\nengine = \"keras\"\n"),
        "'study.engine' = 'keras' supports noise on input, hidden_pre, hidden_post only"),
    "keras_engine_sigma_above_1": (
        TINY_STUDY.replace("std = [0.1, 0.3]", "std = [0.1, 2.0]")
        .replace("[study]\n", "[study]\nengine = \"keras\"\n"),
        "'noise.std' must hold σ <= 1 with 'study.engine' = 'keras'"),
    "scale_target_for_classification": (
        TINY_STUDY.replace("n_train = 20", 'n_train = 20\nscale_target = "standard"'),
        "'data.scale_target' applies to regression only"),
    "scale_target_unknown": (
        study_with_data('dataset = "friedman1"\nn_samples = 60\nscale_target = "log"\n'),
        "'data.scale_target' must be one of 'none', 'standard', 'minmax'; got 'log'"),
    "zero_hidden_units_second_layer": (
        TINY_STUDY.replace("hidden = [8]", "hidden = [8, 0]"),
        "'model.hidden' must be a non-empty list of integers >= 1; got [8, 0]"),
    "negative_learning_rate": (
        TINY_STUDY.replace("epochs = 20", "epochs = 20\nlearning_rate = -0.001"),
        "'model.learning_rate' must be a finite number > 0; got -0.001"),
}


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_bad_model_or_engine_is_one_line_naming_key_allowed_and_given(case, write_study,
                                                                      capsys, sqlite_url):
    text, expected = BAD_SPECS[case]
    path = write_study(text)
    with pytest.raises(spec_module.SpecError) as err:
        spec_module.load(path)
    assert expected in str(err.value) and str(path) in str(err.value)
    assert "\n" not in str(err.value)
    assert main(["run", str(path), "--storage", sqlite_url, "--quiet"]) == 2
    out = capsys.readouterr().err.strip()
    assert expected in out and "\n" not in out and "Traceback" not in out


def test_keras_engine_accepts_the_sites_it_has_layers_for(write_study):
    text = TINY_STUDY.replace('placements = ["input", "hidden_pre"]',
                              'placements = ["input", "hidden_pre", "hidden_post", '
                              '"input+hidden_post"]').replace("[study]\n",
                                                              "[study]\nengine = \"keras\"\n")
    spec = spec_module.load(write_study(text))
    assert spec.study.engine == "keras" and len(spec.configurations()) == 9


def test_scaling_is_fitted_on_training_rows_only(write_study):
    spec = spec_module.load(write_study(study_with_data(
        'dataset = "friedman1"\nn_samples = 60\nnoise = 1.0\nscale = "standard"\n'
        'scale_target = "standard"\n')))
    data = load_dataset(spec)
    np.testing.assert_allclose(data.x_train.mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(data.x_train.std(axis=0), 1, atol=1e-5)
    np.testing.assert_allclose(data.y_train.mean(), 0, atol=1e-6)
    np.testing.assert_allclose(data.y_train.std(), 1, atol=1e-5)
    # The test rows are transformed with the training rows' statistics, not their own.
    assert abs(float(data.y_test.mean())) > 1e-3 or abs(float(data.y_test.std()) - 1) > 1e-3
    raw = load_dataset(spec_module.load(spec.source, ["data.scale_target='none'"]))
    ratio = (raw.y_test - raw.y_train.mean()) / raw.y_train.std()
    np.testing.assert_allclose(data.y_test, ratio, rtol=1e-4, atol=1e-4)


def test_minmax_maps_training_rows_to_unit_interval(write_study):
    spec = spec_module.load(write_study(TINY_STUDY.replace("n_train = 20",
                                                           'n_train = 20\nscale = "minmax"')))
    data = load_dataset(spec)
    np.testing.assert_allclose(data.x_train.min(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(data.x_train.max(axis=0), 1, atol=1e-6)


@pytest.mark.parametrize("lines, task, outputs", [
    (CIRCLES, "binary", 1),
    ('dataset = "moons"\nn_samples = 60\nnoise = 0.1\n', "binary", 1),
    ('dataset = "blobs"\nn_samples = 60\ncenters = 4\n', "multiclass", 4),
    ('dataset = "classification"\nn_samples = 60\nn_classes = 3\nn_informative = 3\n',
     "multiclass", 3),
    ('dataset = "regression"\nn_samples = 60\nn_features = 4\nn_informative = 2\n',
     "regression", 1),
    ('dataset = "friedman1"\nn_samples = 60\n', "regression", 1),
])
def test_every_generator_gives_its_task(lines, task, outputs, write_study):
    spec = spec_module.load(write_study(study_with_data(lines)))
    data = load_dataset(spec)
    assert data.task == spec.task == task
    assert data.n_outputs == outputs
    assert len(data.x_train) == 20 and len(data.x_test) == 40
    if task == "multiclass":
        assert data.y_train.dtype == np.int32 and data.y_train.ndim == 1
    else:
        assert data.y_train.shape == (20, 1) and data.y_train.dtype == np.float32


# --- generated: every generator argument outside scikit-learn's published ranges ---

def _outside(interval) -> list:
    """Values just outside an sklearn Interval, of its own type."""
    step = 1 if interval.type is Integral else 0.5
    values = []
    if interval.left is not None:
        values.append(interval.left if interval.closed in ("right", "neither")
                      else interval.left - step)
    if interval.right is not None:
        values.append(interval.right if interval.closed in ("left", "neither")
                      else interval.right + step)
    return [int(v) if interval.type is Integral else float(v) for v in values]


GENERATORS = {name: kind.generator for name, kind in data_module.DATASET_KINDS.items()
              if kind.generator is not None}


def _sklearn_cases() -> list[tuple[str, str, object]]:
    from sklearn.utils._param_validation import Interval, make_constraint

    cases = []
    for dataset, gen in GENERATORS.items():
        published = gen.sklearn_function()._skl_parameter_constraints
        for key in sorted(gen.takes):
            assert key in published, f"{gen.function} publishes no constraint for {key}"
            made = [make_constraint(c) for c in published[key]]
            for c in (inner for m in made for inner in getattr(m, "_constraints", [m])):
                if isinstance(c, Interval):
                    cases += [(dataset, key, v) for v in _outside(c)
                              if not any(m.is_satisfied_by(v) for m in made)]
    return cases


SKLEARN_CASES = _sklearn_cases()


def test_the_generated_cases_include_the_ones_users_hit():
    assert ("circles", "factor", 1.0) in SKLEARN_CASES
    assert ("friedman1", "n_features", 4) in SKLEARN_CASES
    assert ("moons", "random_state", 2**32) in SKLEARN_CASES


@pytest.mark.parametrize("route", ["file", "set"])
@pytest.mark.parametrize("dataset, key, value", SKLEARN_CASES,
                         ids=[f"{d}.{k}={v}" for d, k, v in SKLEARN_CASES])
def test_generator_argument_outside_sklearn_range_is_one_line_before_storage(
        dataset, key, value, route, write_study, sqlite_url, tmp_path, capsys):
    table = {"dataset": f'"{dataset}"', "n_samples": "60", "random_state": "1"}
    sets = [] if route == "file" else [f"data.{key}={value!r}"]
    if not sets:
        table[key] = repr(value)
    lines = "".join(f"{k} = {v}\n" for k, v in table.items())
    path = write_study(study_with_data(lines).replace("n_train = 20\n", "n_train = 20\n", 1)
                       .replace("random_state = 1\n", "", 1))
    with pytest.raises(spec_module.SpecError) as err:
        spec_module.load(path, sets)
    message = str(err.value)
    where = f"--set 'data.{key}={value!r}'" if sets else str(path)
    assert message.startswith(f"{where}: 'data.{key}' must be ") and "\n" not in message
    assert message.endswith(f"; got {value!r}")
    args = ["run", str(path), "--storage", sqlite_url, "--quiet"]
    assert main([*args, *(a for item in sets for a in ("--set", item))]) == 2
    assert capsys.readouterr().err.strip() == f"noise-search: error: {message}"
    assert not (tmp_path / "studies.db").exists()


def test_sklearn_ranges_are_worded_as_sklearn_publishes_them(write_study):
    with pytest.raises(spec_module.SpecError) as err:
        spec_module.load(write_study(), ["data.factor=1.0"])
    assert str(err.value) == ("--set 'data.factor=1.0': 'data.factor' must be a float in the "
                              "range [0.0, 1.0) (scikit-learn's make_circles); got 1.0")


@pytest.mark.parametrize("dataset", sorted(GENERATORS))
def test_sklearn_publishes_the_ranges_we_declare_for_every_generator_argument(dataset):
    # scikit-learn's constraints are a private API: a version without them (or with other
    # ranges) fails here rather than changing what a study file may hold.
    gen = GENERATORS[dataset]
    published = gen.sklearn_function()._skl_parameter_constraints
    for key in sorted(gen.takes):
        assert key in published, f"{gen.function} publishes no constraint for {key}"
        assert data_module._allowed_ranges(published[key])[1] == str(gen.range_of(key)), key


def test_without_sklearns_constraints_our_ranges_refuse_the_same_values(write_study,
                                                                        monkeypatch):
    path = write_study(study_with_data('dataset = "circles"\nn_samples = 60\n'))

    def refusals() -> list[str]:
        messages = []
        for dataset, key, value in SKLEARN_CASES:
            with pytest.raises(spec_module.SpecError) as err:
                spec_module.load(path, [f"data.dataset={dataset!r}", f"data.{key}={value!r}"])
            messages.append(str(err.value))
        return messages

    published = refusals()
    for gen in GENERATORS.values():
        monkeypatch.delattr(gen.sklearn_function(), "_skl_parameter_constraints")
    assert refusals() == published


@pytest.mark.parametrize("lines, expected", [
    ('dataset = "classification"\nn_samples = 60\nn_features = 3\nn_informative = 4\n',
     "'data.n_informative' must be <= data.n_features (3); got 4"),
    ('dataset = "classification"\nn_samples = 60\nn_informative = 2\nn_classes = 3\n',
     "'data.n_classes' must satisfy n_classes * 2 <= 2 ** n_informative (n_informative = 2); "
     "got 3"),
])
def test_generator_constraints_between_arguments(lines, expected, write_study):
    path = write_study(study_with_data(lines))
    with pytest.raises(spec_module.SpecError) as err:
        spec_module.load(path)
    assert str(err.value) == f"{path}: {expected}"


# --- generated: CSV cells that are not finite numbers, files that are not UTF-8 text ---

BAD_CELLS = ["nan", "NaN", "inf", "-inf", "Infinity", "", "1e400", "x"]
CSV_CELL_CASES = [(column, cell) for column in ("a", "b", "y") for cell in BAD_CELLS]


@pytest.mark.parametrize("column, cell", CSV_CELL_CASES,
                         ids=[f"{c}={v or 'empty'}" for c, v in CSV_CELL_CASES])
def test_csv_cell_that_is_not_a_finite_number_is_one_line_before_storage(
        column, cell, write_study, tmp_path, sqlite_url, capsys):
    rows = ["a,b,y", *(f"{i},{i * 2},{i * 1.5}" for i in range(8))]
    header = rows[0].split(",")
    cells = rows[4].split(",")
    cells[header.index(column)] = cell
    rows[4] = ",".join(cells)
    path = csv_study(write_study, tmp_path, rows, target="y", task="regression")
    what = "regression target column 'y'" if column == "y" else f"feature column {column!r}"
    expected = (f"{tmp_path / 'table.csv'}: {what} must hold finite numbers; got {cell!r} "
                "on line 5")
    with pytest.raises(NoiseSearchError) as err:
        load_dataset(spec_module.load(path))
    assert str(err.value) == expected
    assert main(["run", str(path), "--storage", sqlite_url, "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == f"noise-search: error: {expected}"
    assert not (tmp_path / "studies.db").exists()


NOT_TEXT = {
    "binary": bytes(range(256)) * 4,
    "latin1": "a,b,label\n0.1,1,café\n".encode("latin-1"),
    "utf16": "a,b,label\n0.1,1,yes\n".encode("utf-16"),
    "nul_in_utf8": b"a,b,label\n0.1,\x00,yes\n",
}


@pytest.mark.parametrize("case", sorted(NOT_TEXT))
def test_csv_file_that_is_not_utf8_text_is_one_line_naming_it(case, write_study, tmp_path,
                                                               sqlite_url, capsys):
    path = csv_study(write_study, tmp_path, GOOD_ROWS)
    (tmp_path / "table.csv").write_bytes(NOT_TEXT[case])
    with pytest.raises(NoiseSearchError) as err:
        load_dataset(spec_module.load(path))
    message = str(err.value)
    assert message.startswith(f"{path}: 'data.path' 'table.csv' must be a UTF-8 text CSV "
                              "file; got ")
    assert "\n" not in message
    assert main(["run", str(path), "--storage", sqlite_url, "--quiet"]) == 2
    err_text = capsys.readouterr().err.strip()
    assert err_text == f"noise-search: error: {message}" and "Traceback" not in err_text
    assert not (tmp_path / "studies.db").exists()


@pytest.mark.parametrize("case, where", [
    ("latin1", "got byte 0xe9 at offset 19 (line 2), which is not UTF-8"),
    ("nul_in_utf8", "got a NUL byte at offset 14 (line 2), as in a binary file"),
])
def test_the_offending_byte_is_located(case, where, write_study, tmp_path):
    path = csv_study(write_study, tmp_path, GOOD_ROWS)
    (tmp_path / "table.csv").write_bytes(NOT_TEXT[case])
    with pytest.raises(NoiseSearchError) as err:
        load_dataset(spec_module.load(path))
    assert str(err.value).endswith(where)
