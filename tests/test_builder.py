"""Models and data of your own: builder studies, the digits / npz / python datasets, their
errors (one line, exit 2, before the storage), the noise layer, and parity with the built-in
Keras engine."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from search import spec as spec_module
from search.cli import main
from search.data import load_dataset

BUILDER_STUDY = """\
[study]
name = "mine"
seed = 3
repeats = 2
record_every = 2

[data]
{data}

[model]
builder = "model.py:build"
epochs = 3
batch_size = 16

[noise]
placements = {placements}
std = [0.2]
"""

TABULAR_BUILDER = """\
import keras

def build(noise):
    inputs = keras.Input(shape=(2,))
    x = noise("input")(inputs)
    x = keras.layers.Dense(8, activation="relu")(x)
    x = noise("dense1")(x)
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))
"""

MOONS = 'dataset = "moons"\nn_samples = 60\nn_train = 40'


def builder_study(tmp_path: Path, code: str = TABULAR_BUILDER, data: str = MOONS,
                  placements: str = '["input", "dense1"]', extra: str = "") -> Path:
    (tmp_path / "model.py").write_text(textwrap.dedent(code))
    path = tmp_path / "mine.toml"
    path.write_text(BUILDER_STUDY.format(data=data, placements=placements) + extra)
    return path


def one_line_before_storage(path: Path, tmp_path: Path, capsys, *flags: str) -> str:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    assert main([*flags, "run", str(path), "--storage", url, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert not (tmp_path / "studies.db").exists()
    last = err.splitlines()[-1]
    assert last.startswith("noise-search: error: ")
    return err


# --- datasets ----------------------------------------------------------------------------------

def test_digits_keep_their_shape_for_a_builder_and_are_flattened_for_the_mlp(tmp_path):
    path = builder_study(tmp_path, data='dataset = "digits"\nn_train = 100\nscale = "minmax"',
                         placements='["input"]')
    s = spec_module.load(path)
    d = load_dataset(s)
    assert s.study.engine == "jax" and s.task == "multiclass"
    assert d.x_train.shape == (100, 8, 8) and d.x_test.shape == (1697, 8, 8)
    assert d.n_classes == 10 and d.n_features == 64
    assert d.x_train.min() == 0.0 and d.x_train.max() == 1.0  # every pixel scaled on train rows
    mlp = spec_module.from_dict({**s.to_dict(), "model": {"epochs": 3}, "study": {
        "name": "m", "engine": "fast"}}, path)
    assert load_dataset(mlp).x_train.shape == (100, 64)


def test_digits_need_rows_left_to_test(tmp_path):
    path = builder_study(tmp_path, data='dataset = "digits"\nn_train = 1797',
                         placements='["input"]')
    with pytest.raises(spec_module.SpecError, match="'data.n_train' must be < the rows of "
                                                    "'digits' \\(1797\\)"):
        spec_module.load(path)


def arrays(n_train: int = 30, n_test: int = 10) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"x_train": rng.normal(size=(n_train, 2)), "y_train": np.arange(n_train) % 2 + 3,
            "x_test": rng.normal(size=(n_test, 2)), "y_test": np.arange(n_test) % 2 + 3}


def test_npz_gives_its_own_split_and_labels_become_classes(tmp_path):
    np.savez(tmp_path / "mine.npz", **arrays())
    path = builder_study(tmp_path, data='dataset = "npz"\npath = "mine.npz"')
    d = load_dataset(spec_module.load(path))
    assert d.task == "binary" and len(d.x_train) == 30 and len(d.x_test) == 10
    assert set(np.unique(d.y_train)) == {0.0, 1.0}  # labels 3 and 4 -> classes 0 and 1


def test_python_loader_returns_the_four_arrays(tmp_path):
    np.savez(tmp_path / "mine.npz", **arrays(n_train=20))
    (tmp_path / "load.py").write_text(textwrap.dedent("""\
        import numpy as np
        def load():
            a = np.load("mine.npz")
            return a["x_train"], a["y_train"].astype(float), a["x_test"], a["y_test"]
        """))
    path = builder_study(tmp_path, data='dataset = "python"\nloader = "load.py:load"')
    d = load_dataset(spec_module.load(path))
    assert d.task == "binary" and d.x_train.shape == (20, 2)


@pytest.mark.parametrize("change, expected", [
    ({"y_train": np.zeros(29)}, "'y_train' has 29 rows but 'x_train' has 30"),
    ({"x_test": np.full((10, 2), np.nan)}, "'x_test' holds NaN or infinite values (first in "
                                           "row 0)"),
    ({"y_train": np.array(["a", "b"] * 15)}, "'y_train' must hold numbers (labels or targets: "
                                             "integers or floats); got dtype <U1"),
    ({"x_test": np.zeros((0, 2)), "y_test": np.zeros(0)}, "'x_test' is empty"),
    ({"y_train": np.arange(30) / 7}, "'y_train' must hold class labels (whole numbers)"),
    ({"x_test": np.zeros((10, 3))}, "'x_test' rows have shape (3,) but 'x_train' rows (2,)"),
])
def test_arrays_that_do_not_fit_are_one_line_naming_the_file_and_the_array(
        change, expected, tmp_path, capsys):
    np.savez(tmp_path / "mine.npz", **{**arrays(), **change})
    path = builder_study(tmp_path, data='dataset = "npz"\npath = "mine.npz"')
    err = one_line_before_storage(path, tmp_path, capsys)
    assert err == f"noise-search: error: {tmp_path / 'mine.npz'}: {expected}" or (
        err.startswith(f"noise-search: error: {tmp_path / 'mine.npz'}: {expected}"))


def test_npz_missing_an_array_names_it(tmp_path, capsys):
    np.savez(tmp_path / "mine.npz", **{k: v for k, v in arrays().items() if k != "y_test"})
    path = builder_study(tmp_path, data='dataset = "npz"\npath = "mine.npz"')
    assert "'y_test' is missing" in one_line_before_storage(path, tmp_path, capsys)


@pytest.mark.parametrize("loader, code, expected", [
    ("nothere.py:load", None, "'data.loader' 'nothere.py:load': no such file"),
    ("load.py:fetch", "def load():\n    pass\n", "'data.loader' 'load.py:fetch': load.py has no "
                                                  "function 'fetch'"),
    ("load.py:load", "def load():\n    raise OSError('server down')\n",
     "'data.loader' 'load.py:load' raised OSError: server down"),
    ("load.py:load", "def load():\n    return 3\n",
     "must return the four arrays (x_train, y_train, x_test, y_test), as a tuple or a dict; "
     "got int"),
    ("load.py:load", "import numpy as np\ndef load():\n    return np.zeros((9, 2)), "
                     "np.zeros(9)\n",
     "must return the four arrays (x_train, y_train, x_test, y_test), as a tuple or a dict; "
     "got a tuple of 2 items (array (9, 2), array (9,)); split the rows yourself: return "
     "x[:n], y[:n], x[n:], y[n:]"),
    ("load.py:load", "def load():\n    return {'X_train': 1, 'y_train': 2, 'X_test': 3, "
                     "'y_test': 4}\n",
     "got a dict with keys 'X_train', 'y_train', 'X_test', 'y_test'; missing 'x_train', "
     "'x_test'"),
    ("load.py:load", "import numpy as np\ndef load():\n    x = np.zeros((4, 2))\n    return "
                     "x, np.array([0, 1, 0, 1]), x, np.array([0, 1, 2, 1])\n",
     "'data.loader' 'load.py:load': 'y_test' holds label 2, which 'y_train' never has"),
    ("load.py:load", "import numpy as np\ndef load():\n    x = np.zeros((4, 2))\n    return "
                     "x, np.array([0, 1, 0, 1]) / 2, x, np.array([0, 1, 2, 1])\n",
     "'y_train' must hold class labels (whole numbers) for a classification task; got 0.5 in "
     "row 1"),
])
def test_loader_errors_are_one_line(loader, code, expected, tmp_path, capsys):
    if code is not None:
        (tmp_path / "load.py").write_text(code)
    path = builder_study(tmp_path, data=f'dataset = "python"\nloader = "{loader}"')
    err = one_line_before_storage(path, tmp_path, capsys)
    assert expected in err and len(err.splitlines()) == 1


# --- builder errors ----------------------------------------------------------------------------

RAISES = TABULAR_BUILDER.replace("    inputs =", "    raise ValueError('bad width')\n    inputs =")


@pytest.mark.parametrize("code, ref, placements, expected", [
    (None, "gone.py:build", '["input"]', "'model.builder' 'gone.py:build': no such file"),
    (TABULAR_BUILDER, "model.py:make", '["input"]', "model.py has no function 'make'"),
    (RAISES, "model.py:build", '["input"]', "'model.builder' 'model.py:build' raised "
                                            "ValueError: bad width"),
    ("def build(noise):\n    return 'a model'\n", "model.py:build", '["input"]',
     "must return a keras.Model (uncompiled); got builtins.str"),
    (TABULAR_BUILDER, "model.py:build", '["input", "conv9"]',
     "'noise.placements' names site 'conv9' that model.py:build never asks for (it asks for: "
     "input, dense1); got placement 'conv9'"),
    (TABULAR_BUILDER.replace('noise("dense1")', 'noise("input")'), "model.py:build",
     '["input"]', "noise('input') asked for twice"),
])
def test_builder_errors_are_one_line_before_storage(code, ref, placements, expected, tmp_path,
                                                    capsys):
    path = builder_study(tmp_path, code=code or "", placements=placements)
    path.write_text(path.read_text().replace("model.py:build", ref))
    err = one_line_before_storage(path, tmp_path, capsys)
    assert expected in err and len(err.splitlines()) == 1


def test_debug_prints_the_builders_traceback(tmp_path, capsys, monkeypatch):
    from search.errors import DEBUG_ENV

    monkeypatch.setenv(DEBUG_ENV, "")  # --debug sets it; monkeypatch removes it afterwards
    path = builder_study(tmp_path, code=RAISES)
    err = one_line_before_storage(path, tmp_path, capsys, "--debug")
    assert "Traceback (most recent call last)" in err and "raise ValueError('bad width')" in err
    assert err.splitlines()[-1].endswith("raised ValueError: bad width")


def test_builder_with_the_fast_engine_names_both_keys(tmp_path):
    path = builder_study(tmp_path, extra="")
    with pytest.raises(spec_module.SpecError, match="'study.engine' = 'fast' cannot train "
                                                    "'model.builder'"):
        spec_module.load(path, ["study.engine=fast"])


def test_mlp_keys_do_not_apply_with_a_builder(tmp_path):
    path = builder_study(tmp_path)
    with pytest.raises(spec_module.SpecError, match="'model.hidden' does not apply with "
                                                    "'model.builder'"):
        spec_module.load(path, ["model.hidden=[4]"])


def test_site_std_names_the_builders_sites(tmp_path):
    path = builder_study(tmp_path, extra="[noise.site_std]\ndense1 = [0.1, 0.5]\n")
    s = spec_module.load(path)
    assert [c.key for c in s.configurations()] == ["none", "input:0.2", "dense1:0.1",
                                                   "dense1:0.5"]
    with pytest.raises(spec_module.SpecError, match="'noise.site_std.conv3' names a site"):
        spec_module.load(path, ["noise.site_std.conv3=[0.1]"])


def test_a_study_without_builder_still_refuses_unknown_sites_without_tensorflow(write_study):
    with pytest.raises(spec_module.SpecError, match="'noise.placements' must be a non-empty "
                                                    "list of placements"):
        spec_module.load(write_study(), ["noise.placements=['conv1']"])


# --- the model against the data (builder.check_fits_data) --------------------------------------

def tabular(shape: str = "(2,)", last: str = 'Dense(1, activation="sigmoid")') -> str:
    return TABULAR_BUILDER.replace("shape=(2,)", f"shape={shape}").replace(
        'Dense(1, activation="sigmoid")', last)


BLOBS = 'dataset = "blobs"\nn_samples = 90\ncenters = 3\nrandom_state = 1\nn_train = 60'
FRIEDMAN = 'dataset = "regression"\nn_samples = 60\nn_features = 2\nn_train = 40'
WHERE = "mine.toml: 'model.builder' 'model.py:build': "


@pytest.mark.parametrize("code, data, expected", [
    (tabular(shape="(30,)"), MOONS,
     "its model takes rows of shape (30,); the data's rows have shape (2,): make its input "
     "keras.Input(shape=(2,))"),
    (tabular(), BLOBS,
     "its model gives 1 output per row; the data has 3 classes, which need 3 outputs, a "
     'probability per class: end the model with Dense(3, activation="softmax")'),
    (tabular(last="Dense(3)"), BLOBS,
     "its model's outputs are not probabilities (values from "),
    (tabular(last='Dense(3, activation="softmax")'), MOONS,
     "its model gives 3 outputs per row; the data has 2 classes (binary), which need 1 output, "
     'the probability of class 1: end the model with Dense(1, activation="sigmoid")'),
    (tabular(last="Dense(1)"), MOONS,
     "its model's outputs are not probabilities (values from "),
    (tabular(last="Dense(2)"), FRIEDMAN,
     "its model gives 2 outputs per row; the data is for regression, which needs 1 output, the "
     "predicted value: end the model with Dense(1)"),
    (tabular(shape="(2, 1)"), MOONS,
     "its model takes rows of shape (2, 1); the data's rows have shape (2,)"),
])
def test_a_model_that_does_not_fit_the_data_is_one_line_before_storage(code, data, expected,
                                                                      tmp_path, capsys):
    err = one_line_before_storage(builder_study(tmp_path, code=code, data=data), tmp_path, capsys)
    assert err.startswith(f"noise-search: error: {tmp_path / WHERE}{expected}")
    assert len(err.splitlines()) == 1


def test_a_multiclass_model_without_softmax_is_told_what_it_gave_and_what_it_needs(tmp_path,
                                                                                  capsys):
    err = one_line_before_storage(
        builder_study(tmp_path, code=tabular(last="Dense(3)"), data=BLOBS), tmp_path, capsys)
    assert re.search(r"values from -?\d+\.\d\d to -?\d+\.\d\d, rows summing to "
                     r"-?\d+\.\d\d to -?\d+\.\d\d on 60 training rows; its last layer's "
                     r"activation is linear\); the data has 3 classes, which need softmax on "
                     r'the last layer: end the model with Dense\(3, activation="softmax"\)$', err)


@pytest.mark.parametrize("last", ['Dense(3, activation="sigmoid")', "Dense(3)"])
def test_outputs_that_are_not_a_softmax_are_refused_even_in_zero_to_one(last, tmp_path):
    """Sigmoids give values in [0, 1] whose rows do not sum to 1; a linear last layer is refused
    by its activation even where its values happen to be in [0, 1]."""
    from search.builder import check_fits_data
    from search.usercode import UserCodeError

    path = builder_study(tmp_path, code=tabular(last=last), data=BLOBS)
    spec = spec_module.load(path)
    with pytest.raises(UserCodeError, match="not probabilities"):
        check_fits_data(spec, load_dataset(spec))


SOFTMAX_LAYER = """\
import keras

