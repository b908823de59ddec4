"""The engine interface: each engine declares its sites and limits (read without TensorFlow),
the study file asks the engine it names, and an engine predicts with stored final weights."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from search import engine
from search import spec as spec_module
from search.data import load_dataset
from search.engine._common import initial_weights
from search.noise import SITE_NAMES, parse_config_key
from tests.conftest import TINY_STUDY

REPO = Path(__file__).resolve().parents[1]
KERAS = TINY_STUDY.replace("[study]\n", '[study]\nengine = "keras"\n')


def test_validating_a_study_file_never_imports_tensorflow_or_keras(tmp_path):
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text(KERAS)
    bad.write_text(KERAS.replace("std = [0.1, 0.3]", "std = [0.1, 2.0]"))
    code = f"""
import sys
from search import spec
for name in ("fast", "keras"):
    spec.load({str(good)!r}, [f"study.engine={{name!r}}"])
try:
    spec.load({str(bad)!r})
except spec.SpecError as exc:
    print("refused:", exc)
print(sorted(m for m in ("tensorflow", "keras") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, check=True).stdout
    assert "refused:" in out and "'noise.std' must hold σ <= 1" in out
    assert out.strip().endswith("[]")


@pytest.mark.parametrize("name", engine.NAMES)
def test_every_engine_declares_the_same_limits_light_and_loaded(name, write_study):
    declared = engine.limits(name)
    assert declared.NAME == name
    assert set(declared.SITES) <= set(SITE_NAMES)
    # An engine of the built-in MLP has its sites; one of builders only has the builder's.
    assert bool(declared.SITES) == ("mlp" in declared.MODELS)
    assert set(declared.MODELS) <= {"mlp", "builder"} and declared.MODELS
    loaded = engine.load(name)
    assert (loaded.NAME, loaded.SITES, loaded.MODELS) == (declared.NAME, declared.SITES,
                                                          declared.MODELS)
    for std in ("[0.1, 0.3]", "[0.1, 2.0]", "[1e8]"):
        # Loaded for the fast engine, which takes any σ; then asked of this engine directly.
        s = spec_module.load(write_study(), [f"noise.std={std}", "noise.kind='multiplicative'"])
        assert loaded.check(s) == declared.check(s)
    for attr in ("train", "predict", "check"):
        assert callable(getattr(loaded, attr))


def test_the_study_file_is_checked_by_the_engine_it_names(write_study, monkeypatch):
    """spec.py knows no engine's limits: it asks, and words the answer as its own."""
    fake = SimpleNamespace(
        NAME="keras", SITES=("input",), MODELS=("mlp",),
        check=lambda s: [("model.epochs", f"must be <= 10 for this engine; got {s.model.epochs}")
                         ] if s.model.epochs > 10 else [])
    real = engine.limits
    monkeypatch.setattr(engine, "limits", lambda name: fake if name == "keras" else real(name))
    path = write_study(KERAS.replace('placements = ["input", "hidden_pre"]',
                                     'placements = ["input"]'))
    with pytest.raises(spec_module.SpecError) as err:
        spec_module.load(path)
    assert str(err.value) == f"{path}: 'model.epochs' must be <= 10 for this engine; got 20"
    with pytest.raises(spec_module.SpecError) as err:
        spec_module.load(path, ["noise.placements=['input', 'hidden_post']"])
    assert "'study.engine' = 'keras' supports noise on input only (use engine 'fast' for " \
           "hidden_post); got placement 'hidden_post'" in str(err.value)
    assert spec_module.load(path, ["model.epochs=10"]).model.epochs == 10


def test_unknown_engine_name_is_refused_by_load_and_limits():
    for call in (engine.load, engine.limits):
        with pytest.raises(ValueError, match="unknown engine 'torch'; engines: fast, keras"):
            call("torch")


@pytest.mark.parametrize("data_lines, config, task", [
    ('dataset = "circles"\nn_samples = 60\nnoise = 0.1\n', "hidden_pre:0.1", "binary"),
    ('dataset = "blobs"\nn_samples = 60\ncenters = 3\n', "input:0.1", "multiclass"),
    ('dataset = "friedman1"\nn_samples = 60\nnoise = 0.1\n', "hidden_post:0.1", "regression"),
])
@pytest.mark.slow
def test_keras_keeps_repeat_0_final_weights_and_predicts_its_clean_test_metric(
        data_lines, config, task, write_study):
    from search.engine import keras_ref

    text = TINY_STUDY.replace('dataset = "circles"\nn_samples = 60\nnoise = 0.1\n', data_lines)
    s = spec_module.load(write_study(text), ["study.repeats=2", "model.epochs=3",
                                             "model.hidden=[6, 5]", "study.engine='keras'"])
    data = load_dataset(s)
    assert data.task == task
    result = keras_ref.train(s, data, parse_config_key(config))
    w = result.weights
    assert w is not None and all(a.dtype == np.float32 for a in w)
    outputs = data.n_outputs
    sizes = [data.n_features, 6, 5, outputs]
    assert [a.shape for a in w] == [(sizes[0], 6), (6,), (6, 5), (5,), (5, outputs), (outputs,)]
    start = initial_weights(sizes, 2, s.study.seed)
    assert not np.allclose(w[0], start[0][0][0])  # trained, not the starting point
    pred = keras_ref.predict(s, data, w, data.x_test)
    y = data.y_test
    if task == "binary":
        assert pred.shape == (len(y),) and np.all((pred >= 0) & (pred <= 1))
        metric = float(np.mean((pred > 0.5) == (y[:, 0] > 0.5)))
    elif task == "multiclass":
        assert pred.shape == (len(y), 3)
        np.testing.assert_allclose(pred.sum(axis=1), 1, rtol=1e-5)
        metric = float(np.mean(np.argmax(pred, axis=1) == y))
    else:
        assert pred.shape == (len(y),)
        metric = math.sqrt(float(np.mean((pred - y[:, 0]) ** 2)))
    # Repeat 0's clean test metric, measured by training, is reproduced from its weights alone.
    assert metric == pytest.approx(float(result.test_metric[0]), rel=1e-5)
    # Both engines compute the same clean function of the same weights.
    np.testing.assert_allclose(engine.load("fast").predict(s, data, w, data.x_test), pred,
                               rtol=1e-4, atol=1e-5)


def test_the_package_still_exports_train_result_for_its_users():
    from search.engine import TrainResult, _common

    assert engine.TrainResult is TrainResult is _common.TrainResult
    out = subprocess.run([sys.executable, "-c", "import search.study, search.spec"], cwd=REPO,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_run_help_lists_every_engine_with_what_it_trains():
    """The engines are registered, not hidden: `run --help` names each one of engine.NAMES
    with its ABOUT, and each engine module declares the ABOUT of its limits."""
    from click.testing import CliRunner

    from search import engine
    from search.cli import cli

    out = CliRunner().invoke(cli, ["run", "--help"], terminal_width=200).output
    assert "Engines (study.engine" in out
    for name in engine.NAMES:
        about = engine.limits(name).ABOUT
        assert f"{name}: {about}" in out
    assert "builder" in engine.limits("jax").MODELS and "jax: a model of your own" in out
