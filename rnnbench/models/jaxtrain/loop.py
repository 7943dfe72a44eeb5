"""The training loop every JAX model kind shares: epochs over length-bucketed batches, validation (each
epoch, and every ``eval_every`` steps), early stopping on the validation metric, a moving average of the
weights (``ema``), the divergence rule, progress, checkpoints (:mod:`.checkpoints`) and SIGTERM.

A model kind supplies a :class:`Trainable`: its parameters and optimizer, one training step and one
prediction over the validation texts (each a jit-compiled program of its own), and gets the rest. The
data order and dropout keys are functions of (seed, epoch, step), so a run resumed from a checkpoint
continues exactly as an uninterrupted one would.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from ... import termination
from ...data import Task
from ...errors import Pruned
from ...metrics import better, evaluate, higher_is_better, primary, tune_decision
from ...outputs import duration
from . import checkpoints
from .batching import Batch, Batcher
from .checkpoints import TrainState

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from ...runs import Run


class Trainable(Protocol):
    """What a JAX model gives the loop."""

    params: Any  # the initial parameters (a pytree of arrays)
    tx: Any  # its optax optimizer (the learning rate injected: ``lr_decay`` sets it each epoch)
    pad_width: Callable[[int], int] | None  # the width a training batch of a given width is padded to; None: as is

    def train_step(self, params, opt_state, batch: Batch, step: int) -> tuple:
        """One update: (params, opt_state, loss, gradient norm); ``params`` and ``opt_state`` may be donated."""

    def predict(self, params, inputs) -> np.ndarray:
        """Scores (class probabilities, or values in training units) of the validation inputs."""

    def compiled_programs(self) -> int:
        """How many programs it has compiled so far (recorded with the run)."""


class LoopSettings(Protocol):
    """The options of a model kind's section that the loop reads."""

    learning_rate: float
    lr_decay: float
    ema: float
    epochs: int
    patience: int
    eval_every: int
    checkpoint_every_s: float | None


@dataclass
class FitResult:
    trainable: Trainable
    best_params: Any  # the parameters (or their moving average) that validated best, on the host
    state: TrainState
    real_token_fraction: float  # real tokens / tokens processed (padding included), over one epoch
    compiled_programs: int
    train_seconds: float  # this process's training loop
    diverged: str = ""  # why training stopped early on a non-finite loss or score, keeping the best epoch
    earlier_seconds: float = 0.0  # a resumed run: the training its earlier processes did, to its checkpoint


def fit(trainable: Trainable, cfg: LoopSettings, task: Task, train: Batcher, val, val_y: np.ndarray, seed: int,
        run: Run | None = None, progress: bool = True, y_scale=(0.0, 1.0), metric: str | None = None,
        prune=None) -> FitResult:
    """Train with early stopping on the validation ``metric`` (the selection metric, at its tuned decision
    rule: :func:`rnnbench.metrics.selection_score`; default the task's primary one; ``val``: the inputs
    ``trainable.predict`` reads). ``prune(step, score) -> bool``: a search trial's pruner, told each
    validation score; it stops the fit with :class:`~rnnbench.errors.Pruned`.
    With a ``run``: log to it, checkpoint after every epoch (and every ``cfg.checkpoint_every_s`` seconds
    within one), and resume from its last checkpoint, its metrics log kept up to that checkpoint. A SIGTERM
    is served between two steps: a checkpoint, then :class:`~rnnbench.termination.Terminated`."""
    return _Loop(trainable, cfg, task, train, val, val_y, seed, run, progress, y_scale, metric, prune).run()


def moving_average(decay: float):
    """The compiled update of the weights' moving average (``ema``): ``average(avg, params)`` moves ``avg``
    (donated) ``1 − decay`` of the way to ``params``."""
    return jax.jit(lambda avg, params: jax.tree.map(lambda e, p: e + (1.0 - decay) * (p - e), avg, params),
                   donate_argnums=(0,))


