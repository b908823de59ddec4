"""The fast engine computes what Keras computes: real Keras, real TensorFlow, no mocks.

(a) without noise, from the same initial weights, the fast engine and Keras ``model.fit``
    agree after more than 100 steps;
(b) for every site and both kinds, one training step with a given noise tensor equals the
    Keras step with that noise; and the adam / sgd / rmsprop updates equal Keras's;
(c) the noise the engine draws has mean 0 and the specified σ, and is independent across
    repeats, steps, elements and streams;
(d) no noise reaches any evaluation, in either engine.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import keras
import numpy as np
import pytest
import tensorflow as tf

from search import spec as spec_module
from search.data import Dataset, load_dataset
from search.engine import fast, keras_ref
from search.engine._common import initial_weights, layer_sizes, learning_rate
from search.noise import NoiseConfig, Site, parse_config_key
from search.spec import StudySpec
from tests.conftest import TINY_STUDY

# Real Keras against the engine, step by step: minutes in all, so out of `scripts/test --fast`.
pytestmark = pytest.mark.slow

# --- tolerances -------------------------------------------------------------------------------
# After 100+ steps (test a). Both engines compute in float32, but not in the same order:
# XLA fuses and reorders the matmul and reduction sums that Keras's TF kernels run one op at
# a time, so each step differs by float32 rounding (one ulp of a weight of size 0.5 is 6e-8).
# Adam divides by sqrt(v) + 1e-7, which can amplify that rounding for parameters whose
# gradients are tiny, and differences accumulate over the steps. Measured on this machine:
# at most 6e-8 after 100 steps, 1.2e-7 after 300. 1e-5 (~170 ulps) leaves room for other
# CPUs and TensorFlow builds, yet is 100x smaller than one Adam step (lr = 1e-3): a semantic
# difference (a wrong β, ε in the wrong place, a missed bias correction, another batch)
# moves weights by ~lr per step and fails it.
MANY_STEPS_ATOL = 1e-5
# After one step (test b) the engines differ only by the rounding of one forward and backward
# pass: measured at most 6e-8 (one ulp). 2e-6 is 500x smaller than an Adam step (1e-3), and
# each test asserts that the given noise changed the step by more than 100x the tolerance.
ONE_STEP_ATOL = 2e-6

SIGMA = 0.3


def load(tmp_path_factory: pytest.TempPathFactory, *overrides: str) -> tuple[StudySpec, Dataset]:
    path = tmp_path_factory.mktemp("parity") / "tiny.toml"
    path.write_text(TINY_STUDY)
    spec = spec_module.load(path, list(overrides))
    return spec, load_dataset(spec)


def keras_weights(model: keras.Model) -> list[np.ndarray]:
    return [np.asarray(w) for w in model.get_weights()]


def fast_weights(params: Sequence[tf.Tensor | np.ndarray], r: int) -> list[np.ndarray]:
    return [np.asarray(p)[r] for p in params]


def flat_weights(weights: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    return [a for pair in weights for a in pair]


def assert_weights_close(got: list[np.ndarray], want: list[np.ndarray], atol: float) -> None:
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape, f"parameter {i}"
        np.testing.assert_allclose(g, w, rtol=0, atol=atol, err_msg=f"parameter {i}")


def epoch_order(seed: int, epoch: int, repeats: int, n: int) -> np.ndarray:
    # Threefry runs only under XLA on CPU (the engine always runs it there).
    order = tf.function(fast.epoch_order, jit_compile=True)
    return order(tf.constant(seed, tf.int64), tf.constant(epoch), repeats, n).numpy()


def max_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


# --- (a) many steps, no noise -----------------------------------------------------------------

@pytest.fixture(autouse=True)
def _fresh_keras():
    yield
    keras.backend.clear_session()


def test_no_noise_100_steps_of_model_fit_agree(tmp_path_factory):
    """20 training rows < batch 32: one batch per epoch, so 100 epochs are 100 steps and the
    data order cannot matter. This is the tutorial's path: ``model.fit`` with shuffling."""
    spec, data = load(tmp_path_factory, "model.hidden=[16]", "model.epochs=100",
                      "study.repeats=2", "study.record_every=50")
    start = initial_weights(layer_sizes(data, spec.model), 2, spec.study.seed)
    result, final = fast.train_with_weights(spec, data, parse_config_key("none"), start)
    for r in range(2):
        model = keras_ref.build_model(spec, data, parse_config_key("none"),
                                      [(k[r], b[r]) for k, b in start])
        model.fit(data.x_train, data.y_train, epochs=100, batch_size=32, shuffle=True,
                  verbose=0)
        got, want = fast_weights(flat_weights(final), r), keras_weights(model)
        assert max_diff(want, fast_weights(flat_weights(start), r)) > 100 * MANY_STEPS_ATOL
        assert_weights_close(got, want, MANY_STEPS_ATOL)
        test_loss, test_acc = keras_ref.clean_scores(model, data.x_test, data.y_test,
                                                     data.task, spec.metric)
        assert result.test_loss[r] == pytest.approx(test_loss, abs=1e-4)
        assert result.test_metric[r] == pytest.approx(test_acc)


