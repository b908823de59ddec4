"""The jax engine: every repeat of a builder's model in one compiled JAX program, in a process
of its own (search/engine/jax_builder.py, search/engine/_replicas.py), against the keras
engine's ``model.fit`` as the oracle."""

from __future__ import annotations

import os
import signal
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from search import spec as spec_module
from search.data import load_dataset
from search.engine import jax_builder
from search.noise import baseline

STUDY = """\
[study]
name = "mine"
seed = 4
repeats = {repeats}
record_every = {record_every}

[data]
{data}

[model]
builder = "model.py:build"
epochs = {epochs}
batch_size = {batch_size}
learning_rate = 0.01

[noise]
placements = {placements}
std = {std}
"""

# The tutorial's MLP as a builder, started from the built-in engines' initial weights of its
# repeat (as tests/test_builder.py's parity with the built-in Keras engine does).
MLP = """\
import keras
from search.engine._common import initial_weights

def build(noise):
    inputs = keras.Input(shape=(2,))
    x = noise("input")(inputs)
    dense = keras.layers.Dense(16, activation="relu")
    x = noise("dense1")(dense(x))
    out = keras.layers.Dense(1, activation="sigmoid")
    model = keras.Model(inputs, out(x))
    weights = initial_weights([2, 16, 1], noise.repeat + 1, noise.study_seed)
    for layer, (k, b) in zip((dense, out), weights):
        layer.set_weights([k[noise.repeat] * {scale}, b[noise.repeat]])
    return model
"""
MOONS = 'dataset = "moons"\nn_samples = 100\nnoise = 0.1\nn_train = 30'


def study(tmp_path: Path, code: str = MLP.replace("{scale}", "1"), data: str = MOONS,
          placements: str = '["input", "dense1", "input+dense1"]', std: str = "[0.3]",
          extra: str = "", **keys: object) -> spec_module.StudySpec:
    settings = {"repeats": 3, "record_every": 5, "epochs": 10, "batch_size": 8, **keys}
    (tmp_path / "model.py").write_text(textwrap.dedent(code))
    path = tmp_path / "mine.toml"
    path.write_text(STUDY.format(data=data, placements=placements, std=std, **settings) + extra)
    return spec_module.load(path)


def test_a_builder_study_trains_on_the_jax_engine_by_default(tmp_path):
    spec = study(tmp_path)
    assert spec.study.engine == "jax"
    assert spec_module.load(tmp_path / "mine.toml", ["study.engine=keras"]).study.engine == "keras"


def test_the_jax_engine_trains_a_builder_only(write_study):
    path = write_study()  # the built-in MLP
    with pytest.raises(spec_module.SpecError, match="'study.engine' = 'jax' trains a model of "
                                                    "your own \\('model.builder'\\) only; use "
                                                    "'fast' or 'keras' for the built-in MLP"):
        spec_module.load(path, ["study.engine=jax"])


def test_max_replicas_is_resumable_and_not_stored_at_its_default(tmp_path):
    spec = study(tmp_path)
    assert "max_replicas" not in spec.to_dict()["study"]
    chunked = spec_module.load(tmp_path / "mine.toml", ["study.max_replicas=2"])
    assert chunked.study.max_replicas == 2
    assert spec_module.differences(spec.to_dict(), chunked.to_dict()) == []
    with pytest.raises(spec_module.SpecError, match="study.max_replicas"):
        spec_module.load(tmp_path / "mine.toml", ["study.max_replicas=0"])


def both_engines(tmp_path: Path, robustness: str) -> tuple[object, object]:
    """The baseline trained by the jax engine and by the keras engine, one batch per epoch."""
    from search.engine import keras_builder

    spec = study(tmp_path, epochs=20, batch_size=30, extra=robustness)
    data = load_dataset(spec)
    return (jax_builder.train(spec, data, baseline(spec.noise.kind)),
            keras_builder.train(spec, data, baseline(spec.noise.kind)))