class _Loop:
    """One fit's state: the parameters, the optimizer's, the best so far, the average, the position."""

    def __init__(self, trainable: Trainable, cfg: LoopSettings, task: Task, train: Batcher, val, val_y, seed: int,
                 run: Run | None, progress: bool, y_scale, metric: str | None = None, prune=None):
        self.trainable, self.cfg, self.task, self.train, self.val, self.val_y = trainable, cfg, task, train, val, val_y
        self.seed, self.run_, self.progress, self.y_scale = seed, run, progress, y_scale
        self.params = trainable.params
        self.opt_state = trainable.tx.init(self.params)
        self.best_params = jax.device_get(self.params)
        # the average starts at the initial weights
        self.ema_params = jax.tree.map(jnp.copy, self.params) if cfg.ema else None
        self.average = moving_average(cfg.ema)
        self.state = TrainState()
        self.metric = metric or primary(task)[0]
        self.higher = higher_is_better(task, self.metric, "experiment.selection_metric")
        self.manager = checkpoints.checkpointer(run.checkpoint_dir) if run is not None else None
        self.log = run.log if run is not None else (lambda record: None)
        self.tokens_seen, self.wall_before = 0, 0.0  # the curve's x axes continue across a resume
        self.saved_step = None  # the step of the checkpoint on disk
        self.diverged = ""
        self.prune, self.evaluations = prune, 0

    def compiled_programs(self) -> int:
        return self.trainable.compiled_programs() + self.average._cache_size()

    def wall(self) -> float:
        return self.wall_before + time.perf_counter() - self.t_start

    def restore(self) -> None:
        """Continue from the run's newest readable checkpoint, if it has one."""
        restored = checkpoints.restore_latest(self.manager, self.run_, self.params, self.opt_state, self.best_params,
                                              self.ema_params)
        if restored is None:
            return
        self.params, self.opt_state, self.best_params, self.state, self.ema_params = restored
        state = self.state
        self.saved_step = state.step
        kept = self.run_.truncate_metrics(state.step)
        if state.tokens >= 0:
            self.tokens_seen, self.wall_before = state.tokens, state.wall_seconds
        else:  # a checkpoint of an earlier rnnbench, always at an epoch's end: from the log
            self.tokens_seen = max((r.get("tokens", 0) for r in kept), default=0)
            self.wall_before = max((r.get("wall_seconds", 0.0) for r in kept), default=0.0)
        self.log({"event": "resumed", "epoch": state.epoch, "step": state.step,
                  **({"batch": state.batch} if state.batch else {})})

    def stop_diverged(self, reason: str) -> bool:
        """A non-finite loss or score: a failure before any validated epoch; after one, the end of
        training as early stopping would end it (the best epoch is kept, the reason recorded)."""
        state = self.state
        if state.best_metric is None:
            raise FloatingPointError(reason)
        self.diverged = f"{reason}; kept the best epoch ({state.best_epoch:g})"
        self.log({"event": "diverged", "step": state.step, "reason": reason, "best_epoch": state.best_epoch})
        return True

    def evaluate_now(self, epoch_float: float) -> bool:
        """Score the validation data; keep the weights if they are the best so far. Whether to stop."""
        state, task = self.state, self.task
        weights = self.params if self.ema_params is None else self.ema_params
        scores = self.trainable.predict(weights, self.val)
        if task.is_regression:
            scores = scores * self.y_scale[1] + self.y_scale[0]
        val_metrics = evaluate(task, self.val_y, scores, tune_decision(task, self.val_y, scores, self.metric))
        score = val_metrics[self.metric]
        if not math.isfinite(score):
            return self.stop_diverged(f"validation {self.metric} is {score} at step {state.step}")
        if better(self.higher, score, state.best_metric):
            state.best_metric, state.best_epoch, state.bad_evals = score, epoch_float, 0
            self.best_params = jax.device_get(weights)
        else:
            state.bad_evals += 1
        self.log({"event": "eval", "step": state.step, "epoch": epoch_float,
                  **{f"val_{k}": v for k, v in val_metrics.items()}, "val_metric": score, "metric": self.metric,
                  "wall_seconds": self.wall()})
        self.evaluations += 1
        if self.prune is not None and self.prune(self.evaluations, score):
            raise Pruned(epoch_float, score, self.metric)
        return state.bad_evals >= self.cfg.patience

    def checkpoint(self, batch: int, epoch_tokens: int, losses: list) -> None:
        """Save the whole state, ``batch`` batches into epoch ``state.epoch`` (0: at its start)."""
        state = self.state
        state.batch, state.epoch_tokens = batch, epoch_tokens
        state.epoch_losses = np.asarray(jax.device_get(jnp.stack(losses))) if batch and losses else None
        state.tokens, state.wall_seconds = self.tokens_seen, self.wall()
        state.compiled_programs = max(state.compiled_programs, self.compiled_programs())
        self.run_.check_claim()  # another process took the run over: stop before writing to it
        try:
            checkpoints.save(self.manager, self.params, self.opt_state, self.best_params, state, self.ema_params)
        except OSError:
            self.run_.check_claim()  # a save that failed because another process writes the run: say that
            raise
        self.saved_step, self.last_save = state.step, time.perf_counter()

    def run(self) -> FitResult:
        cfg, state = self.cfg, self.state
        if self.manager is not None:
            self.restore()
            state = self.state
        self.real, processed = self.train.padding_stats(self.trainable.pad_width)
        self.t_start = time.perf_counter()
        self.last_save = self.t_start
        stop = state.bad_evals >= cfg.patience
        with checkpoints.closing(self.manager), termination.deferred():  # a SIGTERM waits for the next step boundary
            while state.epoch < cfg.epochs and not stop:
                stop = self.run_epoch()
            state.batch, state.epoch_tokens, state.epoch_losses = 0, 0, None
        return FitResult(self.trainable, self.best_params, state, self.real / max(processed, 1),
                         max(state.compiled_programs, self.compiled_programs()), time.perf_counter() - self.t_start,
                         self.diverged, self.wall_before)

    def run_epoch(self) -> bool:
        """Epoch ``state.epoch`` from where it stands (a mid-epoch checkpoint resumes inside it), then its
        evaluation and checkpoint. Whether training stops."""
        cfg, state, train, steps = self.cfg, self.state, self.train, self.trainable
        plan = train.epoch(self.seed, state.epoch)
        start = min(state.batch, len(plan))  # > 0: resumed from a mid-epoch checkpoint
        lr = cfg.learning_rate * cfg.lr_decay ** state.epoch
        if cfg.lr_decay != 1.0:  # a runtime value (inject_hyperparams): no recompile
            self.opt_state.hyperparams["learning_rate"] = jnp.asarray(lr, jnp.float32)
        bar = tqdm(total=len(plan), initial=start, desc=f"epoch {state.epoch + 1}/{cfg.epochs}", unit="batch",
                   disable=None if self.progress else True, leave=False, dynamic_ncols=True)
        epoch_tokens = state.epoch_tokens if start else 0
        losses = [jnp.asarray(x) for x in state.epoch_losses[:start]] if start else []
        meter = _EpochMeter(f"epoch {state.epoch + 1}/{cfg.epochs}", len(plan) - start, self.real - epoch_tokens,
                            enabled=self.progress, lines=self.progress and bar.disable)
        t_epoch, tokens_at_start = time.perf_counter(), epoch_tokens
        for i in range(start, len(plan)):
            every = cfg.checkpoint_every_s
            due = termination.requested() or (every is not None and time.perf_counter() - self.last_save >= every)
            if due and self.manager is not None and state.step != self.saved_step:
                self.checkpoint(i, epoch_tokens, losses)  # between two steps: everything before step i is in
            if termination.requested():
                bar.close()
                raise termination.Terminated(f"checkpoint at step {state.step}" if self.manager is not None
                                             else f"stopped at step {state.step}")
            bucket, idx = plan[i]
            batch = train.batch(idx, bucket)
            self.params, self.opt_state, loss, gnorm = steps.train_step(self.params, self.opt_state, batch, state.step)
            if self.ema_params is not None:
                self.ema_params = self.average(self.ema_params, self.params)
            state.step += 1
            epoch_tokens += batch.real_tokens
            losses.append(loss)
            if state.step % 20 == 0 or i == len(plan) - 1:
                loss_v, gnorm_v = float(loss), float(gnorm)
                if not (math.isfinite(loss_v) and math.isfinite(gnorm_v)):
                    bar.close()
                    self.tokens_seen += epoch_tokens
                    return self.stop_diverged(f"loss became {loss_v} (gradient norm {gnorm_v}) at step {state.step}")
                tok_s = (epoch_tokens - tokens_at_start) / max(time.perf_counter() - t_epoch, 1e-9)
                self.log({"event": "train", "step": state.step, "epoch": state.epoch + (i + 1) / len(plan),
                          "train_loss": loss_v, "grad_norm": gnorm_v, "tokens_per_s": tok_s, "wall_seconds": self.wall(),
                          "tokens": self.tokens_seen + epoch_tokens})
                bar.set_postfix(loss=f"{loss_v:.4f}", tok_s=f"{tok_s:,.0f}")
            meter.update(i + 1 - start, epoch_tokens - tokens_at_start)
            bar.update(1)
            if cfg.eval_every and state.step % cfg.eval_every == 0 and i < len(plan) - 1:
                if self.evaluate_now(state.epoch + (i + 1) / len(plan)):
                    bar.close()
                    self.tokens_seen += epoch_tokens
                    return True
        bar.close()
        self.tokens_seen += epoch_tokens
        state.epoch += 1
        epoch_loss = float(jnp.mean(jnp.stack(losses))) if losses else float("nan")
        self.log({"event": "epoch", "epoch": state.epoch, "step": state.step, "train_loss_epoch": epoch_loss,
                  "learning_rate": lr,
                  "tokens_per_s": (epoch_tokens - tokens_at_start) / max(time.perf_counter() - t_epoch, 1e-9)})
        stop = self.evaluate_now(float(state.epoch))  # every epoch ends with an evaluation
        state.compiled_programs = max(state.compiled_programs, self.compiled_programs())
        if self.manager is not None:
            self.checkpoint(0, 0, [])
        return stop
