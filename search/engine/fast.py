"""The fast engine: all repeats of one configuration as one batched model, one XLA program.

Why it is fast (docs/ARCHITECTURE.md, decision 1): the repeat index is a leading axis on
every weight, so R models train in the same matmuls; the whole epoch loop is
a ``tf.while_loop`` inside one ``tf.function(jit_compile=True)``, so Python
never runs per epoch; and the program is compiled once per model shape and
set of noise sites, with σ, learning rate and seed passed as tensors, so every
σ of a placement reuses it.

Why it is right (decision 2): it computes Keras's training step. Dense is
``x @ W + b``; losses are Keras's (sigmoid / softmax cross-entropy from logits,
which is what Keras uses when the output activation is sigmoid or softmax;
MSE), reduced as the mean over the batch; optimizers follow keras/src/optimizers
line by line; mini-batches are Keras's (a fresh shuffle per epoch, a smaller last
batch). ``tests/test_parity.py`` checks this against real Keras.

Noise (decision 3) comes from stateless RNG keyed by (seed, repeat, stream, step),
where a stream is a site (and layer); so every configuration of a study sees the same
standard-normal draws, scaled by its own σ, and the same data order (keyed by (seed,
repeat, epoch)), and repeat r is the same run however many repeats train with it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf
from scipy.special import expit, softmax

from search.data import Dataset
from search.engine._common import (
    ADAM_BETA_1,
    ADAM_BETA_2,
    CURVE_NAMES,
    EPSILON,
    RMSPROP_RHO,
    TrainResult,
    initial_weights,
    layer_sizes,
    learning_rate,
    record_epochs,
)
from search.noise import NoiseConfig, Site
from search.spec import StudySpec

# One tf.function per program key is intended, not a retracing problem.
tf.get_logger().setLevel("ERROR")

NAME = "fast"
# Every noise site: the engine draws its own noise, so no site depends on a Keras layer.
SITES: tuple[str, ...] = tuple(site.value for site in Site)

ACTIVATIONS: dict[str, Callable[[tf.Tensor], tf.Tensor]] = {
    "relu": tf.nn.relu,
    "tanh": tf.math.tanh,
    "sigmoid": tf.math.sigmoid,
    "elu": tf.nn.elu,
}

# A noise source maps (stream name, shape) to standard-normal draws. The engine's own
# source is stateless RNG keyed by step; parity tests pass given tensors instead.
NoiseSource = Callable[[str, Sequence[int]], tf.Tensor]

# Threefry: a counter-based generator like Philox, but 4x faster in XLA on CPU here, where
# drawing the noise is most of the cost of a noisy trial.
RNG_ALGORITHM = "threefry"
_SHUFFLE_STREAM = 3
_STREAM_BASES = {"input": 1, "targets": 2, "hidden_pre": 16, "hidden_post": 48, "weights": 80,
                 "gradients": 112}


def stream_id(stream: str) -> int:
    """'hidden_pre/1' -> a small integer, distinct for every site and layer."""
    site, _, index = stream.partition("/")
    return _STREAM_BASES[site] + (int(index) if index else 0)


@dataclass(frozen=True)
class StepConfig:
    """Everything that shapes the compiled program (σ and rates are tensors, not here)."""

    activation: str
    task: str  # binary | multiclass | regression
    n_outputs: int
    optimizer: str
    sites: frozenset[Site]
    kind: str


def _perturb(h: tf.Tensor, sigma: tf.Tensor, eps: tf.Tensor, kind: str) -> tf.Tensor:
    if kind == "multiplicative":
        return h * (1.0 + sigma * eps)  # h · N(1, σ²), as Keras GaussianDropout
    return h + sigma * eps  # h + N(0, σ²), as Keras GaussianNoise


def forward(
    cfg: StepConfig,
    params: Sequence[tf.Tensor],
    x: tf.Tensor,
    sigmas: dict[Site, tf.Tensor] | None = None,
    noise: NoiseSource | None = None,
) -> tf.Tensor:
    """Logits (R, B, outputs). With ``noise`` None the pass is clean (evaluation).

    ``params`` is [W0, b0, W1, b1, ...] with kernels (R, in, out); ``x`` is
    (R, B, features) or, for a clean pass, (B, features) shared by all repeats.
    """
    active = cfg.sites if noise is not None else frozenset()
    sig = sigmas or {}
    act = ACTIVATIONS[cfg.activation]
    h = x
    if Site.INPUT in active:
        h = _perturb(h, sig[Site.INPUT], noise("input", h.shape), cfg.kind)  # type: ignore[misc]
    n_layers = len(params) // 2
    for layer in range(n_layers):
        kernel, bias = params[2 * layer], params[2 * layer + 1]
        if Site.WEIGHTS in active:
            noisy = _perturb(kernel, sig[Site.WEIGHTS], noise(f"weights/{layer}", kernel.shape),  # type: ignore[misc]
                             cfg.kind)
            # The gradient with respect to the noisy kernel goes to the clean kernel.
            kernel = kernel + tf.stop_gradient(noisy - kernel)
        z = tf.matmul(h, kernel) + bias[:, None, :]
        if layer == n_layers - 1:
            return z
        if Site.HIDDEN_PRE in active:
            z = _perturb(z, sig[Site.HIDDEN_PRE], noise(f"hidden_pre/{layer}", z.shape), cfg.kind)  # type: ignore[misc]
        h = act(z)
        if Site.HIDDEN_POST in active:
            h = _perturb(h, sig[Site.HIDDEN_POST], noise(f"hidden_post/{layer}", h.shape),  # type: ignore[misc]
                         cfg.kind)
    raise AssertionError("a model has at least one layer")


def targets_as_float(cfg: StepConfig, y: tf.Tensor) -> tf.Tensor:
    """Binary and regression targets are already (…, 1) floats; classes become one-hot."""
    if cfg.task == "multiclass":
        return tf.one_hot(tf.cast(y, tf.int32), cfg.n_outputs, dtype=tf.float32)
    return tf.cast(y, tf.float32)


def per_sample_loss(cfg: StepConfig, logits: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """Keras's loss per sample, (R, B); ``y`` as from targets_as_float (maybe soft)."""
    if cfg.task == "binary":
        losses = tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=logits)
        return tf.reduce_mean(losses, axis=-1)
    if cfg.task == "multiclass":
        return tf.nn.softmax_cross_entropy_with_logits(labels=y, logits=logits)
    return tf.reduce_mean(tf.square(logits - y), axis=-1)


