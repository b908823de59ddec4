"""The reference engine: each repeat is a real Keras model trained with ``model.fit``.

This is the tutorial's code path (``Sequential`` of ``Dense``, ``GaussianNoise``
or ``GaussianDropout`` and ``Activation``), kept as the oracle the fast engine
is tested against (docs/ARCHITECTURE.md, decision 2) and selectable with
``study.engine = "keras"``. It is slow by design: one model per repeat, Python
between epochs. Repeat r starts from ``initial_weights`` (the weights the fast
engine starts repeat r from), so the two engines can be compared run by run. Data order
and noise are Keras's own, seeded from (seed, r): the engines agree step for step when
one batch holds the whole training set and no noise is drawn, and in distribution
otherwise (tests/test_parity.py).

Keras has layers for noise on inputs and on hidden layers only; noise on
weights, gradients or targets is refused when the study file is loaded, because
Keras has no layer that would make this the tutorial's code path. Those limits are
declared in ``_keras_limits`` (re-exported here as ``SITES`` and ``check``), which the
study file's validation reads without importing Keras; this module imports Keras
lazily, inside the functions that build models, for the same reason.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from search.engine._common import (
    CURVE_NAMES,
    TrainResult,
    initial_weights,
    layer_sizes,
    learning_rate,
    record_epochs,
)
from search.engine._keras_limits import ABOUT, MODELS, NAME, SITES, check
from search.metrics import metric_value
from search.noise import NoiseConfig, Site, baseline, site_name

if TYPE_CHECKING:
    from search.data import Dataset
    from search.spec import StudySpec

__all__ = ["ABOUT", "MODELS", "NAME", "SITES", "build_model", "check", "clean_scores",
           "dense_weights", "dropout_rate", "fit_repeats", "make_optimizer", "make_recorder",
           "noise_layer", "output_activation", "predict", "repeat_seed", "train"]

# The sites this engine can train; spec validation refuses the others for engine = "keras".
SUPPORTED_SITES = frozenset(Site(name) for name in SITES)


def dropout_rate(sigma: float) -> float:
    """GaussianDropout's rate for noise N(1, σ²); the layer's stddev is sqrt(rate / (1 - rate))."""
    return sigma * sigma / (1.0 + sigma * sigma)


def noise_layer(sigma: float, kind: str, seed: int | None = None,
                name: str | None = None) -> Any:
    import keras

    if kind == "multiplicative":
        return keras.layers.GaussianDropout(dropout_rate(sigma), seed=seed, name=name)
    return keras.layers.GaussianNoise(sigma, seed=seed, name=name)


def output_activation(task: str) -> str:
    return {"binary": "sigmoid", "multiclass": "softmax", "regression": "linear"}[task]


def build_model(spec: StudySpec, data: Dataset, config: NoiseConfig,
                weights: list[tuple[np.ndarray, np.ndarray]] | None = None,
                seed: int | None = None) -> Any:
    """The tutorial's Sequential model for ``config``, compiled as the tutorial compiles it.

    ``weights`` is one repeat's [(kernel, bias), ...]. ``seed`` seeds the noise layers
    (each its own seed, so that two layers do not draw the same numbers).
    """
    import keras

    sites = set(config.sites)
    unsupported = sites - SUPPORTED_SITES
    if unsupported:  # spec validation keeps this out of studies; this guards library callers
        raise ValueError(
            f"the keras engine supports noise on {sorted(s.value for s in SUPPORTED_SITES)}; "
            f"got {sorted(map(site_name, unsupported))}")
    n_noise_layers = 0

    def noise(site: Site) -> Any:
        nonlocal n_noise_layers
        n_noise_layers += 1
        layer_seed = None if seed is None else seed + n_noise_layers
        return noise_layer(config.sigma(site), config.kind, layer_seed)

    act = spec.model.activation
    layers: list[Any] = [keras.Input(shape=(data.n_features,))]
    if Site.INPUT in sites:
        layers.append(noise(Site.INPUT))
    for units in spec.model.hidden:
        if Site.HIDDEN_PRE in sites:
            # The tutorial's hidden pre-activation noise: Dense, GaussianNoise, Activation.
            layers += [keras.layers.Dense(units), noise(Site.HIDDEN_PRE),
                       keras.layers.Activation(act)]
        else:
            layers.append(keras.layers.Dense(units, activation=act))
        if Site.HIDDEN_POST in sites:
            layers.append(noise(Site.HIDDEN_POST))
    layers.append(keras.layers.Dense(data.n_outputs, activation=output_activation(data.task)))
    model = keras.Sequential(layers)
    if weights is not None:
        dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
        for layer, (kernel, bias) in zip(dense, weights, strict=True):
            layer.set_weights([kernel, bias])
    loss = {"binary": "binary_crossentropy", "multiclass": "sparse_categorical_crossentropy",
            "regression": "mean_squared_error"}[data.task]
    metrics = [] if data.task == "regression" else ["accuracy"]
    model.compile(loss=loss, optimizer=make_optimizer(spec), metrics=metrics)
    return model


def make_optimizer(spec: StudySpec) -> Any:
    import keras

    lr = learning_rate(spec.model)
    if spec.model.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=lr, momentum=spec.model.momentum)
    if spec.model.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=lr)
    return keras.optimizers.Adam(learning_rate=lr)


def clean_scores(model: Any, x: np.ndarray, y: np.ndarray, task: str,
                 metric: str) -> tuple[float, float]:
    """(loss, metric) on a whole set in inference mode, where Keras's noise layers are inactive."""
    loss = float(model.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)["loss"])
    pred = np.asarray(model.predict_on_batch(x), dtype=np.float64)
    return loss, metric_value(task, metric, pred, y)


