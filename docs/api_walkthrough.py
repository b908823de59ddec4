"""noise-search from Python, as in a notebook: each `# %%` block is a cell.

Run it as a script (`python docs/api_walkthrough.py`); tests/test_api.py runs it too. It
trains a small version of the tutorial's study (5 configurations × 5 seeds, 300 epochs: a
few seconds), reads the results as DataFrames, takes the recommendation and a figure, and
compares two configurations. The storage is $NOISE_SEARCH_STORAGE, else a SQLite file in a
temporary folder.
"""

# %% Run a study: the file's keys, changed as `--set` would change them.
import os
import tempfile
from pathlib import Path

import search

storage = os.environ.get("NOISE_SEARCH_STORAGE") or (
    f"sqlite:///{Path(tempfile.mkdtemp()) / 'walkthrough.db'}")
study_file = Path(__file__).resolve().parents[1] / "studies" / "circles.toml"
study = search.run(study_file, storage=storage, quiet=True, overrides={
    "study.name": "walkthrough",
    "study.repeats": 5,
    "model.epochs": 300,
    "noise.placements": ["input", "hidden_pre"],
    "noise.std": [0.1, 0.3],
})
print(study)

# %% The results: one row per configuration, best first.
results = study.results()
configs = results.to_pandas()  # the columns of `noise-search results --format json`
print(configs[["config", "n", "mean", "diff", "diff_ci_low", "diff_ci_high", "p_paired",
               "paired_test", "p_holm", "seeds_needed"]].to_string(index=False))

# %% Every seed of every configuration (seed r shares its initial weights and data order).
seeds = results.to_pandas("seed")
print(seeds.pivot(index="repeat", columns="config", values="value").round(3).to_string())

# %% Under test-time noise: one row per configuration × test σ ([robustness] of the file).
profile = results.to_pandas("profile")
print(profile.pivot(index="test_std", columns="config", values="mean").round(3).to_string())

# %% The answer, as a word for scripts and as the sentence the CLI prints.
answer = results.recommendation
print(answer.decision, answer.configuration)
print(answer.text)

# %% Two configurations, paired by seed.
pair = study.compare("hidden_pre:0.3", "none")
print(f"Δ {pair.diff:+.4f} over {pair.n} seeds, p = {pair.p_paired:.3g} ({pair.test})")
print(pair.verdict)

# %% A figure of the report (plotly): in a notebook, `figure.show()` draws it.
figures = study.figures()
print(sorted(figures))
figure = figures["heatmap"]
print(type(figure).__name__, len(figure.data), "trace(s)")