@pytest.mark.slow
def test_no_noise_mini_batches_in_the_engines_order_agree(tmp_path_factory):
    """40 rows in batches of 16 (16, 16 and a smaller last batch of 8), 34 epochs = 102 steps.

    Keras is given the engine's per-epoch order, batched as ``model.fit`` batches
    (``tf.data`` batch with the remainder kept), so this checks the engine's mini-batches,
    padding mask and optimizer state across batches against Keras's."""
    spec, data = load(tmp_path_factory, "model.hidden=[16]", "model.epochs=34",
                      "study.repeats=1", "model.batch_size=16", "data.n_train=40",
                      "study.record_every=34")
    start = initial_weights(layer_sizes(data, spec.model), 1, spec.study.seed)
    _, final = fast.train_with_weights(spec, data, parse_config_key("none"), start)
    epochs = []
    for epoch in range(spec.model.epochs):
        order = epoch_order(spec.study.seed, epoch, 1, 40)[0]
        epochs.append(tf.data.Dataset.from_tensor_slices(
            (data.x_train[order], data.y_train[order])).batch(16))
    batches = epochs[0]
    for more in epochs[1:]:
        batches = batches.concatenate(more)
    model = keras_ref.build_model(spec, data, parse_config_key("none"),
                                  [(k[0], b[0]) for k, b in start])
    model.fit(batches, epochs=1, shuffle=False, verbose=0)  # the order is the engine's
    assert int(model.optimizer.iterations.numpy()) == 102
    assert_weights_close(fast_weights(flat_weights(final), 0), keras_weights(model),
                         MANY_STEPS_ATOL)


@pytest.mark.slow
def test_reference_engine_agrees_with_fast_engine_on_the_baseline(tmp_path_factory):
    """The two public ``train`` functions, end to end: same curves without noise."""
    spec, data = load(tmp_path_factory, "model.hidden=[8]", "model.epochs=30",
                      "study.repeats=2", "study.record_every=10", "study.engine='keras'")
    config = parse_config_key("none")
    ref, ours = keras_ref.train(spec, data, config), fast.train(spec, data, config)
    assert ref.curve_epochs == ours.curve_epochs == (10, 20, 30)
    for name in ("test_loss", "train_loss"):
        np.testing.assert_allclose(ref.curves[name], ours.curves[name], atol=1e-4)
    np.testing.assert_array_equal(ref.test_metric, ours.test_metric)
    assert not ref.diverged


# --- (b) one step with given noise ------------------------------------------------------------

class GivenNoise:
    """Standard-normal tensors fixed in advance, one per stream, shaped (R, …)."""

    def __init__(self, shapes: dict[str, tuple[int, ...]], seed: int = 7) -> None:
        rng = np.random.default_rng(seed)
        self.values = {name: rng.standard_normal(shape).astype(np.float32)
                       for name, shape in shapes.items()}
        self.used: list[str] = []

    def __call__(self, stream: str, shape: Sequence[int]) -> tf.Tensor:
        value = self.values[stream]
        assert tuple(shape) == value.shape, (stream, tuple(shape), value.shape)
        self.used.append(stream)
        return tf.constant(value)

    def repeat(self, stream: str, r: int) -> np.ndarray:
        return self.values[stream][r]


def stream_shapes(spec: StudySpec, data: Dataset, sites: Sequence[Site], R: int,
                  B: int) -> dict[str, tuple[int, ...]]:
    sizes = layer_sizes(data, spec.model)
    shapes: dict[str, tuple[int, ...]] = {}
    for site in sites:
        if site == Site.INPUT:
            shapes["input"] = (R, B, sizes[0])
        elif site in (Site.HIDDEN_PRE, Site.HIDDEN_POST):
            for i, width in enumerate(sizes[1:-1]):
                shapes[f"{site.value}/{i}"] = (R, B, width)
        elif site == Site.WEIGHTS:
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
                shapes[f"weights/{i}"] = (R, a, b)
        elif site == Site.GRADIENTS:
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
                shapes[f"gradients/{2 * i}"] = (R, a, b)
                shapes[f"gradients/{2 * i + 1}"] = (R, b)
        elif site == Site.TARGETS:
            outputs = data.n_outputs
            shapes["targets"] = (R, B, outputs)
    return shapes