def noisy_targets(cfg: StepConfig, y: tf.Tensor, sigma: tf.Tensor, eps: tf.Tensor) -> tf.Tensor:
    noisy = _perturb(y, sigma, eps, cfg.kind)
    if cfg.task == "regression":
        return noisy
    return tf.clip_by_value(noisy, 0.0, 1.0)  # soft targets stay probabilities


def apply_update(
    cfg: StepConfig,
    params: Sequence[tf.Tensor],
    grads: Sequence[tf.Tensor],
    slots: tuple[Sequence[tf.Tensor], Sequence[tf.Tensor]],
    step: tf.Tensor,
    lr: tf.Tensor,
    momentum: tf.Tensor,
) -> tuple[list[tf.Tensor], tuple[list[tf.Tensor], list[tf.Tensor]]]:
    """One optimizer update, transcribed from keras/src/optimizers (Keras 3)."""
    new_params, new_a, new_b = [], [], []
    for p, g, a, b in zip(params, grads, slots[0], slots[1]):
        if cfg.optimizer == "adam":
            local_step = tf.cast(step + 1, tf.float32)
            alpha = lr * tf.sqrt(1.0 - ADAM_BETA_2**local_step) / (1.0 - ADAM_BETA_1**local_step)
            a = a + (g - a) * (1.0 - ADAM_BETA_1)
            b = b + (tf.square(g) - b) * (1.0 - ADAM_BETA_2)
            p = p - (a * alpha) / (tf.sqrt(b) + EPSILON)
        elif cfg.optimizer == "rmsprop":
            a = RMSPROP_RHO * a + (1.0 - RMSPROP_RHO) * tf.square(g)
            p = p - lr * g / tf.sqrt(a + EPSILON)
        else:  # sgd; with momentum 0 this is exactly p - lr * g
            a = momentum * a - lr * g
            p = p + a
        new_params.append(p)
        new_a.append(a)
        new_b.append(b)
    return new_params, (new_a, new_b)


