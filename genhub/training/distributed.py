"""Training on several processes, and reporting to experiment trackers, through Hugging Face
`accelerate`. The trainers use it; a plain `python train/gan.py` never touches it.

    python train/gan.py ...                                        # one process, one device
    accelerate launch --num_processes 8 train/gan.py ...           # data-parallel on 8 GPUs
    accelerate launch --cpu --num_processes 2 train/gan.py ...     # 2 CPU processes (gloo)
    python train/gan.py --report-to tensorboard ...                # losses, metrics, grids

How a data-parallel run divides the work (N processes, rank r = 0..N-1):
- `--batch-size` is the **global** batch. Each process trains on batch_size / N images of every
  batch, and the networks' gradients are averaged over the processes (DistributedDataParallel),
  so one update sees the same batch, and the same mean loss, as a one-process update of the
  whole batch. A run's schedule (its epochs, steps and budget) is the same for any N.
- The uint8 data set is sharded: process r keeps images r, r + N, r + 2N, ... on its device,
  the same number on each (up to N - 1 images are dropped). Each epoch every process shuffles
  its shard with the epoch's seed.
- Every process draws its own noise: after the shuffle, torch is reseeded from
  (seed, epoch, rank), so no two processes generate the same fakes.
- Batch norm sees only the process's own images unless `sync_bn`: then every batch norm layer
  becomes a `GlobalBatchNorm`, whose batch statistics are those of the global batch (and whose
  gradient flows through them, an all-reduce of per-channel sums).
- The EMA, the sample grids, the checkpoints, the evaluation, the cards and pushes happen once,
  on the main process (rank 0). A checkpoint counts global batches, so a run resumes with
  another number of processes at the same epoch and step (with other noise from there on).
- The budget is decided together: the training time and a callback's stop request are agreed
  (the largest over the processes) every `check_every` steps and at epoch ends.

The gradient penalty differentiates the critic with respect to its input (create_graph=True)
inside the step; through a DDP-wrapped critic that is safe because the inner `autograd.grad`
asks for input gradients only, so DDP's parameter hooks fire once, in the step's one backward
(tests/test_distributed.py checks the 2-process update against a 1-process one).
"""

from __future__ import annotations

import os

import torch
from torch import nn

TRACKERS = ("tensorboard", "wandb", "trackio")


def launched() -> bool:
    """Whether this process was started by a launcher (accelerate launch, torchrun) with others."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_main_process() -> bool:
    """Rank 0 of a launched run, or a process started alone (what writes files and pushes)."""
    return int(os.environ.get("RANK", "0")) == 0


class MethodCall(nn.Module):
    """`wrapper("elbo_terms", x)` calls `module.elbo_terms(x)` as a forward pass, so
    DistributedDataParallel, which hooks `forward` only, can wrap a model that trains through
    other methods (GenVAE.elbo_terms, GenVAE.iwae_bound), one wrapper for all of them."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, method: str, *args, **kwargs):
        return getattr(self.module, method)(*args, **kwargs)