def fast_step(spec: StudySpec, data: Dataset, config: NoiseConfig, noise: fast.NoiseSource,
              start: list[tuple[np.ndarray, np.ndarray]], step: int = 0) -> list[tf.Tensor]:
    """One step of the fast engine on the whole training set (one batch), from zero slots."""
    R = start[0][0].shape[0]
    cfg = fast.step_config(spec, data, config)
    params = [tf.constant(a) for a in flat_weights(start)]
    slots = ([tf.zeros_like(p) for p in params], [tf.zeros_like(p) for p in params])
    x = tf.broadcast_to(tf.constant(data.x_train), [R, *data.x_train.shape])
    y_float = fast.targets_as_float(cfg, tf.constant(data.y_train))
    y = tf.broadcast_to(y_float, [R, *y_float.shape])
    sigmas = {site: tf.constant(config.sigma(site), tf.float32) for site in Site}
    new, _, _ = fast.train_step(
        cfg, params, slots, tf.constant(step), x, y, None, sigmas, noise,
        tf.constant(learning_rate(spec.model), tf.float32),
        tf.constant(spec.model.momentum, tf.float32),
        tf.constant(spec.noise.gradient_gamma, tf.float32))
    return new


def perturb(value: np.ndarray, sigma: float, eps: np.ndarray, kind: str) -> np.ndarray:
    """The noise of docs/ARCHITECTURE.md ("Noise sites"), written apart from the engine."""
    if kind == "multiplicative":
        return value * (1.0 + sigma * eps)
    return value + sigma * eps


def keras_fit_one_step(model: keras.Model, x: np.ndarray, y: np.ndarray) -> None:
    model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 1


@pytest.fixture
def given_keras_noise(monkeypatch):
    """Make Keras's GaussianNoise / GaussianDropout draw given tensors.

    Both layers call ``keras.src.backend.random.normal(shape, mean, stddev, seed=layer's
    seed generator)``; the patched function returns ``mean + stddev * given`` for the
    layer that owns the seed generator, i.e. exactly what the layer would compute had the
    random generator produced ``given``.
    """
    import keras.src.backend as backend

    by_generator: dict[int, np.ndarray] = {}

    def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
        eps = by_generator[id(seed)]
        assert tuple(shape) == eps.shape
        return tf.cast(mean + stddev * tf.constant(eps, tf.float64), dtype or "float32")

    monkeypatch.setattr(backend.random, "normal", normal)

    def attach(model: keras.Model, streams: list[np.ndarray]) -> None:
        layers = [la for la in model.layers
                  if isinstance(la, (keras.layers.GaussianNoise, keras.layers.GaussianDropout))]
        assert len(layers) == len(streams)
        for layer, eps in zip(layers, streams):
            by_generator[id(layer.seed_generator)] = eps

    return attach


LAYER_SITES = [Site.INPUT, Site.HIDDEN_PRE, Site.HIDDEN_POST]
KINDS = ["additive", "multiplicative"]


@pytest.fixture(scope="module")
def two_layers(tmp_path_factory):
    # Two hidden layers of different widths: noise must go to the right layer.
    return load(tmp_path_factory, "model.hidden=[16, 8]", "study.repeats=2")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("site", LAYER_SITES, ids=lambda s: s.value)
def test_one_step_with_given_noise_on_a_layer_equals_keras(site, kind, two_layers,
                                                           given_keras_noise):
    spec, data = two_layers
    R, B = 2, len(data.x_train)
    config = NoiseConfig(((site, SIGMA),), kind)
    start = initial_weights(layer_sizes(data, spec.model), R, spec.study.seed)
    noise = GivenNoise(stream_shapes(spec, data, [site], R, B))
    ours = fast_step(spec, data, config, noise, start)
    assert sorted(noise.used) == sorted(noise.values)  # every stream was drawn, once
    clean = fast_step(spec, data, parse_config_key("none"), noise, start)
    for r in range(R):
        model = keras_ref.build_model(spec, data, config, [(k[r], b[r]) for k, b in start])
        given_keras_noise(model, [noise.repeat(s, r) for s in sorted(noise.values)])
        keras_fit_one_step(model, data.x_train, data.y_train)
        assert_weights_close(fast_weights(ours, r), keras_weights(model), ONE_STEP_ATOL)
        # Not vacuous: the noise changed the step by far more than the tolerance.
        assert max_diff(fast_weights(ours, r), fast_weights(clean, r)) > 100 * ONE_STEP_ATOL