def train_step(
    cfg: StepConfig,
    params: Sequence[tf.Tensor],
    slots: tuple[Sequence[tf.Tensor], Sequence[tf.Tensor]],
    step: tf.Tensor,
    x: tf.Tensor,
    y: tf.Tensor,
    mask: tf.Tensor | None,
    sigmas: dict[Site, tf.Tensor],
    noise: NoiseSource,
    lr: tf.Tensor,
    momentum: tf.Tensor,
    gamma: tf.Tensor,
) -> tuple[list[tf.Tensor], tuple[list[tf.Tensor], list[tf.Tensor]], tf.Tensor]:
    """One noisy training step of all repeats; returns params, slots and loss per repeat (R,).

    ``x`` (R, B, features), ``y`` (R, B, …) as from targets_as_float; ``mask`` (B,)
    marks the real rows of a padded last batch (None: all real).
    """
    if Site.TARGETS in cfg.sites:
        y = noisy_targets(cfg, y, sigmas[Site.TARGETS], noise("targets", y.shape))
    params = list(params)
    with tf.GradientTape() as tape:
        tape.watch(params)
        losses = per_sample_loss(cfg, forward(cfg, params, x, sigmas, noise), y)
        if mask is None:
            loss = tf.reduce_mean(losses, axis=1)
        else:
            loss = tf.reduce_sum(losses * mask, axis=1) / tf.reduce_sum(mask)
        total = tf.reduce_sum(loss)  # repeats are independent: d total / d θ_r = d loss_r / d θ_r
    grads = tape.gradient(total, params)
    if Site.GRADIENTS in cfg.sites:
        # Annealed (Neelakantan et al. 2015): σ_t² = σ² / (1 + t)^γ.
        sigma_t = sigmas[Site.GRADIENTS] / tf.pow(1.0 + tf.cast(step, tf.float32), gamma / 2.0)
        grads = [_perturb(g, sigma_t, noise(f"gradients/{i}", g.shape), cfg.kind)
                 for i, g in enumerate(grads)]
    new_params, new_slots = apply_update(cfg, params, grads, slots, step, lr, momentum)
    return new_params, new_slots, loss


def evaluate(cfg: StepConfig, params: Sequence[tf.Tensor], x: tf.Tensor, y: tf.Tensor,
             metric: str) -> tuple[tf.Tensor, tf.Tensor]:
    """Clean loss and metric per repeat on a whole set: ((R,), (R,))."""
    logits = forward(cfg, params, x)
    y_true = tf.broadcast_to(targets_as_float(cfg, y)[None], tf.shape(logits))
    loss = tf.reduce_mean(per_sample_loss(cfg, logits, y_true), axis=1)
    if cfg.task == "binary":
        hit = tf.cast(tf.cast(logits > 0.0, tf.float32) == y_true, tf.float32)  # p > 0.5
        return loss, tf.reduce_mean(hit, axis=[1, 2])
    if cfg.task == "multiclass":
        hit = tf.cast(tf.argmax(logits, axis=-1, output_type=tf.int32) == tf.cast(y, tf.int32),
                      tf.float32)
        return loss, tf.reduce_mean(hit, axis=1)
    mse = tf.reduce_mean(tf.square(logits - y_true), axis=[1, 2])
    if metric == "mse":
        return loss, mse
    if metric == "rmse":
        return loss, tf.sqrt(mse)
    ss_res = tf.reduce_sum(tf.square(logits - y_true), axis=1)  # (R, outputs)
    ss_tot = tf.reduce_sum(tf.square(y_true - tf.reduce_mean(y_true, axis=1, keepdims=True)),
                           axis=1)
    return loss, tf.reduce_mean(1.0 - ss_res / ss_tot, axis=-1)  # r2, averaged over outputs


_MASK32 = 0xFFFFFFFF


def rng_key(seed: tf.Tensor, stream: int, counter: tf.Tensor, repeat: int = 0) -> tf.Tensor:
    """The stateless-RNG key, shape (2,), of one repeat's stream (a site and layer, or the
    data order) at one counter (the step, or the epoch).

    Threefry reads only the low 32 bits of each key word (tests/test_parity.py checks that
    streams differ), so nothing may live in the high bits: the first word mixes the seed
    with (stream, repeat), the second is the counter. Both multipliers are odd, so for one
    seed every (stream < 256, repeat) gets its own first word, and every seed its own word
    for one (stream, repeat).
    """
    stream = stream + 256 * repeat
    seed32 = tf.bitwise.bitwise_and(tf.cast(seed, tf.int64), _MASK32)
    # seed32 · 0x9E3779B1 mod 2^32 in 16-bit halves, so that no product overflows int64.
    lo, hi = tf.bitwise.bitwise_and(seed32, 0xFFFF), tf.bitwise.right_shift(seed32, 16)
    mixed = lo * 0x9E3779B1 + tf.bitwise.left_shift(
        tf.bitwise.bitwise_and(hi * 0x9E3779B1, 0xFFFF), 16)
    word = tf.bitwise.bitwise_and(mixed + stream * 0x85EBCA6B, _MASK32)
    return tf.stack([word, tf.cast(counter, tf.int64)])


