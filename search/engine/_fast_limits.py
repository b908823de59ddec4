"""What the fast engine can train, readable without importing TensorFlow.

search.spec asks this module (through ``search.engine.limits("fast")``) when it validates a
study file; the fast engine draws its own noise, so it trains every site, and the study
file's own checks (finite numbers, ranges) are all it needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from search.noise import SITE_NAMES

if TYPE_CHECKING:
    from search.spec import StudySpec

NAME = "fast"
ABOUT = "the built-in MLP, every repeat in one compiled XLA program (the default)"
SITES: tuple[str, ...] = tuple(SITE_NAMES)
MODELS: tuple[str, ...] = ("mlp",)  # the built-in MLP only


def check(spec: StudySpec) -> list[tuple[str, str]]:
    """No limits beyond the study file's own: every site, kind, optimizer and size trains."""
    return []
