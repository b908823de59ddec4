"""What the Keras reference engine can train, readable without importing Keras.

search.spec asks this module (through ``search.engine.limits("keras")``) when it validates
a study file, so a file that the engine cannot train fails in a fraction of a second,
before TensorFlow loads; keras_ref re-exports it as its ``NAME`` / ``SITES`` / ``check``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from search.spec import StudySpec

NAME = "keras"
ABOUT = "Keras model.fit per seed, the reference (the built-in MLP or a model of your own)"
# Keras has layers (GaussianNoise, GaussianDropout) for these sites only; the reference engine
# refuses the others rather than train something that is not the tutorial's code path.
SITES: tuple[str, ...] = ("input", "hidden_pre", "hidden_post")
MODELS: tuple[str, ...] = ("mlp", "builder")

# keras.layers.GaussianNoise refuses a stddev outside [0, 1].
MAX_ADDITIVE_SIGMA = 1.0
# GaussianDropout's rate σ²/(1+σ²) rounds to 1 near σ ≈ 1e8, and its stddev,
# sqrt(rate / (1 - rate)), then divides by zero; 1e7 is a round bound well before.
MAX_MULTIPLICATIVE_SIGMA = 1e7


def check(spec: StudySpec) -> list[tuple[str, str]]:
    """σ grids the Keras noise layers refuse, as (key, message tail)."""
    grids = [("noise.std", spec.noise.std),
             *((f"noise.site_std.{site}", grid) for site, grid in spec.noise.site_std)]
    problems = []
    for key, grid in grids:
        sigma = max(grid)
        if spec.noise.kind == "additive" and sigma > MAX_ADDITIVE_SIGMA:
            problems.append((key, "must hold σ <= 1 with 'study.engine' = 'keras' (Keras "
                                  f"GaussianNoise takes stddev in [0, 1]); got {list(grid)}"))
        elif sigma >= MAX_MULTIPLICATIVE_SIGMA:
            problems.append((key, "must hold σ < 1e7 with 'study.engine' = 'keras' and "
                                  "multiplicative noise (Keras GaussianDropout); got "
                                  f"{list(grid)}"))
    return problems