def standard_normal(shape: Sequence[int], key: tf.Tensor) -> tf.Tensor:
    """N(0, 1) draws by the inverse CDF of uniform ones: z = √2 · erfinv(2u − 1).

    In XLA on CPU this is 2.5x faster than ``tf.random.stateless_normal`` (Box–Muller, with
    a log, a sine and a cosine per pair), and drawing noise is most of a noisy trial's time.
    The uniforms are k · 2^-23; shifting 2u − 1 by 2^-23 puts them on the midpoints of that
    grid, so it is symmetric about 0 and never ±1: |z| <= 5.4, as float32 Box–Muller's
    tails also end near 5.6σ.
    """
    u = tf.random.stateless_uniform(shape, seed=key, dtype=tf.float32, alg=RNG_ALGORITHM)
    return math.sqrt(2.0) * tf.math.erfinv(2.0 * u - 1.0 + 2.0**-23)


def _rng_noise(seed: tf.Tensor, step: tf.Tensor) -> NoiseSource:
    def draw(stream: str, shape: Sequence[int]) -> tf.Tensor:
        # Shapes are (R, …). One draw per repeat, keyed by its index, so that repeat r sees
        # the same noise however many repeats train with it (docs/ARCHITECTURE.md, decision 3).
        sid = stream_id(stream)
        return tf.stack([standard_normal(shape[1:], rng_key(seed, sid, step, r))
                         for r in range(shape[0])])

    return draw


def epoch_order(seed: tf.Tensor, epoch: tf.Tensor, repeats: int, n: int) -> tf.Tensor:
    """The order in which each repeat visits the n training rows in ``epoch`` (0-based), (R, n).

    A fresh shuffle per repeat and epoch, as Keras shuffles before every epoch; the
    first batch is the first B rows of the order, the last batch may be smaller.
    """
    # Keyed by repeat, like the noise: repeat r's order does not depend on how many train.
    return tf.stack([
        tf.argsort(tf.random.stateless_uniform([n], seed=rng_key(seed, _SHUFFLE_STREAM, epoch, r),
                                               alg=RNG_ALGORITHM))
        for r in range(repeats)])


@dataclass(frozen=True)
class ProgramKey:
    step: StepConfig
    sizes: tuple[int, ...]
    repeats: int
    n_train: int
    n_test: int
    epochs: int
    batch_size: int
    record_every: int
    metric: str


