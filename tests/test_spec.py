"""The study file: what loads, and a one-line error for everything that must not."""

from __future__ import annotations

from pathlib import Path

import pytest

from search import spec
from search.cli import main
from search.noise import Site
from tests.conftest import TINY_STUDY

REPO = Path(__file__).resolve().parents[1]


def test_tutorial_study_is_the_tutorial():
    s = spec.load(REPO / "studies" / "circles.toml")
    assert (s.data.dataset, s.data.n_samples, s.data.noise, s.data.random_state) == (
        "circles", 100, 0.1, 1)
    assert s.data.n_train == 30
    assert s.model.hidden == (500,) and s.model.activation == "relu"
    assert (s.model.epochs, s.model.batch_size, s.model.optimizer) == (4000, 32, "adam")
    assert s.study.repeats == 30
    assert set(s.noise.placements) == {"input", "hidden_pre", "hidden_post", "input+hidden_pre"}
    assert len(s.noise.std) >= 8 and min(s.noise.std) == 0.005 and max(s.noise.std) == 0.5
    configs = s.configurations()
    assert configs[0].is_baseline
    assert len(configs) == 1 + 4 * len(s.noise.std)
    assert s.direction == "maximize" and s.metric == "accuracy"


def test_overrides_are_parsed_as_toml(write_study):
    s = spec.load(write_study(), ["model.epochs=7", "model.hidden=[4, 4]",
                                  "data.dataset=moons", "noise.site_std.input=[0.5]"])
    assert s.model.epochs == 7
    assert s.model.hidden == (4, 4)
    assert s.data.dataset == "moons"
    assert dict(s.noise.site_std) == {"input": (0.5,)}
    keys = [c.key for c in s.configurations()]
    assert "input:0.5" in keys and "input:0.1" not in keys and "hidden_pre:0.3" in keys


def test_spec_round_trips_through_its_stored_form(write_study):
    s = spec.load(write_study())
    again = spec.from_dict(s.to_dict(), "stored")
    assert again == s
    assert spec.differences(s.to_dict(), again.to_dict()) == []


def test_differences_ignore_n_trials_only(write_study):
    a = spec.load(write_study()).to_dict()
    b = spec.load(write_study(), ["study.n_trials=99", "model.epochs=21"]).to_dict()
    diffs = spec.differences(a, b)
    assert len(diffs) == 1 and diffs[0].startswith("model.epochs")


def _replace(old: str, new: str) -> str:
    assert old in TINY_STUDY
    return TINY_STUDY.replace(old, new)


BAD_FILES = {
    "not_toml": ("[study\nname=", "not valid TOML"),
    "unknown_key": (_replace("epochs = 20", "epochs = 20\nepoch = 3"), "'model.epoch'"),
    "unknown_section": (TINY_STUDY + "\n[extra]\na = 1\n", "[extra]"),
    "wrong_type": (_replace("epochs = 20", 'epochs = "many"'),
                   "'model.epochs' must be an integer"),
    "bool_is_not_int": (_replace("epochs = 20", "epochs = true"), "'model.epochs'"),
    "unknown_dataset": (_replace('dataset = "circles"', 'dataset = "mnist"'),
                        "'data.dataset' must be one of 'circles'"),
    "unknown_placement": (_replace('"hidden_pre"]', '"hiden_pre"]'), "'noise.placements'"),
    "negative_std": (_replace("std = [0.1, 0.3]", "std = [0.1, -0.3]"),
                     "'noise.std' must be a non-empty list of numbers >= 0"),
    "zero_repeats": (_replace("repeats = 3", "repeats = 0"),
                     "'study.repeats' must be an integer >= 1; got 0"),
    "n_train_too_big": (_replace("n_train = 20", "n_train = 60"),
                        "'data.n_train' must be < data.n_samples (60)"),
    "empty_std": (_replace("std = [0.1, 0.3]", "std = []"), "'noise.std' must be a non-empty"),
    "empty_placements": (_replace('placements = ["input", "hidden_pre"]', "placements = []"),
                         "'noise.placements' must be a non-empty list"),
    "zero_hidden": (_replace("hidden = [8]", "hidden = [0]"),
                    "'model.hidden' must be a non-empty list of integers >= 1"),
    "negative_lr": (_replace("epochs = 20", "epochs = 20\nlearning_rate = -0.1"),
                    "'model.learning_rate' must be a number > 0"),
    "key_for_other_dataset": (_replace("noise = 0.1", "noise = 0.1\ncenters = 3"),
                              "'data.centers' does not apply to dataset 'circles'"),
    "missing_noise": (TINY_STUDY.split("[noise]")[0], "missing section [noise]"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_study_file_is_one_line_naming_file_and_key(case, write_study, capsys):
    text, expected = BAD_FILES[case]
    path = write_study(text)
    with pytest.raises(spec.SpecError) as err:
        spec.load(path)
    message = str(err.value)
    assert str(path) in message
    assert expected in message
    assert "\n" not in message
    # The same through the CLI: exit code 2, one line on stderr, no traceback, no storage touched.
    code = main(["run", str(path)])
    out = capsys.readouterr()
    assert code == 2
    assert out.err.strip().count("\n") == 0 and "Traceback" not in out.err
    assert expected in out.err
    assert not Path("noise-search.db").exists()


@pytest.mark.parametrize("override, expected", [
    ("model.epoch=5", "unknown key 'model.epoch'; [model] allows: hidden"),
    ("modle.epochs=5", "unknown section 'modle'"),
    ("epochs=5", "expected SECTION.KEY=VALUE"),
    ("model.epochs", "expected SECTION.KEY=VALUE"),
    ("model.epochs=-1", "'model.epochs' must be an integer >= 1; got -1"),
])
def test_bad_override(override, expected, write_study, capsys):
    code = main(["run", str(write_study()), "--set", override])
    err = capsys.readouterr().err
    assert code == 2 and expected in err and "Traceback" not in err


def test_missing_file(capsys):
    assert main(["run", "nowhere.toml"]) == 2
    err = capsys.readouterr().err
    assert "nowhere.toml: no such study file" in err and "Traceback" not in err


def test_per_site_grids_make_products():
    from search.noise import expand_grid

    configs = expand_grid(["input+hidden_pre", "weights"], [0.1, 0.2],
                          {"input": [0.01, 0.02]}, "additive")
    keys = [c.key for c in configs]
    assert keys[0] == "none"
    combined = [c for c in configs if c.sites == (Site.INPUT, Site.HIDDEN_PRE)]
    assert len(combined) == 4  # input grid (2) × shared std grid for hidden_pre (2)
    assert {c.sigma(Site.INPUT) for c in combined} == {0.01, 0.02}
    assert [c.key for c in configs if c.sites == (Site.WEIGHTS,)] == ["weights:0.1", "weights:0.2"]
