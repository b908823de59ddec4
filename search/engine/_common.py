"""What every engine shares: the result type, initial weights, and Keras defaults.

Both engines start repeat r from the same initial weights (glorot_uniform
kernels, zero biases, drawn from a generator keyed by (seed, r)), so a
configuration and the baseline are compared on the same starting points
(docs/ARCHITECTURE.md, decision 3), and the reference engine can be handed exactly the
weights the fast engine starts from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from search.data import Dataset
    from search.spec import ModelSpec


# Keras 3 defaults (keras/src/optimizers/*.py).
DEFAULT_LEARNING_RATE = {"adam": 0.001, "sgd": 0.01, "rmsprop": 0.001}
ADAM_BETA_1, ADAM_BETA_2, EPSILON = 0.9, 0.999, 1e-7
RMSPROP_RHO = 0.9

CURVE_NAMES = ("test_metric", "train_metric", "test_loss", "train_loss")

# Stored with every study. Bump it whenever the same study file would produce other numbers
# (random streams, data order, initial weights, a training step), so that a study is never
# resumed across such a change with old and new trials mixed.
ENGINE_VERSION = 4


# Where the engines keep compiled programs between runs ('' turns it off).
CACHE_ENV = "NOISE_SEARCH_XLA_CACHE"


def xla_cache_dir(name: str) -> str | None:
    """The directory an engine keeps its compiled programs in: $NOISE_SEARCH_XLA_CACHE, else
    ~/.cache/noise-search/<name> (``name`` says the compiler and its version); made if
    missing. None when the variable is '' or the directory cannot be made: no cache is only
    slower."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = os.environ.get(CACHE_ENV, os.path.join(base, "noise-search", name))
    if not path:
        return None
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return None
    return path


def learning_rate(model: ModelSpec) -> float:
    if model.learning_rate is not None:
        return model.learning_rate
    return DEFAULT_LEARNING_RATE[model.optimizer]


def layer_sizes(data: Dataset, model: ModelSpec) -> list[int]:
    return [data.n_features, *model.hidden, data.n_outputs]


def initial_weights(
    sizes: list[int], repeats: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per layer (kernel (R, in, out), bias (R, out)), float32; Keras glorot_uniform and zeros.

    Repeat r's weights depend only on (seed, r), not on how many repeats run.
    """
    kernels: list[list[np.ndarray]] = [[] for _ in sizes[1:]]
    for r in range(repeats):
        rng = np.random.default_rng([seed, r, 0x1217])
        for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            kernels[layer].append(rng.uniform(-limit, limit, size=(fan_in, fan_out)))
    return [
        (np.stack(k).astype(np.float32), np.zeros((repeats, k[0].shape[1]), np.float32))
        for k in kernels
    ]


def record_epochs(epochs: int, record_every: int) -> tuple[int, ...]:
    """Epochs (1-based, after that epoch) at which curves are recorded; always ends at `epochs`."""
    points = list(range(record_every, epochs + 1, record_every))
    if not points or points[-1] != epochs:
        points.append(epochs)
    return tuple(points)


@dataclass(frozen=True)
class TrainResult:
    """All repeats of one configuration. Every value is measured without noise."""

    train_metric: np.ndarray  # (R,)
    test_metric: np.ndarray  # (R,)
    train_loss: np.ndarray  # (R,)
    test_loss: np.ndarray  # (R,)
    curve_epochs: tuple[int, ...]
    curves: dict[str, np.ndarray]  # CURVE_NAMES -> (R, len(curve_epochs))
    diverged_at: np.ndarray  # (R,) epoch whose training loss was first not finite; 0 = never
    seconds: float
    # Repeat 0's final parameters [W0, b0, W1, b1, ...], float32, kernels (in, out): enough to
    # draw its decision boundary later (engine.predict) without training it again.
    weights: tuple[np.ndarray, ...] | None = None
    # [robustness] only (search/engine/noisy_eval.py): each repeat's metric at each test σ of
    # input_std, mean over the draws, (R, S); certified accuracy at each radius, (R, radii);
    # and the seconds that evaluation took (included in `seconds`).
    robustness: np.ndarray | None = None
    certified: np.ndarray | None = None
    robustness_seconds: float = 0.0

    @property
    def diverged(self) -> bool:
        return bool(np.any(self.diverged_at > 0))

    def divergence_reason(self) -> str:
        bad = self.diverged_at[self.diverged_at > 0]
        return (
            f"diverged: training loss became NaN or infinite in {bad.size} of "
            f"{self.diverged_at.size} repeats (first at epoch {int(bad.min())})"
        )
