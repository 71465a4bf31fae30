"""What every genhub trainer shares: the loop, the budget, checkpoints, the EMA, the NaN guard,
the progress bar and the callbacks. `GANTrainer` and `VAETrainer` add only their step.

    trainer.fit(images_uint8, epochs=10)                       # until 10 epochs in total
    trainer.fit(images_uint8, steps=5000)                      # or 5000 steps in total
    trainer.fit(images_uint8, seconds=240, clock="process")    # or 240 s of this process's CPU time
    trainer.fit(images_uint8, epochs=10, callbacks=[Every(score, seconds=10)])

The data sits on the device as uint8 (N, C, H, W); each batch is scaled there
(`Trainer.scale`), so no DataLoader or per-image transform runs on the CPU. An epoch is one
shuffled pass in batches. Before every epoch torch is reseeded from (seed, epoch), and a
checkpoint stores the position inside the epoch with the random state, so a resumed run
replays the same batches and noise as an uninterrupted one, whether it stopped at an epoch's
end or in the middle of one (a step or time budget).

The budget counts totals (a resumed trainer counts its past work): epochs, steps (the
subclass says what a step is: a generator update for GANs, an optimizer update for VAEs), and
seconds of training on `clock` "wall" or "process" (CPU time of this process, fair on a shared
machine). Time spent in callbacks, checkpoints and sample grids is not training time.

Logged losses stay on the device and reach the host in one transfer every `check_every`
steps; a NaN or inf there stops training with `TrainingDiverged`, and the checkpoint on disk
stays the last good one.

With `distributed` (genhub.training.distributed, accelerate underneath) the same loop runs
data-parallel on N processes: `batch_size` is the global batch, the data is sharded, every rank
has its own noise seed, and only the main process keeps the EMA and writes grids, checkpoints
and tracker logs. Without it, nothing of accelerate is imported.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from genhub.runtime import atomic_write, pick_device
from genhub.training.distributed import Distributed

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = 1
CLOCKS = {"wall": time.perf_counter, "process": time.process_time}
SCHEDULES = ("constant", "linear", "cosine")
PRECISIONS = ("auto", "bf16", "fp32")


def lr_factor(schedule: str, progress: float) -> float:
    """The learning rate at `progress` p in [0, 1] of the budget, as a fraction of the initial one:

        constant   1
        linear     1 - p                    (to 0 at the end: the SNGAN recipes, Miyato et al. 2018)
        cosine     (1 + cos(pi p)) / 2      (SGDR without restarts, Loshchilov & Hutter 2017)
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    p = min(max(float(progress), 0.0), 1.0)
    if schedule == "linear":
        return 1.0 - p
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * p))
    return 1.0