def build(noise):
    return keras.Sequential([noise("input"), keras.layers.Dense(8, activation="relu"),
                             noise("dense1"), keras.layers.Dense(3), keras.layers.Softmax()])
"""


@pytest.mark.parametrize("code, data", [
    (TABULAR_BUILDER, MOONS),
    (tabular(last='Dense(3, activation="softmax")'), BLOBS),
    (SOFTMAX_LAYER, BLOBS),
    (tabular(last="Dense(1)"), FRIEDMAN),
])
def test_models_that_fit_their_data_pass(code, data, tmp_path):
    from search.builder import check_fits_data

    spec = spec_module.load(builder_study(tmp_path, code=code, data=data))
    check_fits_data(spec, load_dataset(spec))


def test_a_model_that_fails_on_the_data_names_the_rows_it_was_called_on(tmp_path, capsys):
    code = """\
        import keras

        class Mine(keras.Model):
            def __init__(self, noise):
                super().__init__()
                self.noise, self.out = noise("input"), keras.layers.Dense(1, "sigmoid")

            def call(self, x):
                raise ValueError("wrong rows")

        def build(noise):
            return Mine(noise)
        """
    err = one_line_before_storage(builder_study(tmp_path, code=code, placements='["input"]'),
                                  tmp_path, capsys)
    assert f"{WHERE}its model, called on 40 training rows of shape (2,), raised ValueError: " \
        in err and "wrong rows" in err and len(err.splitlines()) == 1


# --- the noise layer ---------------------------------------------------------------------------

def test_noise_layer_adds_noise_only_while_training_and_only_at_configured_sites():
    import keras

    from search.builder import NoiseSites

    for kind in ("additive", "multiplicative"):
        noise = NoiseSites({"b": 0.5}, kind, seed=7)
        x = np.ones((2000, 4), np.float32)
        a, b = noise("a"), noise("b")
        assert noise.asked == ["a", "b"]
        assert isinstance(a, keras.layers.Identity)
        np.testing.assert_array_equal(np.asarray(a(x, training=True)), x)
        np.testing.assert_array_equal(np.asarray(b(x, training=False)), x)
        noisy = np.asarray(b(x, training=True)) - x
        assert abs(noisy.std() - 0.5) < 0.02 and abs(noisy.mean()) < 0.02  # N(0, σ²) or x·N(1, σ²)


# --- whole studies -----------------------------------------------------------------------------

@pytest.mark.slow  # real training for over 20 s: kept out of ./scripts/test --fast
def test_a_builder_study_runs_and_every_reader_works(tmp_path, capsys):
    """run, results, the record's σ per site, the SQL view and the report's data."""
    import sqlite3

    import optuna

    from search.analysis.results import read_results
    from search.report import with_boundaries
    from search.report.collect import collect as report_collect
    from search.study import record

    path = builder_study(tmp_path)
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    assert main(["run", str(path), "--storage", url, "--quiet"]) == 0
    capsys.readouterr()
    assert main(["results", "mine", "--storage", url]) == 0
    out = capsys.readouterr().out
    placements = {line.split()[0] for line in out.splitlines()[2:5]}
    assert placements == {"none", "input", "dense1"}
    study = optuna.load_study(study_name="mine", storage=url)
    attrs = {t.user_attrs["config"]: t.user_attrs for t in study.trials}
    assert attrs["dense1:0.2"][record.sigma_attr("dense1")] == 0.2
    assert attrs["input:0.2"][record.sigma_attr("input")] == 0.2
    rows = read_results(study).rows
    assert {r["config"] for r in rows} == {"none", "input:0.2", "dense1:0.2"}
    with sqlite3.connect(tmp_path / "studies.db") as db:
        view = db.execute("SELECT config, sigma_input FROM noise_search_trials").fetchall()
    assert sorted(view) == [("dense1:0.2", 0.0), ("input:0.2", 0.2), ("none", 0.0)]
    data = with_boundaries(report_collect(study))  # the builder says why there are none
    assert data.boundaries == ()
    assert any("builder" in note for note in data.notes)


@pytest.mark.slow  # real training for over 20 s: kept out of ./scripts/test --fast
def test_parity_with_the_built_in_keras_engine_seed_by_seed(tmp_path):
    """A builder that is the tutorial's MLP, started from the built-in engine's initial
    weights, gives the built-in Keras engine's test accuracies repeat by repeat."""
    from search.engine import keras_builder, keras_ref

    (tmp_path / "mlp.py").write_text(textwrap.dedent("""\
        import keras
        from search.engine._common import initial_weights

        def build(noise):
            inputs = keras.Input(shape=(2,))
            x = noise("input")(inputs)
            dense = keras.layers.Dense(16)
            x = dense(x)
            x = noise("hidden_pre")(x)
            x = keras.layers.Activation("relu")(x)
            x = noise("hidden_post")(x)
            out = keras.layers.Dense(1, activation="sigmoid")
            model = keras.Model(inputs, out(x))
            weights = initial_weights([2, 16, 1], noise.repeat + 1, noise.study_seed)
            for layer, (k, b) in zip((dense, out), weights):
                layer.set_weights([k[noise.repeat], b[noise.repeat]])
            return model
        """))
    common = ('[study]\nname = "p"\nseed = 5\nrepeats = 2\nrecord_every = 4\nengine = "keras"\n'
              '[data]\ndataset = "circles"\nn_samples = 100\nnoise = 0.1\nn_train = 30\n'
              '[noise]\nplacements = ["input", "hidden_pre", "hidden_post"]\nstd = [0.2]\n')
    (tmp_path / "builtin.toml").write_text(common + "[model]\nhidden = [16]\nepochs = 8\n")
    (tmp_path / "built.toml").write_text(common + '[model]\nbuilder = "mlp.py:build"\n'
                                                  "epochs = 8\n")
    builtin, built = (spec_module.load(tmp_path / f) for f in ("builtin.toml", "built.toml"))
    data = load_dataset(builtin)
    for a, b in zip(builtin.configurations(), built.configurations(), strict=True):
        assert a == b
        ours = keras_builder.train(built, data, b)
        theirs = keras_ref.train(builtin, data, a)
        np.testing.assert_array_equal(ours.test_metric, theirs.test_metric)
        np.testing.assert_allclose(ours.test_loss, theirs.test_loss, rtol=1e-4)


