"""The worker's side of a search trial: each validation score reported to the trial's Optuna study, whose
pruner may stop the trial (:mod:`rnnbench.search` runs the study's other side)."""

from __future__ import annotations


def pruning_callback(trial: dict | None):
    """In a worker: ``report(step, score) -> bool`` reporting each validation score to the trial's study and
    saying whether the pruner stops it (None without a trial or a pruner)."""
    if not trial or trial.get("pruner", "none") == "none":
        return None
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = trial["storage"]
    storage = url if "://" in url else JournalStorage(JournalFileBackend(url))
    study = optuna.load_study(study_name=trial["study"], storage=storage, pruner=make_pruner(trial["pruner"]))
    handle = optuna.trial.Trial(study, trial["trial_id"])

    def report(step: int, score: float) -> bool:
        handle.report(score, step)
        return handle.should_prune()

    return report


def make_pruner(name: str):
    """``search.<kind>.pruner`` as Optuna's pruner (the same in the driver and in the workers: a study's
    pruner is not kept in its storage)."""
    import optuna

    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()