class TrainingDiverged(RuntimeError):
    """Losses became NaN or infinite; the last good checkpoint is kept."""


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, corrupt, or does not fit the run."""


@dataclass
class Settings:
    """What every trainer is configured with (subclasses add their optimizer's settings)."""

    batch_size: int = 64
    seed: int = 0
    ema_decay: float | None = None  # None: no EMA copy of the model
    grid_size: int = 64  # fixed-noise samples drawn each epoch
    check_every: int = 50  # steps between NaN checks and progress updates
    save_every: int = 1  # epochs between sample grids and checkpoints (the last epoch always saves)
    progress: bool = True
    schedule: str = "constant"  # the learning rate over the budget: constant, linear or cosine (lr_factor)
    precision: str = "auto"  # "auto" (bf16 autocast on CUDA, fp32 on CPU), "bf16" (autocast on any device) or "fp32"
    channels_last: bool = False  # NHWC weights and batches for the conv networks

    def check(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be auto, bf16 or fp32, got {self.precision!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch size must be a positive integer, got {self.batch_size}")
        if self.ema_decay is not None and not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.check_every < 1 or self.grid_size < 1 or self.save_every < 1:
            raise ValueError("check_every, save_every and grid_size must be positive")


@dataclass
class Budget:
    """When `fit` stops: the first of `epochs`, `steps` and `seconds` (totals) that is reached."""

    epochs: int | None = None
    steps: int | None = None
    seconds: float | None = None
    clock: str = "wall"

    def check(self) -> None:
        if self.epochs is None and self.steps is None and self.seconds is None:
            raise ValueError("a budget needs epochs, steps or seconds")
        for name in ("epochs", "steps", "seconds"):
            value = getattr(self, name)
            if value is not None and not (
                isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 and math.isfinite(value)
            ):
                raise ValueError(f"budget {name} must be a positive number, got {value!r}")
        if self.clock not in CLOCKS:
            raise ValueError(f"budget clock must be one of {sorted(CLOCKS)}, got {self.clock!r}")


# -- callbacks ------------------------------------------------------------------------------
class Callback:
    """Hooks into `fit`. Work that should not count as training time goes inside
    `with trainer.paused():`. Setting `trainer.stop_requested = True` ends the run."""

    def on_fit_start(self, trainer: Trainer) -> None: ...

    def on_step_end(self, trainer: Trainer) -> None: ...

    def on_epoch_end(self, trainer: Trainer) -> None: ...

    def on_fit_end(self, trainer: Trainer) -> None: ...


class Every(Callback):
    """Call `function(trainer)` every `seconds` of training time or every `steps` steps, once at
    the start and once at the end of `fit` (an evaluation point: sample grids, metrics, SWD).
    Its time is not training time."""

    def __init__(
        self,
        function: Callable[[Trainer], None],
        *,
        seconds: float | None = None,
        steps: int | None = None,
        at_start: bool = True,
        at_end: bool = True,
    ):
        if (seconds is None) == (steps is None):
            raise ValueError("Every needs exactly one of seconds or steps")
        self.function, self.seconds, self.steps, self.at_start, self.at_end = function, seconds, steps, at_start, at_end
        self.next_point = 0.0
        self.last_call = None

    def _now(self, trainer: Trainer) -> float:
        return trainer.elapsed() if self.seconds is not None else trainer.steps_done

    def _call(self, trainer: Trainer) -> None:
        now = self._now(trainer)
        with trainer.paused():
            self.function(trainer)
        self.last_call = now
        self.next_point = now + (self.seconds if self.seconds is not None else self.steps)

    def on_fit_start(self, trainer):
        if self.at_start:
            self._call(trainer)
        else:
            self.next_point = self._now(trainer) + (self.seconds if self.seconds is not None else self.steps)

    def on_step_end(self, trainer):
        if self._now(trainer) >= self.next_point:
            self._call(trainer)

    def on_fit_end(self, trainer):
        if self.at_end and self.last_call != self._now(trainer):
            self._call(trainer)


class EarlyStop(Callback):
    """Stop when `monitor(trainer)`, read at each epoch's end, has not improved for `patience`
    epochs (`mode` "max" or "min")."""

    def __init__(self, monitor: Callable[[Trainer], float], patience: int = 5, mode: str = "max"):
        if patience < 1 or mode not in ("max", "min"):
            raise ValueError("EarlyStop needs patience >= 1 and mode 'max' or 'min'")
        self.monitor, self.patience, self.sign = monitor, patience, 1 if mode == "max" else -1
        self.best, self.waited = -math.inf, 0

    def on_epoch_end(self, trainer):
        value = self.sign * float(self.monitor(trainer))
        if value > self.best:
            self.best, self.waited = value, 0
            return
        self.waited += 1
        if self.waited >= self.patience:
            print(f"early stop: no improvement in {self.patience} epochs", flush=True)
            trainer.stop_requested = True


# -- files -----------------------------------------------------------------------------------
def save_json(path, data: dict) -> Path:
    return atomic_write(path, lambda p: p.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8"))


def read_checkpoint_state(path, kind: str) -> dict:
    """A checkpoint written by a trainer of `kind` ("gan", "vae"), with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; train without --resume first (checkpoints are written after each epoch)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip and EOF errors all mean the same thing here
        raise CheckpointError(f"{path} is corrupt or not a torch checkpoint ({type(error).__name__}: {error})") from error
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a genhub {kind.upper()} checkpoint (format {CHECKPOINT_FORMAT})")
    found = state.get("kind", "gan")  # GAN checkpoints from before the VAE trainer name no kind
    if found != kind:
        raise CheckpointError(f"{path} is a {found.upper()} checkpoint, not a {kind.upper()} one")
    return state


# -- the trainer -------------------------------------------------------------------------------
class Trainer:
    """The loop. A subclass sets `kind`, implements `step(batch)` (returns logs as tensors, or
    None when nothing is logged for that call), `steps_done`, `scale`, and its outputs at
    epoch ends, and extends `state_dict` / `load_state`."""

    kind = "base"
    drop_last = True  # a partial last batch is dropped (GANs) or trained on (VAEs)

    def __init__(self, model: nn.Module, settings: Settings, out=None, device="cpu", callbacks=(), distributed: Distributed | None = None):
        settings.check()
        self.settings = settings
        self.distributed = distributed or Distributed()
        self.local_batch_size = self.distributed.local_batch_size(settings.batch_size)
        if self.distributed.device is not None:
            self.device = self.distributed.device
        else:
            self.device = pick_device(device) if isinstance(device, str) else torch.device(device)
        self.model = model.to(self.device).train()
        # The speed path: forward passes under bf16 autocast (weights, optimizer and losses stay
        # fp32), and NHWC conv weights and batches (`scale` puts each batch in that format).
        self.use_autocast = settings.precision == "bf16" or (settings.precision == "auto" and self.device.type == "cuda")
        self.memory_format = torch.channels_last if settings.channels_last else torch.contiguous_format
        if settings.channels_last:
            self.model.to(memory_format=torch.channels_last)
        # The EMA copy (sampling and Hub weights): w <- d w + (1 - d) w_model after every step, with the
        # warm-up d_t = min(decay, (1 + t) / (10 + t)) so short runs are not dominated by the random init.
        # Data-parallel, every process holds the same weights after a step: the main process alone keeps it.
        keep_ema = settings.ema_decay is not None and self.distributed.is_main
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False) if keep_ema else None
        self.out = Path(out) if out is not None else None
        self.callbacks: list[Callback] = list(callbacks)
        self.epoch = 0  # finished epochs
        self.position = 0  # batches done in the current epoch
        self.train_seconds = 0.0  # training time on the last fit's clock, summed over fits
        self.wall_seconds = 0.0  # the same training time on the wall clock, whatever the budget's clock
        self.history: dict[str, list[float]] = {}  # logged steps
        self.epoch_log: list[dict] = []  # one row per finished epoch
        self.commands: list[str] = []  # the command lines that trained this run, for its model card
        self.run_info: dict = {}  # what the run was started on (dataset, sizes...), checked on resume
        self.stop_requested = False
        self._rng_state: dict | None = None  # set by a mid-epoch checkpoint
        self._clock = CLOCKS["wall"]
        self._segment_start: float | None = None
        self._wall_start = 0.0
        self._budget: Budget | None = None
        self._batches = 0
        self._stop_inside_epoch = True
        self._agreed = (0.0, False)  # data-parallel: the training time and stop request all processes agreed on

    @property
    def is_main(self) -> bool:
        """Whether this process writes outputs (always, unless data-parallel on rank > 0)."""
        return self.distributed.is_main

    # -- what a subclass provides -------------------------------------------------------------
    @property
    def steps_done(self) -> int:
        raise NotImplementedError

    def step(self, batch: torch.Tensor) -> dict[str, torch.Tensor] | None:
        raise NotImplementedError

    def scale(self, batch: torch.Tensor) -> torch.Tensor:
        """A uint8 batch on the device -> the float range the model trains on."""
        raise NotImplementedError

    def end_of_epoch(self, summary: dict[str, float]) -> None:
        """Outputs after each epoch (grids, checkpoint); runs outside training time."""

    def saving_epoch(self) -> bool:
        """Whether this epoch's end writes grids and a checkpoint: every `save_every` epochs and
        at the end of the budget."""
        return self.epoch % self.settings.save_every == 0 or (self._budget is not None and self._spent(self._budget))

    # -- data -----------------------------------------------------------------------------------
    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Check a uint8 (N, C, H, W) dataset against the model and move it to the device.
        Float vectors (N, D), such as 2-D points for toy problems, are taken as they are."""
        vectors = isinstance(images, torch.Tensor) and images.dim() == 2 and images.is_floating_point()
        if not vectors and (not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4):
            raise ValueError("training images must be a uint8 tensor (N, C, H, W), as genhub.load_images returns")
        shape = getattr(self.model, "image_shape", None)
        if shape is not None and tuple(images.shape[1:]) != tuple(shape):
            raise ValueError(
                f"the data has images of shape {tuple(images.shape[1:])} but the model makes {tuple(shape)}; "
                "load the data with matching image_size/channels or build the model for this data"
            )
        if len(images) < self.settings.batch_size:
            raise ValueError(f"only {len(images)} training images, fewer than one batch of {self.settings.batch_size}")
        return self.distributed.shard(images).to(self.device)

    @torch.no_grad()
    def update_ema(self) -> None:
        """Move the EMA weights towards the model's; buffers (batch-norm statistics) are copied."""
        if self.ema is None:  # no EMA, or not the main process of a data-parallel run
            return
        decay = min(self.settings.ema_decay, (1 + self.steps_done) / (10 + self.steps_done))
        torch._foreach_lerp_(list(self.ema.parameters()), list(self.model.parameters()), 1 - decay)
        for ema_buffer, buffer in zip(self.ema.buffers(), self.model.buffers()):
            ema_buffer.copy_(buffer)

    def _scaled(self, batch: torch.Tensor) -> torch.Tensor:
        return self.scale(batch) if batch.dtype == torch.uint8 else batch

    # -- time -------------------------------------------------------------------------------------
    def elapsed(self) -> float:
        """Training seconds so far on the current clock (past fits included); data-parallel, the
        time all processes agreed on at the last check (so they share schedules and stops)."""
        if self.distributed.active:
            return self._agreed[0]
        return self._local_elapsed()

    def _local_elapsed(self) -> float:
        running = self._clock() - self._segment_start if self._segment_start is not None else 0.0
        return self.train_seconds + running

    def _agree(self) -> None:
        """Data-parallel: agree on the training time and on a stop request (the largest over processes)."""
        if self.distributed.active:
            seconds, stop = self.distributed.agree([self._local_elapsed(), float(self.stop_requested)])
            self._agreed = (seconds, bool(stop))
            self.stop_requested = bool(stop)

    @contextlib.contextmanager
    def paused(self):
        """A block whose time is not training time (evaluation, grids, checkpoints)."""
        if self._segment_start is None:
            yield
            return
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.train_seconds += self._clock() - self._segment_start
        self.wall_seconds += time.perf_counter() - self._wall_start
        self._segment_start = None
        try:
            yield
        finally:
            self._segment_start, self._wall_start = self._clock(), time.perf_counter()

    def progress_fraction(self) -> float:
        """How much of the budget is spent, in [0, 1]: the furthest of its limits (for schedules)."""
        budget, fractions = self._budget, [0.0]
        if budget is None:
            return 0.0
        if budget.epochs:
            fractions.append((self.epoch + self.position / max(self._batches, 1)) / budget.epochs)
        if budget.steps:
            fractions.append(self.steps_done / budget.steps)
        if budget.seconds:
            fractions.append(self.elapsed() / budget.seconds)
        return min(max(fractions), 1.0)

    def autocast(self):
        """The context the forward passes run in: bf16 autocast with `use_autocast`, else nothing."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_autocast)

    def in_memory_format(self, batch: torch.Tensor) -> torch.Tensor:
        return batch.contiguous(memory_format=self.memory_format) if batch.dim() == 4 else batch

    def follow_schedule(self, *pairs: tuple[torch.optim.Optimizer, float]) -> None:
        """For each (optimizer, initial_lr), set every parameter group to initial_lr x
        lr_factor(settings.schedule, progress_fraction()): called before each update, so a resumed
        run continues the curve."""
        if self.settings.schedule == "constant":
            return
        factor = lr_factor(self.settings.schedule, self.progress_fraction())
        for optimizer, initial_lr in pairs:
            for group in optimizer.param_groups:
                group["lr"] = initial_lr * factor

    def _spent(self, budget: Budget) -> bool:
        return bool(
            (budget.epochs and self.epoch >= budget.epochs)
            or (budget.steps and self.steps_done >= budget.steps)
            or (budget.seconds and self.elapsed() >= budget.seconds)
            or (self._agreed[1] if self.distributed.active else self.stop_requested)
        )

    # -- the loop ---------------------------------------------------------------------------------
    def fit(
        self,
        images: torch.Tensor,
        epochs: int | None = None,
        *,
        steps: int | None = None,
        seconds: float | None = None,
        clock: str = "wall",
        budget: Budget | None = None,
        callbacks=(),
        stop_inside_epoch: bool = True,
    ) -> dict[str, list[float]]:
        """Train until the budget (totals: a resumed trainer counts its past work) is reached.
        `stop_inside_epoch` False checks the budget at epoch ends only (every epoch is finished)."""
        budget = budget or Budget(epochs=epochs, steps=steps, seconds=seconds, clock=clock)
        budget.check()
        data = self.prepare(images)
        callbacks = [*self.callbacks, *callbacks]
        self._budget, self._clock, self.stop_requested = budget, CLOCKS[budget.clock], False
        self._stop_inside_epoch = stop_inside_epoch
        local = self.local_batch_size
        self._batches = len(data) // local if self.drop_last else math.ceil(len(data) / local)
        if not self.is_main:  # callbacks (evaluation points, early stopping) run once, on the main process
            callbacks = []
        self._segment_start, self._wall_start = self._clock(), time.perf_counter()
        try:
            for callback in callbacks:
                callback.on_fit_start(self)
            self._agree()
            while not self._spent(budget):
                self._run_epoch(data, budget, callbacks)
                self._agree()
            for callback in callbacks:
                callback.on_fit_end(self)
        finally:
            with self.paused():
                pass
            self._segment_start = None
        self.distributed.barrier()
        return self.history

    def _run_epoch(self, data: torch.Tensor, budget: Budget, callbacks) -> None:
        batch_size, epoch, distributed = self.local_batch_size, self.epoch, self.distributed
        torch.manual_seed(self.settings.seed * 1_000_003 + epoch)
        order = torch.randperm(len(data), device=self.device)
        if distributed.active:  # every process its own noise; a resumed one reseeds where it restarts
            torch.manual_seed(((self.settings.seed * 1_000_003 + epoch) * 10_007 + self.position) * 1_009 + distributed.rank + 1)
        elif self.position and self._rng_state is not None:  # resumed inside this epoch: replay it exactly
            _set_rng_state(self._rng_state, self.device)
        self._rng_state = None
        pending: list[dict[str, torch.Tensor]] = []
        rows: list[dict[str, float]] = []
        bar = tqdm(
            total=self._batches,
            initial=self.position,
            desc=f"epoch {epoch + 1}",
            disable=not self.settings.progress,
            leave=False,
            mininterval=2,
        )
        while self.position < self._batches:
            index = self.position
            logs = self.step(self._scaled(data[order[index * batch_size : (index + 1) * batch_size]]))
            self.position += 1
            bar.update(1)
            if logs is not None:
                pending.append(logs)
            if pending and len(pending) >= self.settings.check_every:
                rows += self._record(pending)
                pending = []
                bar.set_postfix({k: f"{v:.3f}" for k, v in rows[-1].items() if k not in ("step", "epoch")})
            for callback in callbacks:
                callback.on_step_end(self)
            if distributed.active and self.position % self.settings.check_every == 0:
                self._agree()
            if self._stop_inside_epoch and self.position < self._batches and self._spent(budget):
                break
        bar.close()
        if pending:
            rows += self._record(pending)
        if self.position < self._batches:  # stopped inside the epoch: keep the place for an exact resume
            self._rng_state = _get_rng_state(self.device)
            if self.out is not None and self.is_main:
                with self.paused():
                    self.save_checkpoint(self.out / CHECKPOINT_NAME)
            return
        self.epoch, self.position = epoch + 1, 0
        self._agree()  # every process must agree whether this epoch is the budget's last
        keys = [k for k in (rows[0] if rows else {}) if k not in ("step", "epoch")]
        summary = {k: sum(row[k] for row in rows) / len(rows) for k in keys}
        if self.is_main:
            with self.paused():
                self.end_of_epoch(summary)
                for callback in callbacks:
                    callback.on_epoch_end(self)

    def _record(self, pending: list[dict[str, torch.Tensor]]) -> list[dict[str, float]]:
        """Move a block of logged tensors to the host in one transfer; stop on NaN/inf."""
        keys = list(pending[0])
        values = torch.stack([torch.stack([row[k].detach().float().reshape(()) for k in keys]) for row in pending])
        values = self.distributed.mean(values).tolist()  # data-parallel: the mean over processes, one collective
        first_step = self.steps_done - len(pending) + 1
        rows = []
        for offset, row in enumerate(values):
            if not all(math.isfinite(v) for v in row):
                bad = ", ".join(f"{k}={v}" for k, v in zip(keys, row))
                checkpoint = self.out / CHECKPOINT_NAME if self.out else None
                kept = (
                    f"the last good checkpoint (epoch {self.epoch}) is kept in {checkpoint}"
                    if checkpoint and checkpoint.exists()
                    else "no checkpoint was written yet"
                )
                raise TrainingDiverged(
                    f"training diverged at epoch {self.epoch + 1}, step {first_step + offset} ({self.describe()}; {bad}); {kept}. "
                    "Try a lower --lr or another --seed."
                )
            rows.append({"step": first_step + offset, "epoch": self.epoch + 1, **dict(zip(keys, row))})
        for row in rows:
            for key, value in row.items():
                self.history.setdefault(key, []).append(value)
            self.distributed.log({k: v for k, v in row.items() if k not in ("step", "epoch")}, step=row["step"])
        return rows

    def describe(self) -> str:
        return type(self.model).__name__

    # -- checkpoints ---------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "format": CHECKPOINT_FORMAT,
            "kind": self.kind,
            "model_class": type(self.model).__name__,
            "model_config": dict(getattr(self.model, "_hub_mixin_config", None) or {}),
            "settings": asdict(self.settings),
            "epoch": self.epoch,
            "position": self.position,
            "rng_state": self._rng_state,
            "train_seconds": self.train_seconds,
            "wall_seconds": self.wall_seconds,
            "history": self.history,
            "epoch_log": self.epoch_log,
            "commands": self.commands,
            "run_info": self.run_info,
        }

    def load_state(self, state: dict) -> None:
        """The counters and records of `state_dict` (subclasses load their networks first)."""
        self.epoch = state["epoch"]
        self.position = state.get("position", 0)
        self._rng_state = state.get("rng_state")
        self.train_seconds = state["train_seconds"]
        self.wall_seconds = state.get("wall_seconds", 0.0)  # older checkpoints did not count it
        self.history = state["history"]
        self.epoch_log = state.get("epoch_log", [])
        self.commands = state.get("commands", [])
        self.run_info = state.get("run_info", {})

    def save_checkpoint(self, path) -> Path:
        """Write atomically: a crash mid-save never replaces the last good checkpoint."""
        return atomic_write(path, lambda temporary: torch.save(self.state_dict(), temporary))


def _get_rng_state(device: torch.device) -> dict:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