TENSORFLOW_START_UP = ("absl::InitializeLog", "oneDNN", "cuda", "cudart", "port.cc",
                       "WARNING:tensorflow")
LOADER = """\
import numpy as np

def load():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2))
    y = (x[:, 0] > 0).astype(int)
    return x[:40], y[:40], x[40:], y[40:]
"""


@pytest.mark.slow  # a fresh process imports TensorFlow: 10-20 s
@pytest.mark.parametrize("workers", ["1", "2"])
def test_no_tensorflow_start_up_line_reaches_the_console(workers, tmp_path):
    """A builder and loader study run from the shell, with no TF_CPP_MIN_LOG_LEVEL of its own:
    TensorFlow's C++ start-up lines (printed at its first import) stay off the console, in
    the main process and in worker processes."""
    (tmp_path / "load.py").write_text(LOADER)
    path = builder_study(tmp_path, data='dataset = "python"\nloader = "load.py:load"',
                         placements='["input"]')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "NOISE_SEARCH"))}
    command = [str(Path(sys.executable).parent / "noise-search"), "run", str(path),
               "--storage", f"sqlite:///{tmp_path / 'studies.db'}", "--quiet",
               "--workers", workers, "--set", "study.repeats=1", "--set", "model.epochs=1"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("study 'mine'") and "1 repeat each, 1 epoch," in done.stdout
    console = done.stdout + done.stderr
    assert [line for line in console.splitlines()
            if any(mark in line for mark in TENSORFLOW_START_UP)] == []
