"""How much work a study is, counted before it starts: forward passes of one example.

Training is what the run's header states (configurations, repeats, epochs); the test-time
noise of ``[robustness]`` comes after it, and its cost is in keys the header does not show
(``draws``, ``certify_n``), so the header adds it when it is large (``Workload.heavy``).
"""

from __future__ import annotations

from dataclasses import dataclass

from search.analysis.robustness import SELECTION_DRAWS
from search.spec import StudySpec

# Below this many noisy passes the evaluation takes seconds on any machine: not worth a word.
HEAVY_PASSES = 10**8


@dataclass(frozen=True)
class Workload:
    configurations: int
    repeats: int
    train_passes: int  # configurations × repeats × epochs × training rows
    test_points: int
    sigmas: int  # test σ of [robustness], 0 without it
    draws: int
    certify_draws: int  # selection + estimation draws per point, 0 without certification

    @property
    def noisy_passes(self) -> int:
        """Configurations × repeats × test points × (σ × draws + certification draws)."""
        per_point = self.sigmas * self.draws + self.certify_draws
        return self.configurations * self.repeats * self.test_points * per_point

    @property
    def heavy(self) -> bool:
        """The test-time noise outweighs the training the header states, and is not small."""
        return self.noisy_passes >= max(self.train_passes, HEAVY_PASSES)


def estimate(spec: StudySpec, configurations: int, n_train: int, n_test: int) -> Workload:
    """The work of ``configurations`` configurations (the study's total) of ``spec`` on data
    of ``n_train`` training and ``n_test`` test rows, every repeat run to the end."""
    r = spec.robustness
    repeats = spec.study.repeats
    certify = 0 if r is None or r.certify_std is None else SELECTION_DRAWS + r.certify_n
    return Workload(configurations, repeats,
                    configurations * repeats * spec.model.epochs * n_train, n_test,
                    0 if r is None else len(r.input_std), 0 if r is None else r.draws, certify)
