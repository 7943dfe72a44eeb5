"""Checkpoints of a JAX model's training: orbax, one folder per step under the run's ``checkpoints/``, the
newest kept.

A checkpoint holds the parameters, the optimizer state, the best parameters so far (and the weights'
moving average with ``ema``) and a :class:`TrainState`: the epoch and step, early stopping's record, and,
mid-epoch, the position inside the epoch (batches done, their tokens and losses), so a run killed at any
moment resumes bit for bit. Checkpoints hold no RNG state: data order and dropout keys are functions of
(seed, epoch, step). Each carries a fingerprint of its arrays: one that cannot be read back (truncated,
garbled) is deleted with a warning and the one before is tried, else the run trains from the start.
orbax writes asynchronously; :func:`save` waits until the checkpoint is whole.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import shutil
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import jax
import numpy as np

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from ...runs import Run


@dataclass
class TrainState:
    """What a checkpoint holds besides parameters and optimizer state."""

    epoch: int = 0  # epochs completed
    step: int = 0
    best_metric: float | None = None
    best_epoch: int = -1
    bad_evals: int = 0
    compiled_programs: int = 0  # the most programs any process of this run compiled
    # the position inside epoch ``epoch`` (a mid-epoch checkpoint; all 0 at an epoch's end):
    batch: int = 0  # batches of the epoch's plan already trained
    epoch_tokens: int = 0  # their real tokens
    epoch_losses: np.ndarray | None = None  # their training losses (float32), for the epoch's mean loss
    tokens: int = -1  # real tokens of the epochs before (the curves' x axis); -1: not recorded (older format)
    wall_seconds: float = -1.0  # training seconds before the checkpoint; -1: not recorded (older format)


class CorruptCheckpoint(Exception):
    """A checkpoint whose contents do not match the fingerprint saved with them."""


def checkpointer(path: Path):
    import orbax.checkpoint as ocp

    # cleanup_tmp_directories: a save killed half-way leaves a temp folder; it goes when the run resumes
    options = ocp.CheckpointManagerOptions(max_to_keep=1, create=True, cleanup_tmp_directories=True)
    return ocp.CheckpointManager(path.absolute(), item_handlers=ocp.StandardCheckpointHandler(), options=options)


@contextmanager
def quiet():
    """Within it, orbax's and tensorstore's failed reads and writes (a full disk, a damaged checkpoint) log
    nothing and print no thread tracebacks: a screenful each, which the caller says in one line."""
    import logging
    import threading

    loggers = [logging.getLogger(name) for name in ("absl", "asyncio")]
    levels, hooks = [lg.level for lg in loggers], (threading.excepthook, sys.excepthook, sys.unraisablehook)
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    threading.excepthook = sys.unraisablehook = lambda *args: None
    sys.excepthook = lambda *args: None  # what C++ callbacks print their errors with (PyErr_Print)
    before, failed = set(threading.enumerate()), False
    try:
        yield
    except BaseException:
        failed = True
        for thread in set(threading.enumerate()) - before:  # the save's other writers mostly fail here, quietly
            try:
                thread.join(timeout=60)
            except RuntimeError:  # not started yet
                pass
        raise
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
        threading.excepthook, sys.excepthook, sys.unraisablehook = hooks
        if failed:  # the rest go on failing after this, printing through the hooks just put back
            _silence_leftovers()


_SILENCED: list[bool] = []


def _silence_leftovers() -> None:
    """After a failed save or restore, orbax's abandoned tasks and tensorstore's callbacks into closed event
    loops keep reporting the same failure, as asyncio log records and thread tracebacks, until they are
    collected: from then on this process drops those (and only those)."""
    import logging
    import threading

    if _SILENCED:
        return
    _SILENCED.append(True)

    def leftover(exc) -> bool:
        text = str(exc)
        return "Event loop is closed" in text or "RESOURCE_EXHAUSTED" in text or "DATA_LOSS" in text

    logging.getLogger("asyncio").addFilter(lambda r: "exception was never retrieved" not in r.getMessage())
    logging.getLogger("absl").addFilter(lambda r: not leftover(r.getMessage()))
    unraisable, thread_hook, except_hook = sys.unraisablehook, threading.excepthook, sys.excepthook
    sys.unraisablehook = lambda u: None if leftover(u.exc_value) else unraisable(u)
    threading.excepthook = lambda a: None if leftover(a.exc_value) else thread_hook(a)
    sys.excepthook = lambda t, v, tb: None if leftover(v) else except_hook(t, v, tb)


@contextmanager
def closing(manager):
    """Close the checkpoint manager however training ends (it waits for a save in flight). After a failure
    (a full disk), closing raises orbax's copy of the same failure again: dropped, the first one is said;
    a failure that shows only at the close is an ``OSError`` naming the checkpoints, as :func:`save` says."""
    try:
        yield
    except BaseException:
        if manager is not None:
            try:
                with quiet():  # after a failed save its threads may still be failing
                    manager.close()
            except Exception:  # noqa: BLE001 - the failure being raised already, told again by orbax
                pass
        raise
    else:
        if manager is not None:
            try:
                with quiet():
                    manager.close()
            except Exception as e:  # noqa: BLE001 - orbax and tensorstore wrap I/O errors in their own types
                raise _as_os_error(e, str(manager.directory)) from e


_META_INT = ("epoch", "step", "bad_evals", "compiled_programs", "batch", "epoch_tokens", "tokens")


def _meta(state: TrainState) -> dict:
    losses = state.epoch_losses if state.epoch_losses is not None and len(state.epoch_losses) else np.zeros(1)
    return {**{k: np.array(getattr(state, k), np.int64) for k in _META_INT},
            "best_metric": np.array(np.nan if state.best_metric is None else state.best_metric, np.float64),
            "best_epoch": np.array(state.best_epoch, np.float64),
            "wall_seconds": np.array(state.wall_seconds, np.float64),
            "epoch_losses": np.asarray(losses, np.float32)}  # never empty: orbax stores no 0-length arrays


def _tree(params, opt_state, best_params, state: TrainState, ema_params=None) -> dict:
    extra = {} if ema_params is None else {"ema_params": ema_params}
    return {"params": params, "opt_state": opt_state, "best_params": best_params, **extra, "meta": _meta(state)}


def _fingerprint(tree: dict) -> float:
    """A float64 checksum of every array, the metadata's too (but itself): a garbled checkpoint that still
    decodes shows as a mismatch. Exact: the same arrays give the same sums."""
    leaves = jax.tree.leaves({**tree, "meta": {k: v for k, v in tree["meta"].items() if k != "fingerprint"}})
    return float(sum((k + 1) * np.sum(np.nan_to_num(np.asarray(leaf, np.float64))) for k, leaf in enumerate(leaves)))


def save(manager, params, opt_state, best_params, state: TrainState, ema_params=None) -> None:
    """Write a checkpoint at ``state.step`` and wait until it is whole; a failure (a full disk) is an
    ``OSError`` naming the checkpoint, the previous checkpoint left as it was."""
    import orbax.checkpoint as ocp

    tree = _tree(params, opt_state, best_params, state, ema_params)
    tree["meta"]["fingerprint"] = np.array(_fingerprint(tree), np.float64)
    where = str(Path(manager.directory) / str(state.step))
    try:
        with quiet():
            manager.save(state.step, args=ocp.args.StandardSave(tree), force=True)
            manager.wait_until_finished()  # orbax writes asynchronously: a checkpoint counts once it is whole
    except Exception as e:  # noqa: BLE001 - orbax and tensorstore wrap I/O errors in their own types
        raise _as_os_error(e, where) from e


def _as_os_error(e: Exception, where: str) -> OSError:
    """A failed checkpoint write as the ``OSError`` it is underneath (a full disk: ``ENOSPC``), naming ``where``."""
    cause = next((c for c in _causes(e) if isinstance(c, OSError) and c.errno), None)
    full = "No space left" in str(e) or "RESOURCE_EXHAUSTED" in str(e)  # tensorstore's word for ENOSPC
    code = cause.errno if cause is not None else (errno.ENOSPC if full else errno.EIO)
    why = os.strerror(code) if code in (errno.ENOSPC, errno.EDQUOT, errno.EROFS) else \
        f"{type(e).__name__}: {(str(e).splitlines() or ['?'])[0][:200]}"
    return OSError(code, f"checkpoint not written ({why})", where)


def _causes(e: BaseException):
    while e is not None:
        yield e
        e = e.__cause__ or e.__context__


def _restore(manager, step: int, params, opt_state, best_params, ema_params=None):
    """The checkpoint of ``step``, in the current format or an earlier one (epoch ends only, no position,
    no fingerprint). Raises what orbax raises for an unreadable one, or :class:`CorruptCheckpoint`."""
    import orbax.checkpoint as ocp

    target = jax.tree.map(ocp.utils.to_shape_dtype_struct,
                          _tree(params, opt_state, best_params, TrainState(), ema_params))
    saved = manager.item_metadata(step)
    if saved is not None and "meta" in saved:  # the metadata keys (and shapes) this checkpoint has
        target["meta"] = {k: jax.ShapeDtypeStruct(tuple(v.shape), v.dtype) for k, v in saved["meta"].items()}
    tree = manager.restore(step, args=ocp.args.StandardRestore(target))
    meta = {k: np.asarray(v) for k, v in tree["meta"].items()}
    if "fingerprint" in meta and float(meta["fingerprint"]) != _fingerprint(tree):
        raise CorruptCheckpoint("its arrays do not match the fingerprint saved with them")
    best = float(meta["best_metric"])
    state = TrainState(best_metric=None if math.isnan(best) else best, best_epoch=float(meta["best_epoch"]),
                       **{k: int(meta[k]) for k in _META_INT if k in meta},
                       **({"wall_seconds": float(meta["wall_seconds"])} if "wall_seconds" in meta else {}))
    if state.batch:
        state.epoch_losses = np.asarray(meta["epoch_losses"], np.float32)[:state.batch]
        if len(state.epoch_losses) != state.batch:
            raise CorruptCheckpoint(f"{len(state.epoch_losses)} losses saved for {state.batch} batches")
    return tree["params"], tree["opt_state"], jax.device_get(tree["best_params"]), state, tree.get("ema_params")


def restore_latest(manager, run: Run, params, opt_state, best_params, ema_params=None):
    """The newest checkpoint that reads back whole, or None. One that does not (truncated, garbled, of
    another shape) is deleted with a warning, and the one before it tried; with none left the run trains
    from the start (its metrics log emptied)."""
    steps_on_disk = sorted(manager.all_steps(), reverse=True)
    for step in steps_on_disk:
        try:
            with quiet():
                return _restore(manager, step, params, opt_state, best_params, ema_params)
        except Exception as e:  # noqa: BLE001 - orbax, tensorstore and numpy fail in their own ways
            reason = f"{type(e).__name__}: {(str(e).splitlines() or ['?'])[0][:200]}"
            log.warning(f"warning: checkpoint {run.checkpoint_dir / str(step)} cannot be read back ({reason}); "
                        "deleted")
            shutil.rmtree(run.checkpoint_dir / str(step), ignore_errors=True)
            manager.reload()
    if steps_on_disk:
        log.warning(f"warning: {run.path.name}: no readable checkpoint left: training from the start")
        run.clear_metrics()
        run.log({"event": "checkpoint_unreadable", "step": 0, "deleted": steps_on_disk})
    return None
