"""noise-search: where to inject noise while training a neural network, and how much.

The Python API (search.api): `run` a study file, `open_study` by name, list `studies`;
`Study.results()` gives typed rows, the recommendation and DataFrames (`to_pandas`).
"""

from search.api import (
    Comparison,
    Results,
    Study,
    StudyInfo,
    delete_study,
    open_study,
    run,
    studies,
)

__version__ = "0.1.0"

__all__ = ["Comparison", "Results", "Study", "StudyInfo", "delete_study", "open_study", "run",
           "studies"]