class _SumOverProcesses(torch.autograd.Function):
    """y = sum_r x_r over the processes; each process's gradient is dL/dx_r = sum_r' dL_r'/dy, the
    all-reduced gradient (every process's loss depends on y)."""

    @staticmethod
    def forward(ctx, x):
        import torch.distributed as dist

        y = x.clone()
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        import torch.distributed as dist

        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm over the global batch of a data-parallel run, on any device.

    In training, each process computes per-channel sums S1 = sum x, S2 = sum x^2 and the count n
    of its batch; one differentiable all-reduce adds them over the processes, and
    mean = S1 / n, var = S2 / n - mean^2 (biased, as batch norm normalises) are the statistics of
    the whole batch. The running estimates are updated with the unbiased var * n / (n - 1).
    `torch.nn.SyncBatchNorm` does the same with CUDA kernels only; this one runs on CPU (gloo)
    too. With one process, or in eval mode, it is plain batch norm. Its parameters and buffers
    are batch norm's, so a model saved with it loads into one with `nn.BatchNorm*d`.
    """

    def _check_input_dim(self, x):
        if x.dim() < 2:
            raise ValueError(f"GlobalBatchNorm expects (N, C, ...) input, got {x.dim()} dimensions")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        channels, dims = x.shape[1], [0, *range(2, x.dim())]
        count = x.new_full((1,), x.numel() / channels)
        stats = _SumOverProcesses.apply(torch.cat([x.sum(dims), (x * x).sum(dims), count]))
        n = stats[-1]
        mean = stats[:channels] / n
        var = (stats[channels : 2 * channels] / n - mean * mean).clamp(min=0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(var.detach() * n / (n - 1).clamp(min=1), momentum)
        shape = [1, channels] + [1] * (x.dim() - 2)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def convert_batch_norm(module: nn.Module) -> nn.Module:
    """Replace every batch norm layer of `module` (in place, sharing its parameters and buffers,
    so optimizers built on them still hold them) with a `GlobalBatchNorm`."""
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, GlobalBatchNorm):
            replacement = GlobalBatchNorm(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
            if child.affine:
                replacement.weight, replacement.bias = child.weight, child.bias
            if child.track_running_stats:
                replacement.running_mean, replacement.running_var = child.running_mean, child.running_var
                replacement.num_batches_tracked = child.num_batches_tracked
            replacement.train(child.training)
            setattr(module, name, replacement)
        else:
            convert_batch_norm(child)
    return module


def check_trackers(report_to) -> list[str]:
    """`--report-to` names, checked: each must be installed (an error says what to pip install)."""
    names = [name.strip() for name in (report_to or []) if name and name.strip() and name.strip() != "none"]
    if not names:
        return []
    from accelerate.tracking import get_available_trackers

    available = {str(tracker) for tracker in get_available_trackers()}
    if "all" in names:
        return sorted(available & set(TRACKERS))
    for name in names:
        if name not in TRACKERS:
            raise ValueError(f"unknown tracker {name!r}; choose from {', '.join(TRACKERS)} (or all, or none)")
        if name not in available:
            raise ValueError(f"--report-to {name} needs the {name} package: pip install {name}")
    return names


class Distributed:
    """The processes a trainer runs on, and its trackers.

    `Distributed()` is one process with no trackers: every method is then a no-op or the
    identity, and accelerate is never imported. `Distributed.create(...)` builds an
    `accelerate.Accelerator` when the process was launched with others or trackers are wanted.
    """

    def __init__(self, accelerator=None, sync_bn: bool = False):
        self.accelerator = accelerator
        self.world_size = accelerator.num_processes if accelerator is not None else 1
        self.rank = accelerator.process_index if accelerator is not None else 0
        self.sync_bn = sync_bn
        self.tracking = False

    @classmethod
    def create(cls, device: str | torch.device = "auto", *, report_to=(), sync_bn: bool = False, logging_dir=None) -> Distributed:
        """An Accelerator when launched with other processes or `report_to` names trackers (or
        holds `accelerate.tracking.GeneralTracker` instances); else the one-process default."""
        custom = [tracker for tracker in (report_to or []) if not isinstance(tracker, str)]
        names = check_trackers([tracker for tracker in (report_to or []) if isinstance(tracker, str)])
        if not launched() and os.environ.get("ACCELERATE_USE_CPU") == "True" and "MASTER_ADDR" in os.environ:
            print(
                "note: `accelerate launch --cpu --num_processes N` started one process (accelerate runs several CPU "
                "processes only through mpirun); for N CPU processes over gloo use `accelerate launch --multi_gpu "
                "--num_processes N` (no GPU needed) or `torchrun --nproc_per_node N`",
                flush=True,
            )
        if not launched() and not names and not custom:
            return cls(sync_bn=sync_bn)
        from accelerate import Accelerator

        cpu = str(device) == "cpu" or (str(device) == "auto" and not torch.cuda.is_available())
        accelerator = Accelerator(cpu=cpu, log_with=[*names, *custom] or None, project_dir=str(logging_dir) if logging_dir else None)
        distributed = cls(accelerator, sync_bn=sync_bn)
        distributed.tracking = bool(names or custom)
        return distributed

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def device(self) -> torch.device | None:
        return self.accelerator.device if self.accelerator is not None else None

    def local_batch_size(self, batch_size: int) -> int:
        if batch_size % self.world_size:
            raise ValueError(
                f"--batch-size is the global batch and must divide among the {self.world_size} processes; "
                f"{batch_size} does not (try {batch_size - batch_size % self.world_size or self.world_size})"
            )
        return batch_size // self.world_size

    def shard(self, data: torch.Tensor) -> torch.Tensor:
        """This process's share of the data set: every N-th image from its rank, equal shares."""
        if not self.active:
            return data
        size = len(data) // self.world_size
        return data[self.rank :: self.world_size][:size]

    def wrap(self, module: nn.Module, by_method: bool = False) -> nn.Module:
        """The module as the step calls it: itself with one process; DistributedDataParallel
        (through accelerate) with several, after `sync_bn` conversion. `by_method` wraps it in
        a `MethodCall` first, for a model that trains through methods other than forward."""
        wrapped = MethodCall(module) if by_method else module
        if not self.active:
            return wrapped
        if self.sync_bn:
            convert_batch_norm(module)
        return self.accelerator.prepare_model(wrapped)

    def agree(self, values: list[float]) -> list[float]:
        """The element-wise largest of `values` over the processes (one collective)."""
        if not self.active:
            return values
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return tensor.tolist()

    def mean(self, tensor: torch.Tensor) -> torch.Tensor:
        """The mean of `tensor` over the processes (logged losses: one collective per logging interval)."""
        return self.accelerator.reduce(tensor, reduction="mean") if self.active else tensor

    def barrier(self) -> None:
        if self.active:
            self.accelerator.wait_for_everyone()

    # -- trackers --------------------------------------------------------------------------
    def start_tracking(self, project: str, config: dict) -> None:
        if self.tracking:
            flat = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in config.items() if v is not None}
            self.accelerator.init_trackers(project, config=flat)

    def log(self, values: dict, step: int) -> None:
        if self.tracking and values:
            self.accelerator.log({k: float(v) for k, v in values.items()}, step=step)

    def log_image(self, name: str, image, step: int) -> None:
        """A PIL image (a sample grid) to every tracker that takes images, as a (1, C, H, W) uint8 array."""
        if not self.tracking:
            return
        import numpy as np

        array = np.asarray(image.convert("RGB")).transpose(2, 0, 1)[None]
        for tracker in self.accelerator.trackers:
            if hasattr(tracker, "log_images"):
                tracker.log_images({name: array}, step=step)

    def end(self) -> None:
        if self.tracking:
            self.accelerator.end_training()
            self.tracking = False