class _EpochMeter:
    """What a long epoch says besides the progress bar: once, early, how long the epoch will take (at the
    rate of its first steps after compiling); and where no bar shows (a log file), a line a minute."""

    WARMUP, MEASURED, EVERY_S = 3, 20, 60.0

    def __init__(self, name: str, batches: int, tokens: int, enabled: bool, lines: bool):
        self.name, self.batches, self.tokens, self.enabled, self.lines = name, batches, tokens, enabled, lines
        self.t0 = self.tokens0 = None
        self.last_line = time.perf_counter()

    def update(self, done: int, tokens: int) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if done == self.WARMUP:  # the first steps compile: time from here
            self.t0, self.tokens0 = now, tokens
        if self.t0 is None or now <= self.t0:
            return
        rate = (tokens - self.tokens0) / (now - self.t0)
        if done == self.WARMUP + self.MEASURED and self.batches > 4 * done:
            log.info(f"{self.name}: {self.batches:,} batches, {self.tokens / 1e6:,.1f}M tokens; at {rate:,.0f} tokens/s "
                     f"(steps {self.WARMUP}-{done}) about {duration(self.tokens / max(rate, 1e-9))}")
        elif self.lines and now - self.last_line >= self.EVERY_S:
            self.last_line = now
            left = max(self.tokens - tokens, 0) / max(rate, 1e-9)
            log.info(f"{self.name}: {done / self.batches:4.0%} ({done:,}/{self.batches:,} batches), {rate:,.0f} tokens/s, "
                     f"{duration(left)} left")


