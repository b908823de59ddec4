"""From stored trials to answers: statistics, result rows, the recommendation and verdicts.

- ``stats``      pure statistics on per-repeat values (no Optuna, no TensorFlow)
- ``results``    a study's trials -> one row per configuration, with its comparison
- ``recommend``  the recommendation and the compare verdict: one decision rule
"""