class _Program:
    """One compiled training run for a model shape and set of noise sites."""

    def __init__(self, key: ProgramKey) -> None:
        self.key = key
        self.points = record_epochs(key.epochs, key.record_every)
        self.batch = min(key.batch_size, key.n_train)
        self.steps_per_epoch = math.ceil(key.n_train / self.batch)
        self.run = tf.function(self._run, jit_compile=True)

    def _run(self, params: list[tf.Tensor], x_train: tf.Tensor, y_train: tf.Tensor,
             x_test: tf.Tensor, y_test: tf.Tensor, sigma_values: tf.Tensor, lr: tf.Tensor,
             momentum: tf.Tensor, gamma: tf.Tensor, seed: tf.Tensor) -> Any:
        key, cfg = self.key, self.key.step
        R, n, B, S = key.repeats, key.n_train, self.batch, self.steps_per_epoch
        sigmas = {site: sigma_values[i] for i, site in enumerate(Site)}
        y_float = targets_as_float(cfg, y_train)
        padded = S * B
        mask_all = tf.concat([tf.ones([n]), tf.zeros([padded - n])], axis=0)

        def one_epoch(epoch: tf.Tensor, step: tf.Tensor, params: list[tf.Tensor],
                      slots: Any, bad: tf.Tensor) -> Any:
            if S == 1:
                # One batch holds the whole training set: the order within it cannot change
                # the mean gradient, so the shuffle is skipped.
                xb = tf.broadcast_to(x_train, [R, n, x_train.shape[-1]])
                yb = tf.broadcast_to(y_float, [R, *y_float.shape])
                params, slots, loss = train_step(cfg, params, slots, step, xb, yb, None,
                                                 sigmas, _rng_noise(seed, step), lr, momentum,
                                                 gamma)
                bad = tf.where((bad == 0) & ~tf.math.is_finite(loss), epoch + 1, bad)
                return step + 1, params, slots, bad
            order = epoch_order(seed, epoch, R, n)
            # Batches by reshape and gather, not by slicing with tensor bounds: a batch must
            # keep its static shape (R, B, …), which the noise draws need.
            batches = tf.reshape(tf.concat([order, tf.zeros([R, padded - n], tf.int32)], axis=1),
                                 [R, S, B])
            masks = tf.reshape(mask_all, [S, B])

            def batch_body(k: tf.Tensor, step: tf.Tensor, params: list[tf.Tensor], slots: Any,
                           bad: tf.Tensor) -> Any:
                idx = tf.gather(batches, k, axis=1)
                xb = tf.gather(x_train, idx)
                yb = tf.gather(y_float, idx)
                mask = tf.gather(masks, k)
                params, slots, loss = train_step(cfg, params, slots, step, xb, yb, mask, sigmas,
                                                 _rng_noise(seed, step), lr, momentum, gamma)
                bad = tf.where((bad == 0) & ~tf.math.is_finite(loss), epoch + 1, bad)
                return k + 1, step + 1, params, slots, bad

            _, step, params, slots, bad = tf.while_loop(
                lambda k, *_: k < S, batch_body, (tf.constant(0), step, params, slots, bad))
            return step, params, slots, bad

        def until(end: int, epoch: tf.Tensor, step: tf.Tensor, params: list[tf.Tensor],
                  slots: Any, bad: tf.Tensor) -> Any:
            def body(epoch: tf.Tensor, step: tf.Tensor, params: list[tf.Tensor], slots: Any,
                     bad: tf.Tensor) -> Any:
                step, params, slots, bad = one_epoch(epoch, step, params, slots, bad)
                return epoch + 1, step, params, slots, bad

            return tf.while_loop(lambda e, *_: e < end, body, (epoch, step, params, slots, bad))

        slots = ([tf.zeros_like(p) for p in params], [tf.zeros_like(p) for p in params])
        state = (tf.constant(0), tf.constant(0), list(params), slots, tf.zeros([R], tf.int32))
        # Training runs in segments that end at the record points; after each, one clean
        # evaluation is written to the curves.
        points = tf.constant(self.points, tf.int32)

        def segment(i: tf.Tensor, state: Any, buffers: Any) -> Any:
            epoch, step, params, slots, bad = state
            end = points[i]
            epoch, step, params, slots, bad = until(end, epoch, step, params, slots, bad)
            test_loss, test_metric = evaluate(cfg, params, x_test, y_test, key.metric)
            train_loss, train_metric = evaluate(cfg, params, x_train, y_train, key.metric)
            buffers = tuple(
                buf.write(i, value) for buf, value in
                zip(buffers, (test_metric, train_metric, test_loss, train_loss)))
            return i + 1, (epoch, step, params, slots, bad), buffers

        buffers = tuple(tf.TensorArray(tf.float32, size=len(self.points)) for _ in CURVE_NAMES)
        _, state, buffers = tf.while_loop(
            lambda i, *_: i < len(self.points), segment, (tf.constant(0), state, buffers))
        bad, final = state[4], state[2]
        return tuple(tf.transpose(buf.stack()) for buf in buffers), bad, final


_PROGRAMS: dict[ProgramKey, _Program] = {}


def program_for(key: ProgramKey) -> _Program:
    program = _PROGRAMS.get(key)
    if program is None:
        program = _PROGRAMS[key] = _Program(key)
    return program


def step_config(spec: StudySpec, data: Dataset, config: NoiseConfig) -> StepConfig:
    return StepConfig(activation=spec.model.activation, task=data.task, n_outputs=data.n_outputs,
                      optimizer=spec.model.optimizer, sites=frozenset(config.sites),
                      kind=config.kind)


