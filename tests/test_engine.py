"""The fast engine: shapes, determinism, common random numbers, clean evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from search import spec as spec_module
from search.data import load_dataset
from search.engine import fast
from search.engine._common import initial_weights, record_epochs
from search.noise import NoiseConfig, Site, parse_config_key
from tests.conftest import TINY_STUDY


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("engine") / "tiny.toml"
    path.write_text(TINY_STUDY)
    spec = spec_module.load(path)
    return spec, load_dataset(spec)


def test_shapes_and_record_points(tiny):
    spec, data = tiny
    result = fast.train(spec, data, parse_config_key("hidden_pre:0.1"))
    R = spec.study.repeats
    assert result.curve_epochs == (5, 10, 15, 20) == record_epochs(20, 5)
    for values in (result.test_metric, result.train_metric, result.test_loss, result.train_loss):
        assert values.shape == (R,)
    for curve in result.curves.values():
        assert curve.shape == (R, 4)
    # The last curve point is the final clean evaluation.
    assert np.array_equal(result.curves["test_metric"][:, -1], result.test_metric)
    # Accuracy is a count over 40 test rows.
    assert np.allclose(result.test_metric * 40, np.round(result.test_metric * 40))
    assert not result.diverged


def test_same_seed_same_numbers_and_repeats_differ(tiny):
    spec, data = tiny
    config = parse_config_key("input:0.3")
    a = fast.train(spec, data, config)
    b = fast.train(spec, data, config)
    assert np.array_equal(a.test_loss, b.test_loss)
    assert np.array_equal(a.curves["train_loss"], b.curves["train_loss"])
    assert len(set(np.round(a.test_loss, 6))) == spec.study.repeats  # every repeat differs


def test_other_seed_other_numbers(tiny):
    spec, data = tiny
    other = spec_module.load(spec.source, ["study.seed=4"])
    config = parse_config_key("input:0.3")
    assert not np.array_equal(fast.train(spec, data, config).test_loss,
                              fast.train(other, data, config).test_loss)


def test_noise_changes_training_and_zero_sigma_is_the_baseline(tiny):
    spec, data = tiny
    base = fast.train(spec, data, parse_config_key("none"))
    zero = fast.train(spec, data, parse_config_key("hidden_pre:0"))
    noisy = fast.train(spec, data, parse_config_key("hidden_pre:0.3"))
    np.testing.assert_allclose(zero.test_loss, base.test_loss, rtol=1e-5)
    assert not np.allclose(noisy.test_loss, base.test_loss)


def test_initial_weights_depend_only_on_seed_and_repeat():
    few = initial_weights([2, 5, 1], 2, seed=1)
    many = initial_weights([2, 5, 1], 4, seed=1)
    for (k2, b2), (k4, b4) in zip(few, many):
        assert np.array_equal(k2, k4[:2])
        assert not np.array_equal(k4[0], k4[1])
        assert not b4.any()
    limit = np.sqrt(6 / (2 + 5))  # glorot_uniform
    assert np.abs(many[0][0]).max() <= limit


def test_divergence_is_reported_not_raised(tiny):
    spec, data = tiny
    result = fast.train(spec, data, parse_config_key("input:1e30"))
    assert result.diverged
    assert "diverged" in result.divergence_reason()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["additive", "multiplicative"])
def test_mini_batches_with_noise_at_every_site(kind, tiny):
    """More rows than the batch: batches of 8, 8 and 4 each epoch, noise at every site
    (a batch must keep its static shape for the noise draws)."""
    spec, _ = tiny
    spec = spec_module.load(spec.source, ["model.batch_size=8", "model.epochs=3",
                                          "study.record_every=1"])
    data = load_dataset(spec)
    sites = "+".join(s.value for s in Site)
    config = NoiseConfig(parse_config_key(f"{sites}:0.1").sigmas, kind)
    result = fast.train(spec, data, config)
    assert not result.diverged and np.all(np.isfinite(result.test_loss))
    base = fast.train(spec, data, parse_config_key("none"))
    assert not np.allclose(result.curves["train_loss"], base.curves["train_loss"])


@pytest.mark.slow
def test_repeat_r_does_not_depend_on_how_many_repeats_train(tiny):
    """docs/ARCHITECTURE.md, decision 3: initial weights, data order and noise are keyed by
    (seed, r), so the first repeats of a 2-repeat and a 3-repeat run are the same runs."""
    spec, data = tiny
    few = spec_module.load(spec.source, ["study.repeats=2", "model.batch_size=8"])
    many = spec_module.load(spec.source, ["study.repeats=3", "model.batch_size=8"])
    sites = "+".join(s.value for s in Site)
    config = parse_config_key(f"{sites}:0.2")
    a, b = fast.train(few, data, config), fast.train(many, data, config)
    np.testing.assert_allclose(a.curves["train_loss"], b.curves["train_loss"][:2], rtol=1e-6)
    np.testing.assert_allclose(a.test_loss, b.test_loss[:2], rtol=1e-6)
    assert not np.allclose(b.test_loss[2], b.test_loss[:2])


def test_weights_are_repeat_0s_final_parameters_and_predict_reproduces_its_scores(tiny):
    spec, data = tiny
    config = parse_config_key("hidden_pre:0.1")
    result, final = fast.train_with_weights(spec, data, config)
    assert result.weights is not None
    sizes = [data.n_features, *spec.model.hidden, data.n_outputs]
    assert [w.shape for w in result.weights] == [
        s for a, b in zip(sizes[:-1], sizes[1:]) for s in ((a, b), (b,))]
    for got, (kernel, bias) in zip(zip(result.weights[::2], result.weights[1::2]), final):
        assert got[0].dtype == np.float32
        assert np.array_equal(got[0], kernel[0]) and np.array_equal(got[1], bias[0])
    p = fast.predict(spec, data, result.weights, data.x_test)
    assert p.shape == (len(data.x_test),) and np.all((p >= 0) & (p <= 1))
    accuracy = np.mean((p > 0.5) == (data.y_test.ravel() > 0.5))
    assert accuracy == result.test_metric[0]
    # Another repeat's weights give other predictions: predict uses the weights it is given.
    other = [a[1] for pair in final for a in pair]
    assert not np.allclose(fast.predict(spec, data, other, data.x_test), p)


def test_engine_interface(tiny):
    assert fast.NAME == "fast"
    assert fast.check(tiny[0]) == []
    assert set(fast.SITES) == {s.value for s in Site}
