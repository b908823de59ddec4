"""Every study file in studies/ loads and runs for real (tiny overrides), through the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from search import spec as spec_module
from search.cli import main
from search.noise import site_name

STUDIES = sorted((Path(__file__).resolve().parents[1] / "studies").glob("*.toml"))
TINY = ["--set", "model.epochs=5", "--set", "study.repeats=2", "--set", "study.record_every=5",
        "--set", "model.hidden=[8]", "--set", "noise.std=[0.1]"]


def test_the_issue_asks_for_these_studies():
    specs = {path.stem: spec_module.load(path) for path in STUDIES}
    assert {"circles", "moons"} <= set(specs)
    tasks = {s.task for s in specs.values()}
    assert {"binary", "multiclass", "regression"} <= tasks
    sites = {site for s in specs.values() for c in s.configurations() for site in c.sites}
    assert {"weights", "gradients", "targets"} <= {site_name(site) for site in sites}
    # issue 13: a CNN from a model builder on the digits, and a tabular builder study
    builders = {name: s for name, s in specs.items() if s.model.builder is not None}
    assert {"digits_cnn", "breast_cancer"} <= set(builders)
    assert {site_name(site) for c in builders["digits_cnn"].configurations()
            for site in c.sites} == {"input", "conv1", "conv2", "dense1"}


def _tiny(path: Path) -> list[str]:
    """TINY, less the built-in MLP's width for a study whose model comes from a builder."""
    if spec_module.load(path).model.builder is None:
        return TINY
    return [a for pair in zip(TINY[::2], TINY[1::2], strict=True) if pair[1] != "model.hidden=[8]"
            for a in pair]


@pytest.mark.slow
@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_study_file_runs(path, sqlite_url):
    tiny = _tiny(path)
    spec = spec_module.load(path, tiny[1::2])
    code = main(["run", str(path), "--storage", sqlite_url, "--quiet", *tiny])
    assert code == 0
    study = optuna.load_study(study_name=spec.study.name, storage=sqlite_url)
    trials = study.get_trials()
    assert len(trials) == len(spec.configurations())
    assert all(t.state == TrialState.COMPLETE for t in trials), [
        (t.user_attrs.get("config"), t.state, t.user_attrs.get("failure")) for t in trials]
    assert study.direction.name.lower() == spec.direction
    for t in trials:
        assert np.isfinite(t.value)


def _tutorial_with(*overrides: str) -> list[str]:
    circles = next(p for p in STUDIES if p.stem == "circles")
    return [str(circles), "--quiet", *TINY, *(a for o in overrides for a in ("--set", o))]


@pytest.mark.slow
def test_keras_engine_runs_a_study(sqlite_url):
    """The reference engine through the study runner: clean curves recorded, trials complete."""
    args = _tutorial_with("study.engine='keras'", "model.epochs=4", "study.record_every=2",
                          "study.repeats=1", "noise.placements=['hidden_pre']")
    assert main(["run", *args, "--storage", sqlite_url]) == 0
    study = optuna.load_study(study_name="circles", storage=sqlite_url)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    for t in trials:
        assert sorted(t.intermediate_values) == [2, 4]
        assert 0.0 <= t.value <= 1.0


@pytest.mark.parametrize("engine, overrides", [
    ("keras", ["model.learning_rate=1e30", "noise.placements=['input']"]),
    ("fast", ["noise.placements=['weights', 'gradients']", "noise.std=[0.1, 1e30]"]),
])
@pytest.mark.slow
def test_diverging_configuration_of_new_sites_and_engine_fails_and_study_goes_on(
        engine, overrides, sqlite_url):
    args = _tutorial_with(f"study.engine='{engine}'", "study.repeats=1", *overrides)
    assert main(["run", *args, "--storage", sqlite_url]) == 0
    study = optuna.load_study(study_name="circles", storage=sqlite_url)
    states = {t.user_attrs["config"]: t for t in study.get_trials()}
    failed = [t for t in states.values() if t.state == TrialState.FAIL]
    assert failed, {k: t.state for k, t in states.items()}
    for t in failed:
        assert "diverged" in t.user_attrs["failure"]
    if engine == "fast":
        # The σ = 0.1 configurations still completed: the study went on.
        assert states["weights:0.1"].state == TrialState.COMPLETE
        assert states["gradients:0.1"].state == TrialState.COMPLETE
        assert states["weights:1e+30"].state == TrialState.FAIL
