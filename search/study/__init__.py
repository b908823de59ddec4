"""The Optuna side of noise-search: one trial is one noise configuration.

- ``record``   what a study stores (every attribute key, TrialRecord, StudyMeta, "done")
- ``space``    a configuration as Optuna parameters, and the sampler's suggestion
- ``queue``    taking, queueing and recovering configurations in the shared storage
- ``schedule`` the blocks of seeds a configuration is trained in, and racing's rounds
- ``heartbeat`` the heartbeat of a running trial
- ``opening``  creating a study, or resuming it only from the same spec
- ``deleting`` deleting a study, under its lock
- ``runner``   StudyRunner: a worker's loop and one trial

Nothing is imported here, so reading the record (results, report) does not load the data
or engine modules.
"""
