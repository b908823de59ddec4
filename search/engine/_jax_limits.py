"""What the jax engine can train, readable without importing Keras or JAX.

search.spec asks this module (through ``search.engine.limits("jax")``) when it validates a
study file; jax_builder re-exports it as its ``NAME`` / ``SITES`` / ``MODELS`` / ``check``.
The engine trains a model of the user's own only (``model.builder``): its sites are the
builder's, checked against the builder itself (search.builder), and its noise layers have
no σ bound of Keras's (σ is a number the program is given, search.engine._replicas).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from search.spec import StudySpec

NAME = "jax"
ABOUT = ("a model of your own (model.builder), every repeat in one compiled JAX program "
         "(the default with a builder)")
SITES: tuple[str, ...] = ()  # none of the built-in MLP's: a builder names its own
MODELS: tuple[str, ...] = ("builder",)


def check(spec: StudySpec) -> list[tuple[str, str]]:
    """No limits beyond the study file's own and the builder's sites."""
    return []
