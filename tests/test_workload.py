"""The work a study will do, counted before it starts; the run's header says when the
test-time noise of [robustness] outweighs the training it states (issue 20, item 11)."""

from __future__ import annotations

from search import spec as spec_module
from search import workload
from search.cli import main
from tests.conftest import ROBUSTNESS_SECTION, TINY_STUDY


def test_forward_passes_are_counted_per_configuration_repeat_point_sigma_and_draw(write_study):
    spec = spec_module.load(write_study(TINY_STUDY + ROBUSTNESS_SECTION))
    work = workload.estimate(spec, 5, 20, 40)
    assert work.train_passes == 5 * 3 * 20 * 20
    assert work.noisy_passes == 5 * 3 * 40 * 3 * 5
    assert not work.heavy  # more than training, but seconds of work
    certified = spec_module.load(write_study(TINY_STUDY + ROBUSTNESS_SECTION), [
        "robustness.certify_std=0.25", "robustness.certify_n=1000000"])
    work = workload.estimate(certified, 5, 20, 40)
    assert work.noisy_passes == 5 * 3 * 40 * (3 * 5 + 100 + 1_000_000)
    assert work.heavy
    assert not workload.estimate(spec_module.load(write_study()), 5, 20, 40).heavy


def test_the_header_states_a_heavy_evaluation_before_it_starts(write_study, sqlite_url, capsys,
                                                               fake_engine):
    path = write_study(TINY_STUDY + ROBUSTNESS_SECTION)
    sets = ["--set", "robustness.certify_std=0.25", "--set", "robustness.certify_n=1000000",
            "--set", "robustness.draws=10000", "--study-name", "heavy"]
    assert main(["run", str(path), "--storage", sqlite_url, "--quiet", *sets]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header.endswith(
        "0 of 5 configurations done, 3 repeats each, 20 epochs, engine fast; then test-time "
        "noise: 6.2e+08 forward passes (5 configurations × 3 repeats × 40 test points × "
        "(3 test σ × 10000 draws + 1000100 certification draws)), 103010 times the "
        "training's 6000")
