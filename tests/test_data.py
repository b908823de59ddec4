"""Datasets: generators, CSV files, the split, scaling on training rows; bad input is one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest

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
     "feature column 'b' must be numeric; got 'x' on line 2"),
    (GOOD_ROWS, "label", "regression", "regression target column 'label' must be numeric; "
                                       "got 'yes'"),
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
    # The data is read after the storage is opened, but before any study is created in it.
    if (tmp_path / "studies.db").exists():
        assert optuna.study.get_all_study_names(storage=sqlite_url) == []


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
        "'model.learning_rate' must be a number > 0; got -0.001"),
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
