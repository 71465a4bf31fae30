"""Training throughput of genhub's GAN trainer against the classic loop it replaces.

    python benchmarks/throughput.py                      # every recipe, results to docs/gan/
    python benchmarks/throughput.py --recipes wgan-mlp --threads 1

Both loops train the same networks (same seed, same initial weights) with the same
objective, batch size and step logic (n_critic critic updates, then a generator update on
the last fakes), and are timed in the same process, alternating, best of --repeats:

  classic  a torch DataLoader over the Hugging Face dataset with a per-image
           torchvision transform (decode PIL -> ToTensor -> Normalize), fp32, stock
           torch.optim (Adam's per-parameter loop)
  genhub   GANTrainer.fit, one epoch: the whole dataset on the device as uint8, each batch
           scaled there; it also updates the EMA generator; Adam is fused (genhub.runtime.adam).
           One row per speed option
           (--options): eager (the default settings: bf16 autocast on CUDA, fp32 on CPU),
           channels-last, bf16 (autocast on the CPU too), compile (torch.compile; CUDA graphs
           on CUDA), and all three together, each against the classic loop and against eager.

Throughput is real images consumed by the critic per second. Each row also gives the FLOP/s the
step achieves (its FLOPs counted with torch's FLOP formulas) as a fraction of a large matmul's,
measured in the same run. Bars (from the issue): at least 2x the classic loop on the CPU, 10x
on a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from genhub.data import DATASETS, load_images
from genhub.models.gan import Critic, gan_class
from genhub.objectives import get_objective
from genhub.runtime import environment_summary, pick_device, portable
from genhub.training import GANTrainer, TrainSettings

DOCS = Path(__file__).resolve().parent.parent / "docs" / "gan"


@dataclass(frozen=True)
class Recipe:
    objective: str
    architecture: str
    dataset: str
    width: int = 32
    hidden_dims: tuple[int, ...] = (512, 512, 512)
    batch_size: int = 64
    images: int = 2560  # images timed per repeat (CPU); x8 on CUDA
    conv: bool = True


RECIPES = {
    # The MLP pair of the WGAN reference code (Arjovsky et al.): its default width 64 (--ngf/--ndf 64),
    # and the wider 512 its README uses for MLP generators.
    "wgan-mlp": Recipe("wgan", "mlp", "mnist", hidden_dims=(64, 64, 64), images=6400, conv=False),
    "wgan-mlp-512": Recipe("wgan", "mlp", "mnist", hidden_dims=(512, 512, 512), images=6400, conv=False),
    "dcgan-mnist": Recipe("dcgan", "conv", "mnist", width=32),
    "wgan-gp-mnist": Recipe("wgan-gp", "conv", "mnist", width=32),
    "dcgan-anime-64": Recipe("dcgan", "conv", "anime-faces", width=16, batch_size=32, images=640),
}


def build(recipe: Recipe, image_shape, seed: int = 0):
    torch.manual_seed(seed)
    objective = get_objective(recipe.objective)
    model = gan_class(recipe.objective)(
        image_shape=image_shape,
        architecture=recipe.architecture,
        width=recipe.width,
        hidden_dims=recipe.hidden_dims,
        objective=recipe.objective,
    )
    critic = Critic(image_shape, recipe.architecture, width=recipe.width, hidden_dims=recipe.hidden_dims, norm=objective.critic_norm)
    return model, critic, objective


def local_dataset_folder(name: str) -> Path:
    data_dir = os.environ.get("GENHUB_DATA_DIR", Path(__file__).resolve().parent.parent.parent / "shared" / "data")
    folder = Path(data_dir) / DATASETS[name].local_name
    if not folder.is_dir():
        raise SystemExit(f"error: {folder} not found; set GENHUB_DATA_DIR to the folder holding the shared datasets")
    return folder


def classic_loader(recipe: Recipe, count: int, workers: int):
    """The usual HF + torchvision input pipeline: decode and transform each image on access."""
    import datasets
    from torchvision import transforms

    dataset = datasets.load_dataset(str(local_dataset_folder(recipe.dataset)), split="train").select(range(count))
    channels = DATASETS[recipe.dataset].channels
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize([0.5] * channels, [0.5] * channels)])
    mode = "L" if channels == 1 else "RGB"
    dataset = dataset.with_transform(lambda batch: {"pixel_values": [transform(image.convert(mode)) for image in batch["image"]]})
    return torch.utils.data.DataLoader(dataset, batch_size=recipe.batch_size, shuffle=True, drop_last=True, num_workers=workers)


def classic_epoch(loader, model, critic, objective, optimizer_g, optimizer_d, device) -> int:
    """One pass of the classic fp32 loop; the same step logic as GANTrainer.step."""
    critic_steps, images = 0, 0
    for batch in loader:
        real = batch["pixel_values"].to(device)
        generator_turn = (critic_steps + 1) % objective.n_critic == 0
        noise = torch.randn(len(real), model.latent_dim, device=device)
        with torch.set_grad_enabled(generator_turn):
            fake = model(noise)
        critic_loss, _ = objective.critic_step_loss(critic, real, fake.detach())
        optimizer_d.zero_grad(set_to_none=True)
        critic_loss.backward()
        optimizer_d.step()
        objective.after_critic_step(critic)
        critic_steps += 1
        images += len(real)
        if generator_turn:
            critic.requires_grad_(False)
            generator_loss, _ = objective.generator_step_loss(critic, fake, real)
            optimizer_g.zero_grad(set_to_none=True)
            generator_loss.backward()
            optimizer_g.step()
            critic.requires_grad_(True)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return images


# The speed path, one option at a time (TrainSettings fields), each timed against the classic loop
# and against genhub eager in the same run.
OPTIONS = {
    "eager": {},
    "channels-last": {"channels_last": True},
    "bf16": {"precision": "bf16"},
    "bf16+channels-last": {"precision": "bf16", "channels_last": True},
    "compile": {"compile": True},
    "bf16+channels-last+compile": {"precision": "bf16", "channels_last": True, "compile": True},
}


def step_flops(trainer: GANTrainer, data: torch.Tensor) -> float:
    """FLOPs per real image of one generator step (n_critic critic updates and one generator
    update), forward and backward (a penalty's double backward included), counted with torch's
    FLOP formulas (torch.utils.flop_counter) on the eager networks. A plain dispatch mode, not
    FlopCounterMode: that one tracks modules with hooks that autograd.grad (the penalty) refuses."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import flop_registry

    class CountFlops(TorchDispatchMode):
        total = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            if func._overloadpacket in flop_registry:
                self.total += flop_registry[func._overloadpacket](*args, **kwargs, out_val=out)
            return out

    batch = trainer.local_batch_size
    counter = CountFlops()
    with counter:
        for i in range(trainer.n_critic):
            trainer.step(trainer.scale(data[i * batch : (i + 1) * batch]))
    return counter.total / (trainer.n_critic * batch)


def matmul_flops_per_second(device, dtype=torch.float32, size: int = 2048, repeats: int = 20) -> float:
    """The machine's limit, as this process meets it: a large (size x size) matmul, best of repeats."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    best = 0.0
    for _ in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = max(best, 2 * size**3 / (time.perf_counter() - started))
    return best


def measure(name: str, recipe: Recipe, device, repeats: int, workers: int, options: list[str], peaks: dict) -> dict:
    count = recipe.images * (8 if device.type == "cuda" else 1)
    data = load_images(recipe.dataset, limit=count).images
    image_shape = tuple(data.shape[1:])

    trainers = {}
    for option in options:
        model, critic, objective = build(recipe, image_shape)
        settings = TrainSettings(batch_size=recipe.batch_size, progress=False, **OPTIONS[option])
        trainers[option] = GANTrainer(model, critic, objective, settings=settings, device=device)
    on_device = trainers[options[0]].prepare(data)
    counted, _, _ = build(recipe, image_shape)
    flops_per_image = step_flops(GANTrainer(counted, build(recipe, image_shape)[1], objective,
                                            settings=TrainSettings(batch_size=recipe.batch_size, progress=False), device=device),
                                 on_device)  # fmt: skip

    classic_model, classic_critic, classic_objective = build(recipe, image_shape)
    classic_model, classic_critic = classic_model.to(device).train(), classic_critic.to(device).train()
    optimizer_g = classic_objective.optimizer.build(classic_model.parameters(), fused=False)  # stock torch.optim, as users write it
    optimizer_d = classic_objective.optimizer.build(classic_critic.parameters(), fused=False)
    loader = classic_loader(recipe, count, workers)

    def run_genhub(trainer) -> float:
        started = time.perf_counter()
        trainer.fit(on_device, trainer.epoch + 1)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return (len(on_device) // recipe.batch_size * recipe.batch_size) / (time.perf_counter() - started)

    def run_classic() -> float:
        started = time.perf_counter()
        images = classic_epoch(loader, classic_model, classic_critic, classic_objective, optimizer_g, optimizer_d, device)
        return images / (time.perf_counter() - started)

    # warm-up: first-call allocations, autotuning, torch.compile's compilation, the dataset's first decode
    warm = recipe.batch_size * objective.n_critic * 2
    compile_seconds = {}
    for option, trainer in trainers.items():
        started = time.perf_counter()
        trainer.fit(on_device[:warm], trainer.epoch + 1)
        compile_seconds[option] = round(time.perf_counter() - started, 1)
    classic_epoch(classic_loader(recipe, warm, 0), classic_model, classic_critic, classic_objective, optimizer_g, optimizer_d, device)
    classic_rates, rates = [], {option: [] for option in options}
    for _ in range(repeats):
        classic_rates.append(run_classic())
        for option, trainer in trainers.items():
            rates[option].append(run_genhub(trainer))
    classic = max(classic_rates)
    eager = max(rates["eager"]) if "eager" in rates else None
    bar = (10.0 if device.type == "cuda" else 2.0) if recipe.conv else 2.0
    rows = []
    for option in options:
        best = max(rates[option])
        peak = peaks["bf16" if trainers[option].use_autocast else "fp32"]
        rows.append(
            {
                "option": option,
                "img_per_s": round(best, 1),
                "runs": [round(r, 1) for r in rates[option]],
                "ratio_to_classic": round(best / classic, 2),
                "ratio_to_eager": round(best / eager, 2) if eager else None,
                "achieved_gflop_per_s": round(best * flops_per_image / 1e9, 2),
                "peak_fraction": round(best * flops_per_image / peak, 4),
                "warmup_seconds": compile_seconds[option],
                "meets_bar": best / classic >= bar,
            }
        )
        print(
            f"{name:<16} {option:<14} {best:8.1f} img/s  {best / classic:5.2f}x classic  "
            f"{best / eager if eager else float('nan'):5.2f}x eager  {100 * best * flops_per_image / peak:5.1f}% of matmul peak",
            flush=True,
        )
    return {
        "recipe": name,
        "objective": recipe.objective,
        "architecture": recipe.architecture,
        "dataset": recipe.dataset,
        "image_shape": list(image_shape),
        "width": recipe.width,
        "hidden_dims": list(recipe.hidden_dims),
        "batch_size": recipe.batch_size,
        "n_critic": objective.n_critic,
        "images_per_repeat": count,
        "gflop_per_image": round(flops_per_image / 1e9, 5),
        "classic_img_per_s": round(classic, 1),
        "classic_runs": [round(r, 1) for r in classic_rates],
        "bar": bar,
        "options": rows,
    }


def write_markdown(path: Path, report: dict) -> None:
    lines = [
        "# GAN training throughput: genhub's trainer and its speed options vs the classic loop",
        "",
        f"Machine: {report['machine']}; torch {report['torch']}; {report['threads']} torch thread(s); "
        f"DataLoader workers: {report['workers']}; load average before/after: {report['load_before']} / {report['load_after']}.",
        f"The machine's limit, measured in the same run: a {report['matmul_size']}-square matmul at "
        f"{report['peak_gflop_per_s']['fp32']:.1f} GFLOP/s in fp32 and {report['peak_gflop_per_s']['bf16']:.1f} GFLOP/s in bf16.",
        f"{report['note']}",
        "",
        "| recipe | images | batch | n_critic | GFLOP/img | classic img/s | option | img/s | vs classic | vs eager | GFLOP/s | of peak "
        "| bar | met |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        shape = "x".join(str(s) for s in r["image_shape"])
        size = f"hidden {'x'.join(str(h) for h in r['hidden_dims'])}" if r["architecture"] == "mlp" else f"width {r['width']}"
        for o in r["options"]:
            lines.append(
                f"| {r['recipe']} ({r['objective']}, {r['architecture']} {size}) | {shape} | {r['batch_size']} | {r['n_critic']} | "
                f"{r['gflop_per_image']:.4f} | {r['classic_img_per_s']} | {o['option']} | {o['img_per_s']} | {o['ratio_to_classic']}x | "
                f"{o['ratio_to_eager']}x | {o['achieved_gflop_per_s']} | {100 * o['peak_fraction']:.1f}% | >= {r['bar']:g}x | "
                f"{'yes' if o['meets_bar'] else 'no'} |"
            )
    lines += [
        "",
        "Best of the repeats for each loop, timed alternately in one process; every run is in the .json. FLOPs are counted "
        "with torch's FLOP formulas (torch.utils.flop_counter) over one generator step (forward and backward, a penalty's "
        "double backward included); "
        "\"of peak\" is the achieved FLOP/s over the matmul's (bf16's for bf16 rows). The compile row's first steps, where "
        "torch.compile compiles, are warm-up and not timed (warm-up seconds are in the .json).",
        f"Reproduce with `{report['command']}`.",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", nargs="+", choices=list(RECIPES), default=list(RECIPES))
    parser.add_argument("--options", nargs="+", choices=list(OPTIONS), default=list(OPTIONS), help="speed options (eager first)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers for the classic loop")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (both loops)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=DOCS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    options = ["eager", *[option for option in args.options if option != "eager"]]
    peaks = {"fp32": matmul_flops_per_second(device), "bf16": matmul_flops_per_second(device, torch.bfloat16)}
    print(f"matmul peak: {peaks['fp32'] / 1e9:.1f} GFLOP/s fp32, {peaks['bf16'] / 1e9:.1f} GFLOP/s bf16", flush=True)
    results = [measure(name, RECIPES[name], device, args.repeats, args.workers, options, peaks) for name in args.recipes]
    report = {
        "machine": environment_summary(device) + ("" if device.type == "cuda" else f", {platform.machine()}"),
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "workers": args.workers,
        "matmul_size": 2048,
        "peak_gflop_per_s": {k: round(v / 1e9, 1) for k, v in peaks.items()},
        "load_before": load_before,
        "load_after": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "note": ""
        if device.type == "cuda"
        else "No GPU was available for this run: the CUDA path (bf16 autocast, CUDA graphs) is measured by benchmarks/gpu.sh.",
        "command": portable("python benchmarks/throughput.py " + " ".join(argv if argv is not None else sys.argv[1:])),
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "" if device.type == "cpu" else "_cuda"
    (args.out / f"throughput{suffix}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    write_markdown(args.out / f"throughput{suffix}.md", report)
    print(f"saved {args.out / f'throughput{suffix}.json'} and .md")
    return report


if __name__ == "__main__":
    main()