def test_full_batch_without_noise_is_the_keras_engines_run_step_for_step(tmp_path):
    """One batch per epoch and no noise: data order and noise draws cannot differ, so the jax
    engine computes the keras engine's model.fit (TensorFlow) to float32 rounding, every
    curve point, the final weights and the robustness profiles on the same noisy inputs."""
    ours, theirs = both_engines(tmp_path, "[robustness]\ninput_std = [0.0, 0.2, 0.5]\n"
                                          "draws = 4\n")
    assert ours.curve_epochs == theirs.curve_epochs == (5, 10, 15, 20)
    for name in ("test_loss", "train_loss"):
        np.testing.assert_allclose(ours.curves[name], theirs.curves[name], rtol=1e-5)
    for name in ("test_metric", "train_metric"):  # a point on the boundary may flip
        np.testing.assert_allclose(ours.curves[name], theirs.curves[name], atol=1.5 / 70)
    assert ours.test_metric.mean() > 0.6  # it learned something
    for a, b in zip(ours.weights, theirs.weights, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert ours.robustness.shape == (3, 3)
    np.testing.assert_allclose(ours.robustness, theirs.robustness, atol=1.5 / 70)
    assert not ours.diverged


@pytest.mark.slow  # both engines certify by randomized smoothing: 20 s
def test_certified_accuracy_is_the_keras_engines(tmp_path):
    ours, theirs = both_engines(tmp_path, "[robustness]\ninput_std = [0.0, 0.2]\ndraws = 2\n"
                                          "certify_std = 0.25\ncertify_n = 300\n")
    assert ours.certified.shape == (3, 4)
    np.testing.assert_allclose(ours.certified, theirs.certified, atol=1.5 / 70)


def test_repeat_r_is_the_same_run_alone_in_a_block_or_in_chunks(tmp_path):
    """Common random numbers across blocks: repeat r of a block of 30 is, bit for bit, repeat
    r trained alone (a racing block) or in chunks of study.max_replicas."""
    spec = study(tmp_path, repeats=30, epochs=4, record_every=2,
                 placements='["input+dense1"]', std="[0.5]")
    data = load_dataset(spec)
    config = spec.configurations()[1]
    everyone = jax_builder.train(spec, data, config)
    assert len(set(everyone.test_loss)) == 30  # 30 different runs
    chunked = spec_module.load(tmp_path / "mine.toml", ["study.max_replicas=10"])
    for repeats, got in [
        (range(0, 1), jax_builder.train(spec, data, config, repeats=range(0, 1))),
        (range(17, 18), jax_builder.train(spec, data, config, repeats=range(17, 18))),
        (range(30), jax_builder.train(chunked, data, config)),  # 10, 10, 10
    ]:
        for name, curve in everyone.curves.items():
            np.testing.assert_array_equal(got.curves[name], curve[repeats.start:repeats.stop])
    alone = jax_builder.train(spec, data, config, repeats=range(0, 1))
    for a, b in zip(alone.weights, everyone.weights, strict=True):
        np.testing.assert_array_equal(a, b)


def test_repeat_r_starts_alike_and_sees_the_same_data_in_every_configuration(tmp_path):
    """Noise of σ = 1e-6 moves a run by little: what remains is the same start and the same
    data order as the baseline's repeat r, while repeats differ from each other."""
    spec = study(tmp_path, repeats=4, std="[1e-6]", placements='["input"]')
    data = load_dataset(spec)
    none, tiny = (jax_builder.train(spec, data, c) for c in spec.configurations())
    np.testing.assert_allclose(tiny.test_loss, none.test_loss, rtol=1e-3)
    assert np.ptp(none.test_loss) > 100 * np.max(np.abs(tiny.test_loss - none.test_loss))


def test_a_diverged_repeat_is_marked_alone_and_the_others_train_on(tmp_path):
    code = MLP.replace("{scale}", "(1e30 if noise.repeat == 1 else 1)").replace('"sigmoid"',
                                                                              '"linear"')
    spec = study(tmp_path, code=code, placements='["input"]',
                 data='dataset = "regression"\nn_samples = 60\nn_features = 2\nn_train = 40')
    data = load_dataset(spec)
    result = jax_builder.train(spec, data, baseline(spec.noise.kind))
    assert list(result.diverged_at) == [0, 1, 0]
    assert np.isnan(result.curves["test_loss"][1]).all()
    assert np.isfinite(result.curves["test_loss"][[0, 2]]).all()
    assert result.divergence_reason().startswith("diverged: training loss became NaN or "
                                                 "infinite in 1 of 3 repeats (first at epoch 1)")


def test_an_error_in_the_builder_while_training_is_one_line_with_its_traceback_chained(
        tmp_path):
    from search.usercode import UserCodeError

    code = MLP.replace("{scale}", "1").replace(
        "    inputs = ", "    if noise.repeat == 2:\n        raise RuntimeError('no third')\n"
                        "    inputs = ")
    spec = study(tmp_path, code=code)
    with pytest.raises(UserCodeError, match="'model.builder' 'model.py:build' raised "
                                            "RuntimeError: no third") as caught:
        jax_builder.train(spec, load_dataset(spec), baseline(spec.noise.kind))
    assert isinstance(caught.value.__cause__, jax_builder.RemoteTraceback)
    assert "raise RuntimeError('no third')" in str(caught.value.__cause__)
    spec = study(tmp_path)  # the process is still there and trains the next study
    assert jax_builder.train(spec, load_dataset(spec), baseline(spec.noise.kind)).test_loss.size


@pytest.mark.slow  # a second jax process starts and compiles: 10-20 s
def test_an_interrupt_stops_the_jax_process_and_the_next_call_starts_another(tmp_path):
    spec = study(tmp_path, repeats=30, epochs=3000)
    data = load_dataset(spec)
    jax_builder.train(spec, data, baseline(spec.noise.kind), repeats=range(0, 1))
    before = jax_builder._CHILD
    assert before is not None and before.alive()
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        jax_builder.train(spec, data, baseline(spec.noise.kind))
    timer.join()
    assert jax_builder._CHILD is None and not before.alive()
    quick = study(tmp_path)
    assert jax_builder.train(quick, load_dataset(quick), baseline("additive")).test_loss.size == 3


@pytest.mark.slow  # a whole raced study and a full run of it: 20-30 s
def test_a_raced_builder_study_records_the_numbers_a_full_run_gives_seed_by_seed(tmp_path):
    """Racing trains blocks of seeds (5, then 5 more for the configurations still in the
    race): every recorded seed is the seed of a full 10-seed run of the configuration."""
    import optuna

    from search.cli import main

    spec = study(tmp_path, repeats=10, epochs=6, placements='["input", "dense1"]',
                 std="[0.3, 3.0]", extra="[racing]\nfirst = 5\neach = 5\n")
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    assert main(["run", str(tmp_path / "mine.toml"), "--storage", url, "--quiet"]) == 0
    data = load_dataset(spec)
    configs = {c.key: c for c in spec.configurations()}
    seeds = []
    for trial in optuna.load_study(study_name="mine", storage=url).trials:
        values = trial.user_attrs["test_values"]
        seeds.append(len(values))
        full = jax_builder.train(spec, data, configs[trial.user_attrs["config"]])
        # Stored rounded to 6 digits; neighbouring accuracies differ by 1/70.
        np.testing.assert_allclose(values, full.test_metric[: len(values)], atol=5e-7)
    assert set(seeds) <= {5, 10} and 10 in seeds and len(seeds) == len(configs)


@pytest.mark.slow  # a second jax process starts and compiles: 10-20 s
def test_a_jax_process_that_dies_is_one_line_naming_the_cause(tmp_path):
    """Killed while training (the out-of-memory killer, say): the trial fails with a line
    saying so and what to set, not a hang; the next call starts another process."""
    from search.errors import NoiseSearchError

    spec = study(tmp_path, repeats=30, epochs=3000)
    data = load_dataset(spec)
    jax_builder.train(spec, data, baseline(spec.noise.kind), repeats=range(0, 1))
    child = jax_builder._CHILD
    timer = threading.Timer(1.0, os.kill, (child.process.pid, signal.SIGKILL))
    timer.start()
    with pytest.raises(NoiseSearchError, match="the jax engine's training process stopped "
                                               "\\(killed by SIGKILL\\); if it ran out of "
                                               "memory, set 'study.max_replicas' lower"):
        jax_builder.train(spec, data, baseline(spec.noise.kind))
    timer.join()
    quick = study(tmp_path)
    assert jax_builder.train(quick, load_dataset(quick), baseline("additive")).test_loss.size == 3
