"""What reaches the user's terminal: no TensorFlow start-up chatter unless --debug, names
from the storage printed safely, whole phrases in --help, no Δ on the baseline's own line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from search import format as fmt
from search.cli import cli, main
from tests.test_results import BASE, GOOD, make_study

ROOT = Path(__file__).resolve().parent.parent

# Printed by TensorFlow's C++ code while its libraries load, before any Python setting is read.
CHATTER = ("absl::InitializeLog", "oneDNN", "cuda", "cpu_feature_guard")

LOAD = ("import sys\n"
        "from search import engine\n"
        "engine.load('fast')\n"
        "print(''.join(engine.startup_messages), end='')\n")


def _load_engine(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("TF_CPP_MIN_LOG_LEVEL", "NOISE_SEARCH_DEBUG")}
    return subprocess.run([sys.executable, "-c", LOAD], capture_output=True, text=True,
                          timeout=300, cwd=ROOT, env={**clean, **env})


@pytest.mark.processes
def test_tensorflow_start_up_messages_are_kept_off_the_terminal_unless_debugging():
    quiet = _load_engine()
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    captured = quiet.stdout  # what TensorFlow said, kept in engine.startup_messages
    loud = _load_engine(NOISE_SEARCH_DEBUG="1")
    assert loud.returncode == 0
    assert loud.stdout == ""  # nothing captured: it went to the terminal
    # Whatever this TensorFlow build says (six lines here), --debug shows it and only it.
    assert bool(captured) == bool(loud.stderr)
    for marker in CHATTER:
        assert (marker in captured) == (marker in loud.stderr)


def test_a_failing_import_still_shows_what_it_wrote(monkeypatch, capfd):
    """The capture must not hide why an engine could not load."""
    from search import engine

    def broken(name):
        os.write(2, b"libfoo.so: cannot open shared object file\n")
        raise ImportError("no TensorFlow")

    monkeypatch.setattr(engine.importlib, "import_module", broken)
    monkeypatch.delitem(sys.modules, "search.engine.keras_ref", raising=False)
    with pytest.raises(ImportError):
        engine.load("keras")
    assert "libfoo.so: cannot open shared object file" in capfd.readouterr().err


def test_debug_flag_shows_the_traceback_behind_an_error(capsys, monkeypatch):
    monkeypatch.delenv("NOISE_SEARCH_DEBUG", raising=False)
    assert main(["studies", "--storage", "nonsense"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1
    assert main(["--debug", "studies", "--storage", "nonsense"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert err.splitlines()[-1].startswith("noise-search: error: storage URL 'nonsense'")
    assert os.environ.pop("NOISE_SEARCH_DEBUG") == "1"  # workers inherit it


# Control characters, ANSI escapes, bidirectional overrides: a name must not drive the terminal.
HOSTILE = ["red\x1b[31mX\x1b[0m", "bell\x07", "cr\rover", "tab\tname", "rtl\u202eevil",
           "nul\x00", "del\x7f", "esc\x1b]0;title\x07"]


@pytest.mark.parametrize("name", HOSTILE)
def test_names_are_printed_safely(name, sqlite_url, capsys):
    make_study(sqlite_url, {"none": BASE, "input:0.1": GOOD}, name=name)
    outputs = []
    for argv in (["studies"], ["results", name], ["results", name + "x"], ["compare", name,
                 "input:0.1", "none"]):
        main([*argv, "--storage", sqlite_url])
        out, err = capsys.readouterr()
        outputs.append(out + err)
    for text in outputs:
        assert fmt.name(name) in text
        assert not any(c in text for c in name if not c.isprintable())


def test_format_name_escapes_only_what_is_unprintable():
    assert fmt.name("circles-2 σ=0.1") == "circles-2 σ=0.1"
    assert fmt.name("a\x1b[1mb") == "a\\x1b[1mb"
    assert fmt.quoted("a\x1bb") == "'a\\x1bb'" and fmt.quoted("it's") == '"it\'s"'
    for text in HOSTILE:
        assert fmt.name(text).isprintable()


def test_top_level_help_shows_whole_phrases(capsys):
    assert main(["--help"]) == 0
    commands = capsys.readouterr().out.split("Commands:")[1].strip().splitlines()
    assert len(commands) == len(cli.commands) == 7  # delete is the seventh
    for line in commands:
        assert not line.rstrip().endswith(("...", "e.g.")), line


def test_the_baseline_line_has_no_difference_with_itself(write_study, sqlite_url, fake_engine,
                                                          capsys):
    assert main(["run", str(write_study()), "--storage", sqlite_url]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines()
             if line.startswith("  ") and "test accuracy" in line]
    baseline = [line for line in lines if line.split()[0] == "none"]
    assert len(baseline) == 1 and "Δ" not in baseline[0] and "vs baseline" not in baseline[0]
    others = [line for line in lines if line.split()[0] != "none"]
    assert others and all("vs baseline" in line for line in others)


def test_a_race_marks_every_stopped_configuration_and_says_what_it_saved(
        write_study, sqlite_url, fake_engine, capsys):
    """A round that stops several configurations is closed by one block: each of them gets
    its "stopped:" line (not only the one whose block closed the round), a block with more to
    come says so, the bar counts every stopped configuration as done, and the run ends with
    the seeds racing trained against a full run's."""
    import optuna

    from tests.test_race import RACE, scored

    fake_engine.score = scored
    argv = ["run", str(write_study()), "--storage", sqlite_url]
    for item in RACE:
        argv += ["--set", item]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    trials = optuna.load_study(study_name="tiny", storage=sqlite_url).trials
    stopped = {t.user_attrs["config"]: t.user_attrs["pruned_reason"] for t in trials
               if t.state == optuna.trial.TrialState.PRUNED}
    assert set(stopped) == {"input:0.1", "input:0.3", "hidden_pre:0.3"}
    lines = [line.split(maxsplit=1) for line in out.splitlines() if line.startswith("  ")]
    said = {key: rest.removeprefix("stopped: ") for key, rest in lines
            if rest.startswith("stopped: ")}
    assert said == stopped  # every one, once, with its reason
    assert all(not rest.startswith("stopped") or key in stopped for key, rest in lines)
    assert "stopped by racing" not in out.split("best:")[0]  # the reason is the stored one
    waiting = [rest for _, rest in lines if "so far, racing" in rest]
    # Every configuration's first block (5 seeds), and the second of the ones still racing.
    assert len(waiting) >= 5 and all("n=5 of 15" in r or "n=10 of 15" in r for r in waiting)
    assert "5/5" in err  # the bar: every configuration done, stopped ones too
    seeds = sum(t.user_attrs["repeats"] for t in trials)
    summary = out.split("best:")[1].splitlines()
    assert summary[1] == (f"racing trained {seeds} of 75 seeds ({seeds / 75:.0%}); "
                          "3 of 5 configurations stopped early")
    assert "alpha / " not in out