def test_one_step_with_input_and_hidden_noise_together_equals_keras(two_layers,
                                                                    given_keras_noise):
    spec, data = two_layers
    R, B = 2, len(data.x_train)
    config = parse_config_key("input+hidden_pre+hidden_post:input=0.1,hidden_pre=0.2,"
                              "hidden_post=0.3")
    start = initial_weights(layer_sizes(data, spec.model), R, spec.study.seed)
    noise = GivenNoise(stream_shapes(spec, data, config.sites, R, B))
    ours = fast_step(spec, data, config, noise, start)
    # Keras's layer order: input, then per hidden layer pre, post.
    order = ["input", "hidden_pre/0", "hidden_post/0", "hidden_pre/1", "hidden_post/1"]
    for r in range(R):
        model = keras_ref.build_model(spec, data, config, [(k[r], b[r]) for k, b in start])
        given_keras_noise(model, [noise.repeat(s, r) for s in order])
        keras_fit_one_step(model, data.x_train, data.y_train)
        assert_weights_close(fast_weights(ours, r), keras_weights(model), ONE_STEP_ATOL)


def keras_loss(task: str) -> keras.losses.Loss:
    return {"binary": keras.losses.BinaryCrossentropy(),
            "multiclass": keras.losses.CategoricalCrossentropy(),
            "regression": keras.losses.MeanSquaredError()}[task]


def targets_for_keras(data: Dataset) -> np.ndarray:
    if data.task == "multiclass":
        return np.eye(data.n_classes, dtype=np.float32)[data.y_train]
    return data.y_train