Scorer = Callable[[Any, np.ndarray, np.ndarray, str, str], tuple[float, float]]


def make_recorder(data: Dataset, metric: str, points: tuple[int, ...],
             scores: Scorer = clean_scores) -> Any:
    """A Keras callback: clean (test metric, train metric, test loss, train loss) at the record
    points, by ``scores`` (model, x, y, task, metric) -> (loss, metric); it stops a repeat whose
    training loss is not finite. Both Keras engines use it (keras_builder with its own scorer)."""
    import keras

    class Recorder(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.rows: list[tuple[float, float, float, float]] = []
            self.diverged_at = 0

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            loss = (logs or {}).get("loss", 0.0)
            if not math.isfinite(float(loss)):
                self.diverged_at = epoch + 1
                self.model.stop_training = True  # everything after is NaN; skip the work
                return
            if epoch + 1 in points:
                test_loss, test_metric = scores(self.model, data.x_test, data.y_test,
                                                data.task, metric)
                train_loss, train_metric = scores(self.model, data.x_train, data.y_train,
                                                  data.task, metric)
                self.rows.append((test_metric, train_metric, test_loss, train_loss))

    return Recorder()


def repeat_seed(seed: int, repeat: int) -> int:
    """Keras's global seed for repeat r (data order and noise layers), from (seed, r) only."""
    return int(np.random.SeedSequence([seed, repeat, 0x6B72]).generate_state(1)[0] % (2**31))


def train(spec: StudySpec, data: Dataset, config: NoiseConfig,
          weights: list[tuple[np.ndarray, np.ndarray]] | None = None,
          repeats: range | None = None) -> TrainResult:
    """Train each repeat of ``config`` (``repeats``, default all) with ``model.fit``; every
    metric is measured clean. Repeat r depends on (seed, r) only, so a block of repeats
    (racing) gives the numbers a full run gives for them."""
    import keras

    chosen = range(spec.study.repeats) if repeats is None else repeats
    if weights is None:
        everyone = initial_weights(layer_sizes(data, spec.model), chosen.stop, spec.study.seed)
        weights = [(k[chosen.start:], b[chosen.start:]) for k, b in everyone]
    given = weights

    def model_for(r: int, repeat: int) -> Any:
        seed = repeat_seed(spec.study.seed, repeat)
        keras.utils.set_random_seed(seed)
        return build_model(spec, data, config, [(k[r], b[r]) for k, b in given], seed=seed)

    return fit_repeats(spec, data, chosen, model_for, dense_weights)


def fit_repeats(spec: StudySpec, data: Dataset, chosen: range,
                model_for: Callable[[int, int], Any],
                final_weights: Callable[[Any], tuple[np.ndarray, ...]],
                scores: Scorer = clean_scores) -> TrainResult:
    """Both Keras engines' loop over the repeats ``chosen``: ``model_for(r, repeat)`` (the
    compiled model, built under the repeat's seed), ``model.fit`` with the recorder (clean
    curves by ``scores``), [robustness] on the final model, repeat 0's ``final_weights``."""
    import keras

    started = time.perf_counter()
    R = len(chosen)
    points = record_epochs(spec.model.epochs, spec.study.record_every)
    curves = np.full((len(CURVE_NAMES), R, len(points)), np.nan)
    diverged_at = np.zeros(R, np.int64)
    final: tuple[np.ndarray, ...] | None = None
    measured = _UnderNoise(spec, data, R)
    for r, repeat in enumerate(chosen):
        model = model_for(r, repeat)
        recorder = make_recorder(data, spec.metric, points, scores)
        model.fit(data.x_train, data.y_train, epochs=spec.model.epochs,
                  batch_size=spec.model.batch_size, shuffle=True, verbose=0,
                  callbacks=[recorder])
        rows = np.array(recorder.rows, dtype=np.float64).reshape(-1, len(CURVE_NAMES))
        curves[:, r, : len(rows)] = rows.T  # a diverged repeat keeps NaN after it stopped
        diverged_at[r] = recorder.diverged_at
        if r == 0:
            final = final_weights(model)
        measured.measure(model, r, repeat)
        keras.backend.clear_session()  # one model per repeat: do not let graphs pile up
    arrays = dict(zip(CURVE_NAMES, curves))
    return measured.into(TrainResult(
        train_metric=arrays["train_metric"][:, -1],
        test_metric=arrays["test_metric"][:, -1],
        train_loss=arrays["train_loss"][:, -1],
        test_loss=arrays["test_loss"][:, -1],
        curve_epochs=points,
        curves=arrays,
        diverged_at=diverged_at,
        seconds=time.perf_counter() - started,
        weights=final,
    ))


class _UnderNoise:
    """[robustness] for the Keras engine: each repeat's model predicts the noisy test inputs
    the fast engine evaluates on (search.engine.noisy_eval); nothing without the section."""

    def __init__(self, spec: StudySpec, data: Dataset, repeats: int) -> None:
        self.spec, self.data, self.seconds = spec, data, 0.0
        r = spec.robustness
        self.profiles = None if r is None else np.full((repeats, len(r.input_std)), np.nan)
        self.certified = (None if r is None or r.certify_std is None
                          else np.full((repeats, len(r.certify_radii)), np.nan))

    def measure(self, model: Any, row: int, repeat: int | None = None) -> None:
        """Row ``row`` of the result: the model of study repeat ``repeat`` (default ``row``),
        which keys its noise."""
        from search.engine import noisy_eval

        repeat = row if repeat is None else repeat
        started = time.perf_counter()

        def predict(x: np.ndarray) -> np.ndarray:
            return np.asarray(model.predict(x, batch_size=8192, verbose=0))

        if self.profiles is not None:
            self.profiles[row] = noisy_eval.predicted_profile(predict, self.spec, self.data,
                                                              repeat)
        if self.certified is not None:
            self.certified[row] = noisy_eval.predicted_certified(predict, self.spec,
                                                                 self.data, repeat)
        self.seconds += time.perf_counter() - started

    def into(self, result: TrainResult) -> TrainResult:
        if self.profiles is None:
            return result
        return dataclasses.replace(result, robustness=self.profiles, certified=self.certified,
                                   robustness_seconds=self.seconds)


def dense_weights(model: Any) -> tuple[np.ndarray, ...]:
    """A model's parameters as TrainResult.weights: [W0, b0, W1, b1, ...], float32,
    kernels (in, out) as Keras stores them."""
    import keras

    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    return tuple(np.asarray(w, np.float32) for layer in dense for w in layer.get_weights())


def predict(spec: StudySpec, data: Dataset, weights: Sequence[np.ndarray],
            x: np.ndarray) -> np.ndarray:
    """Clean forward pass of one Keras model with the final ``weights`` ([W0, b0, ...]) on
    rows ``x``: binary -> P(class 1) (N,), multiclass -> class probabilities (N, K),
    regression -> predictions (N,).

    The model is the study's architecture without noise layers: they are inactive in
    inference anyway, and the baseline's layers are the same Dense layers in the same order.
    """
    pairs = [(weights[i], weights[i + 1]) for i in range(0, len(weights), 2)]
    model = build_model(spec, data, baseline(spec.noise.kind), pairs)
    out = np.asarray(model.predict_on_batch(np.asarray(x, np.float32)), dtype=np.float64)
    return out if data.task == "multiclass" else out[:, 0]