def train(spec: StudySpec, data: Dataset, config: NoiseConfig,
          weights: list[tuple[np.ndarray, np.ndarray]] | None = None) -> TrainResult:
    """Train all ``spec.study.repeats`` repeats of ``config``; every metric is measured clean."""
    return train_with_weights(spec, data, config, weights)[0]


def train_with_weights(
    spec: StudySpec, data: Dataset, config: NoiseConfig,
    weights: list[tuple[np.ndarray, np.ndarray]] | None = None,
) -> tuple[TrainResult, list[tuple[np.ndarray, np.ndarray]]]:
    """``train``, and the final weights per layer (kernel (R, in, out), bias (R, out)).

    ``weights`` (default ``initial_weights``) are the starting weights, in that layout.
    """
    started = time.perf_counter()
    sizes = layer_sizes(data, spec.model)
    R = spec.study.repeats
    if weights is None:
        weights = initial_weights(sizes, R, spec.study.seed)
    key = ProgramKey(
        step=step_config(spec, data, config), sizes=tuple(sizes), repeats=R,
        n_train=len(data.x_train), n_test=len(data.x_test), epochs=spec.model.epochs,
        batch_size=spec.model.batch_size, record_every=spec.study.record_every,
        metric=spec.metric,
    )
    program = program_for(key)
    params = [tf.constant(a) for pair in weights for a in pair]
    sigma_values = tf.constant([config.sigma(site) for site in Site], tf.float32)
    curves, bad, final = program.run(
        params, tf.constant(data.x_train), tf.constant(data.y_train), tf.constant(data.x_test),
        tf.constant(data.y_test), sigma_values,
        tf.constant(learning_rate(spec.model), tf.float32),
        tf.constant(spec.model.momentum, tf.float32),
        tf.constant(spec.noise.gradient_gamma, tf.float32),
        tf.constant(spec.study.seed, tf.int64),
    )
    arrays = {name: c.numpy().astype(np.float64) for name, c in zip(CURVE_NAMES, curves)}
    if data.task != "regression":
        # Accuracy is a count over a known number of rows: undo float32 rounding (36/70 exactly).
        for name, n in (("test_metric", len(data.x_test)), ("train_metric", len(data.x_train))):
            arrays[name] = np.round(arrays[name] * n) / n
    result = TrainResult(
        train_metric=arrays["train_metric"][:, -1],
        test_metric=arrays["test_metric"][:, -1],
        train_loss=arrays["train_loss"][:, -1],
        test_loss=arrays["test_loss"][:, -1],
        curve_epochs=program.points,
        curves=arrays,
        diverged_at=bad.numpy().astype(np.int64),
        seconds=time.perf_counter() - started,
        weights=tuple(np.array(p[0].numpy()) for p in final),
    )
    final_arrays = [p.numpy() for p in final]
    return result, [(final_arrays[i], final_arrays[i + 1]) for i in range(0, len(final_arrays), 2)]



def check(spec: StudySpec) -> list[tuple[str, str]]:
    """Problems this engine has with ``spec``, as (key, message tail): none, it trains every
    site, kind, optimizer and model size the study file accepts."""
    return []


def predict(spec: StudySpec, data: Dataset, weights: Sequence[np.ndarray],
            x: np.ndarray) -> np.ndarray:
    """Clean forward pass of one model with parameters ``weights`` ([W0, b0, ...], kernels
    (in, out), as ``TrainResult.weights``) on rows ``x`` (N, features).

    Binary: P(class 1), (N,); multiclass: class probabilities, (N, K); regression: the
    predictions, (N,) (or (N, outputs) for several targets).
    """
    cfg = StepConfig(activation=spec.model.activation, task=data.task, n_outputs=data.n_outputs,
                     optimizer=spec.model.optimizer, sites=frozenset(), kind=spec.noise.kind)
    params = [tf.constant(np.asarray(w, np.float32)[None]) for w in weights]  # one repeat
    logits = forward(cfg, params, tf.constant(np.asarray(x, np.float32))).numpy()[0]
    logits = logits.astype(np.float64)
    if data.task == "binary":
        return expit(logits[:, 0])  # the logistic without overflow for confident models
    if data.task == "multiclass":
        return softmax(logits, axis=1)
    return logits[:, 0] if logits.shape[1] == 1 else logits