def keras_step_by_hand(spec: StudySpec, data: Dataset, weights: list[tuple[np.ndarray, ...]],
                       kernel_noise: list[np.ndarray] | None = None,
                       grad_noise: list[np.ndarray] | None = None, step: int = 0,
                       kind: str = "additive", sigma: float = SIGMA) -> list[np.ndarray]:
    """One step of a Keras model with a Keras optimizer, noise added where Keras has no layer.

    Weights: the forward pass runs on the perturbed kernels W̃ and the update is applied to
    the clean ones W, with the chain rule's dW̃/dW: 1 (additive), 1 + σε (multiplicative).
    Gradients: annealed σ_t = σ / (1 + t)^(γ/2) at step t.
    """
    model = keras_ref.build_model(spec, data, parse_config_key("none"), weights)
    optimizer = keras_ref.make_optimizer(spec)
    variables = model.trainable_variables
    optimizer.build(variables)
    optimizer.iterations.assign(step)
    kernels = [layer.kernel for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    loss_fn = keras_loss(data.task)
    x, y = tf.constant(data.x_train), tf.constant(targets_for_keras(data))
    clean = [k.numpy() for k in kernels]

    @tf.function  # graph mode, as in model.fit: the loss reads the logits behind the sigmoid
    def gradients() -> list[tf.Tensor]:
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        return tape.gradient(loss, variables)

    if kernel_noise is not None:
        for k, value, eps in zip(kernels, clean, kernel_noise):
            k.assign(perturb(value, sigma, eps, kind))
    grads = gradients()
    for k, value in zip(kernels, clean):
        k.assign(value)
    if kernel_noise is not None and kind == "multiplicative":
        factor = {id(k): 1.0 + sigma * eps for k, eps in zip(kernels, kernel_noise)}
        grads = [g * factor[id(v)] if id(v) in factor else g for g, v in zip(grads, variables)]
    if grad_noise is not None:
        sigma_t = sigma / (1.0 + step) ** (spec.noise.gradient_gamma / 2)
        grads = [perturb(g.numpy(), sigma_t, eps, kind) for g, eps in zip(grads, grad_noise)]
    optimizer.apply_gradients(zip(grads, variables))
    return keras_weights(model)


@pytest.mark.parametrize("kind", KINDS)
def test_one_step_with_given_weight_noise_equals_keras(kind, tmp_path_factory):
    """SGD, as for gradient noise: Adam's first update, about lr · sign(g), cannot see the
    factor 1 + σε (almost always > 0) that multiplicative noise puts on a kernel's gradient;
    with Adam this test passed while the engine dropped it (before engine version 4)."""
    spec, data = load(tmp_path_factory, "model.hidden=[16, 8]", "study.repeats=2",
                      "model.optimizer='sgd'")
    R, B = 2, len(data.x_train)
    config = NoiseConfig(((Site.WEIGHTS, SIGMA),), kind)
    start = initial_weights(layer_sizes(data, spec.model), R, spec.study.seed)
    noise = GivenNoise(stream_shapes(spec, data, [Site.WEIGHTS], R, B))
    ours = fast_step(spec, data, config, noise, start)
    clean = fast_step(spec, data, parse_config_key("none"), noise, start)
    for r in range(R):
        eps = [noise.repeat(f"weights/{i}", r) for i in range(len(start))]
        want = keras_step_by_hand(spec, data, [(k[r], b[r]) for k, b in start],
                                  kernel_noise=eps, kind=kind)
        assert_weights_close(fast_weights(ours, r), want, ONE_STEP_ATOL)
        assert max_diff(fast_weights(ours, r), fast_weights(clean, r)) > 100 * ONE_STEP_ATOL


@pytest.mark.parametrize("step", [0, 7])
@pytest.mark.parametrize("kind", KINDS)
def test_one_step_with_given_gradient_noise_equals_keras(kind, step, tmp_path_factory):
    """SGD with momentum: from zero slots Adam's and RMSprop's first update is about
    lr · sign(g), which multiplicative noise cannot change, so it would prove nothing. At
    step 7 it checks the annealing σ_t = σ / (1 + t)^(γ/2)."""
    spec, data = load(tmp_path_factory, "model.hidden=[16, 8]", "study.repeats=2",
                      "model.optimizer='sgd'", "model.momentum=0.9")
    R, B = 2, len(data.x_train)
    config = NoiseConfig(((Site.GRADIENTS, SIGMA),), kind)
    start = initial_weights(layer_sizes(data, spec.model), R, spec.study.seed)
    noise = GivenNoise(stream_shapes(spec, data, [Site.GRADIENTS], R, B))
    ours = fast_step(spec, data, config, noise, start, step=step)
    clean = fast_step(spec, data, parse_config_key("none"), noise, start, step=step)
    for r in range(R):
        eps = [noise.repeat(f"gradients/{i}", r) for i in range(2 * len(start))]
        want = keras_step_by_hand(spec, data, [(k[r], b[r]) for k, b in start],
                                  grad_noise=eps, step=step, kind=kind)
        assert_weights_close(fast_weights(ours, r), want, ONE_STEP_ATOL)
        assert max_diff(fast_weights(ours, r), fast_weights(clean, r)) > 100 * ONE_STEP_ATOL


CIRCLES = 'dataset = "circles"\nn_samples = 60\nnoise = 0.1\n'
TASK_DATA = {
    "binary": CIRCLES,
    "multiclass": 'dataset = "blobs"\nn_samples = 60\ncenters = 3\n',
    "regression": 'dataset = "friedman1"\nn_samples = 60\nnoise = 0.1\nscale = "standard"\n'
                  'scale_target = "standard"\n',
}


def load_task(tmp_path_factory, task: str, *overrides: str) -> tuple[StudySpec, Dataset]:
    assert CIRCLES in TINY_STUDY
    path = tmp_path_factory.mktemp("task") / "task.toml"
    path.write_text(TINY_STUDY.replace(CIRCLES, TASK_DATA[task]))
    spec = spec_module.load(path, list(overrides))
    return spec, load_dataset(spec)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("task", sorted(TASK_DATA))
def test_one_step_with_given_target_noise_equals_keras_fit_on_noisy_targets(
        kind, task, tmp_path_factory):
    # SGD: Adam's first step is about lr · sign(g), which target noise seldom changes.
    spec, data = load_task(tmp_path_factory, task, "model.hidden=[16, 8]", "study.repeats=2",
                           "model.optimizer='sgd'", "model.momentum=0.9")
    assert data.task == task
    R, B = 2, len(data.x_train)
    config = NoiseConfig(((Site.TARGETS, SIGMA),), kind)
    start = initial_weights(layer_sizes(data, spec.model), R, spec.study.seed)
    noise = GivenNoise(stream_shapes(spec, data, [Site.TARGETS], R, B))
    ours = fast_step(spec, data, config, noise, start)
    clean = fast_step(spec, data, parse_config_key("none"), noise, start)
    for r in range(R):
        y = perturb(targets_for_keras(data), SIGMA, noise.repeat("targets", r), kind)
        if task != "regression":
            y = np.clip(y, 0.0, 1.0)  # soft targets stay probabilities
        model = keras_ref.build_model(spec, data, parse_config_key("none"),
                                      [(k[r], b[r]) for k, b in start])
        if task == "multiclass":  # soft targets need the dense form of the same loss
            model.compile(loss="categorical_crossentropy", optimizer=model.optimizer)
        keras_fit_one_step(model, data.x_train, y)
        assert_weights_close(fast_weights(ours, r), keras_weights(model), ONE_STEP_ATOL)
        assert max_diff(fast_weights(ours, r), fast_weights(clean, r)) > 100 * ONE_STEP_ATOL


OPTIMIZER_CASES = {
    # optimizer, momentum, activation, task: together every optimizer, activation and task.
    "adam-relu-binary": ("adam", 0.0, "relu", "binary"),
    "sgd-momentum-tanh-multiclass": ("sgd", 0.9, "tanh", "multiclass"),
    "rmsprop-elu-regression": ("rmsprop", 0.0, "elu", "regression"),
    "sgd-sigmoid-binary": ("sgd", 0.0, "sigmoid", "binary"),
    "rmsprop-tanh-binary": ("rmsprop", 0.0, "tanh", "binary"),
}


@pytest.mark.parametrize("case", sorted(OPTIMIZER_CASES))
def test_optimizer_updates_over_five_steps_equal_keras(case, tmp_path_factory):
    """Five steps, so that momentum, Adam's moments and RMSprop's average carry over."""
    optimizer, momentum, activation, task = OPTIMIZER_CASES[case]
    spec, data = load_task(tmp_path_factory, task, "model.hidden=[16]", "study.repeats=2",
                           "model.epochs=5", "study.record_every=5",
                           f"model.optimizer='{optimizer}'", f"model.momentum={momentum}",
                           f"model.activation='{activation}'")
    start = initial_weights(layer_sizes(data, spec.model), 2, spec.study.seed)
    _, final = fast.train_with_weights(spec, data, parse_config_key("none"), start)
    for r in range(2):
        model = keras_ref.build_model(spec, data, parse_config_key("none"),
                                      [(k[r], b[r]) for k, b in start])
        model.fit(data.x_train, data.y_train, batch_size=32, epochs=5, verbose=0)
        assert int(model.optimizer.iterations.numpy()) == 5
        want = keras_weights(model)
        assert max_diff(want, fast_weights(flat_weights(start), r)) > 100 * ONE_STEP_ATOL
        # Five steps of rounding, a little more than one step's.
        assert_weights_close(fast_weights(flat_weights(final), r), want, 5 * ONE_STEP_ATOL)


# --- the compiled program runs the steps above -----------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_compiled_program_is_its_steps_with_the_engines_noise(kind, tmp_path_factory):
    """Every site at once, 40 rows in batches of 16, 2 epochs: the XLA program equals a
    Python loop over ``train_step`` fed with ``epoch_order`` batches and the engine's RNG
    keyed by step. With the step parity above, the whole program computes Keras's steps."""
    spec, data = load(tmp_path_factory, "model.hidden=[8]", "model.epochs=2",
                      "study.repeats=2", "model.batch_size=16", "data.n_train=40",
                      "study.record_every=1")
    sites = "+".join(s.value for s in Site)
    config = NoiseConfig(parse_config_key(f"{sites}:0.2").sigmas, kind)
    start = initial_weights(layer_sizes(data, spec.model), 2, spec.study.seed)
    _, final = fast.train_with_weights(spec, data, config, start)

    cfg = fast.step_config(spec, data, config)
    params = [tf.constant(a) for a in flat_weights(start)]
    slots = ([tf.zeros_like(p) for p in params], [tf.zeros_like(p) for p in params])
    sigmas = {site: tf.constant(config.sigma(site), tf.float32) for site in Site}
    seed = tf.constant(spec.study.seed, tf.int64)
    y_all = fast.targets_as_float(cfg, tf.constant(data.y_train))

    @tf.function(jit_compile=True)  # threefry runs under XLA only, as in the engine
    def one_step(params, slots, step, xb, yb, mask):  # type: ignore[no-untyped-def]
        return fast.train_step(cfg, params, slots, step, xb, yb, mask, sigmas,
                               fast._rng_noise(seed, step), tf.constant(learning_rate(spec.model)),
                               tf.constant(0.0), tf.constant(spec.noise.gradient_gamma))

    step = 0
    for epoch in range(2):
        order = epoch_order(spec.study.seed, epoch, 2, 40)
        for k in range(3):
            idx = order[:, k * 16:(k + 1) * 16]
            real = idx.shape[1]
            # The engine pads the last batch to 16 rows (row 0, masked out of the loss).
            idx = np.pad(idx, ((0, 0), (0, 16 - real)))
            mask = tf.constant([1.0] * real + [0.0] * (16 - real))
            params, slots, _ = one_step(params, slots, tf.constant(step),
                                        tf.gather(data.x_train, idx), tf.gather(y_all, idx),
                                        mask)
            step += 1
    for got, want in zip(flat_weights(final), params):
        np.testing.assert_allclose(got, want.numpy(), rtol=0, atol=1e-5)


# --- (c) the noise drawn ----------------------------------------------------------------------

@functools.cache
def _draw_program(stream: str, shape: tuple[int, ...]):  # type: ignore[no-untyped-def]
    # As in the engine: threefry runs under XLA only. One program per stream and shape.
    return tf.function(lambda seed, step: fast._rng_noise(seed, step)(stream, shape),
                       jit_compile=True)


def draws(stream: str, shape: Sequence[int], seed: int = 1, step: int = 0) -> np.ndarray:
    """What the engine's noise source gives ``stream`` at ``step``."""
    program = _draw_program(stream, tuple(shape))
    return program(tf.constant(seed, tf.int64), tf.constant(step)).numpy().astype(np.float64)


def correlation_z(vectors: np.ndarray) -> np.ndarray:
    """Off-diagonal correlations of the rows of ``vectors``, times sqrt(n): ~N(0, 1) each
    when the rows are independent."""
    c = np.corrcoef(vectors)
    off = c[~np.eye(len(c), dtype=bool)]
    return off * np.sqrt(vectors.shape[1])


def assert_uncorrelated(vectors: np.ndarray) -> None:
    z = correlation_z(vectors)
    # Each z ~ N(0, 1): none beyond 5.5 (p ~ 4e-8 each), and their mean square near 1.
    assert np.max(np.abs(z)) < 5.5
    k = z.size / 2  # each pair counted twice
    assert abs(np.mean(z**2) - 1) < 6 * np.sqrt(2 / k)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("sigma", [0.01, 0.3, 2.0])
def test_drawn_noise_has_mean_zero_and_the_specified_sigma(kind, sigma):
    from scipy import stats

    eps = draws("hidden_pre/0", (30, 32, 500))  # the tutorial's hidden layer, 30 repeats
    h = 1.5
    noisy = fast._perturb(tf.constant(h), tf.constant(sigma), tf.constant(eps, tf.float32),
                          kind).numpy().astype(np.float64)
    noise = noisy - h if kind == "additive" else noisy / h - 1.0  # σ·ε either way
    n = noise.size
    assert abs(noise.mean()) < 5 * sigma / np.sqrt(n)
    assert abs(noise.std() / sigma - 1) < 5 / np.sqrt(2 * n)
    assert stats.kstest(noise.ravel()[:20000] / sigma, "norm").pvalue > 1e-4
    # The tails too: the share beyond 3σ is the normal's (binomial sd ~36 of ~1300 here).
    beyond = np.count_nonzero(np.abs(noise) > 3 * sigma)
    expected = n * 2 * stats.norm.sf(3)
    assert abs(beyond - expected) < 5 * np.sqrt(expected)


def test_drawn_noise_is_independent_across_repeats_steps_elements_and_streams():
    R, B, H = 30, 32, 100
    eps = draws("hidden_pre/0", (R, B, H))
    assert_uncorrelated(eps.reshape(R, -1))  # across repeats
    steps = np.stack([draws("hidden_pre/0", (R, B, H), step=t).ravel() for t in range(20)])
    assert_uncorrelated(steps)  # across steps
    # Across elements: neighbours along every axis (row, unit) and a far-apart lag.
    flat = eps.ravel()
    for lag in (1, H, B * H, 997):
        r = np.corrcoef(flat[:-lag], flat[lag:])[0, 1]
        assert abs(r) * np.sqrt(flat.size - lag) < 5
    # Across streams: sites and layers draw their own numbers at the same step.
    streams = ["input", "hidden_pre/0", "hidden_pre/1", "hidden_post/0", "weights/0",
               "gradients/0", "targets"]
    assert_uncorrelated(np.stack([draws(s, (R, B, H)).ravel() for s in streams]))
    # Across seeds, and the same seed and step give the same numbers.
    assert_uncorrelated(np.stack([draws("input", (R, B, H), seed=s).ravel() for s in range(5)]))
    assert np.array_equal(draws("input", (4, 5), step=3), draws("input", (4, 5), step=3))


def test_data_order_is_a_fresh_permutation_per_repeat_and_epoch():
    orders = np.stack([epoch_order(1, e, 30, 40) for e in range(3)])
    assert all(sorted(o) == list(range(40)) for o in orders.reshape(-1, 40))
    assert len({tuple(o) for o in orders.reshape(-1, 40)}) == 90


# --- (d) no noise in evaluation ---------------------------------------------------------------

def initial_clean_scores(spec: StudySpec, data: Dataset, config: NoiseConfig
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    cfg = fast.step_config(spec, data, config)
    start = initial_weights(layer_sizes(data, spec.model), spec.study.repeats, spec.study.seed)
    params = [tf.constant(a) for a in flat_weights(start)]
    test = fast.evaluate(cfg, params, tf.constant(data.x_test), tf.constant(data.y_test),
                         spec.metric)
    train = fast.evaluate(cfg, params, tf.constant(data.x_train), tf.constant(data.y_train),
                          spec.metric)
    return test[0].numpy(), test[1].numpy(), train[0].numpy(), train[1].numpy()


@pytest.mark.parametrize("kind", KINDS)
def test_no_noise_reaches_any_evaluation_of_the_fast_engine(kind, tmp_path_factory):
    """σ = 3 at every site with a learning rate of 1e-30, so training cannot move the weights:
    every recorded evaluation must then be the clean evaluation of the initial weights."""
    spec, data = load(tmp_path_factory, "model.hidden=[16]", "model.epochs=6",
                      "study.record_every=2", "model.learning_rate=1e-30")
    sites = "+".join(s.value for s in Site)
    config = NoiseConfig(parse_config_key(f"{sites}:3").sigmas, kind)
    result = fast.train(spec, data, config)
    test_loss, test_metric, train_loss, train_metric = initial_clean_scores(spec, data, config)
    for name, want in (("test_loss", test_loss), ("train_loss", train_loss),
                       ("test_metric", test_metric), ("train_metric", train_metric)):
        curve = result.curves[name]
        np.testing.assert_allclose(curve, np.repeat(want[:, None], curve.shape[1], axis=1),
                                   rtol=1e-6, atol=1e-6, err_msg=name)
    # Not vacuous: a noisy pass over the same weights gives a very different loss.
    cfg = fast.step_config(spec, data, config)
    start = initial_weights(layer_sizes(data, spec.model), spec.study.repeats, spec.study.seed)
    x = tf.broadcast_to(tf.constant(data.x_train), [spec.study.repeats, *data.x_train.shape])
    noisy = tf.function(
        lambda params: fast.forward(cfg, params, x, {s: tf.constant(3.0) for s in Site},
                                    fast._rng_noise(tf.constant(1, tf.int64), tf.constant(0))),
        jit_compile=True)([tf.constant(a) for a in flat_weights(start)])
    clean = fast.forward(cfg, [tf.constant(a) for a in flat_weights(start)], x)
    assert np.max(np.abs(noisy.numpy() - clean.numpy())) > 0.1


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_no_noise_reaches_any_evaluation_of_the_keras_engine(kind, tmp_path_factory):
    spec, data = load(tmp_path_factory, "model.hidden=[16]", "model.epochs=4",
                      "study.record_every=2", "model.learning_rate=1e-30", "study.repeats=2",
                      "study.engine='keras'")
    config = NoiseConfig(parse_config_key("input+hidden_pre+hidden_post:1").sigmas, kind)
    result = keras_ref.train(spec, data, config)
    test_loss, test_metric, train_loss, train_metric = initial_clean_scores(spec, data, config)
    for name, want in (("test_loss", test_loss), ("train_loss", train_loss),
                       ("test_metric", test_metric), ("train_metric", train_metric)):
        curve = result.curves[name]
        np.testing.assert_allclose(curve, np.repeat(want[:, None], curve.shape[1], axis=1),
                                   rtol=1e-5, atol=1e-5, err_msg=name)
