"""Kill training at random moments, resume it, and check the result is bit-for-bit the same.

    python benchmarks/soak.py                    # 30 SIGKILLs each of train/gan.py and train/vae.py
    python benchmarks/soak.py --kills 3 --scripts gan     # quick

For each script a small real run (MNIST / binarized MNIST slices, tiny nets, 1 torch thread)
is trained once uninterrupted. Then the same run is started, killed with SIGKILL after a
random delay (so some kills land inside checkpoint writes), and continued with --resume, until
N kills have been made and the run finishes. The final model.safetensors and the checkpoint's
weights must equal the uninterrupted run's byte for byte. Figures go to docs/reliability.md
and .json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from genhub.runtime import portable

REPO = Path(__file__).resolve().parent.parent


def commands(data_dir: Path, out: Path, epochs: int) -> dict[str, list[str]]:
    common = ["--threads", "1", "--no-progress", "--no-eval", "--out", str(out), "--epochs", str(epochs)]
    return {
        "gan": [
            sys.executable,
            str(REPO / "train" / "gan.py"),
            "--dataset",
            str(data_dir / "mnist"),
            "--limit",
            "512",
            "--width",
            "4",
            "--latent-dim",
            "8",
            "--batch-size",
            "32",
            "--objective",
            "wgan-gp",
            *common,
        ],  # fmt: skip
        "vae": [
            sys.executable,
            str(REPO / "train" / "vae.py"),
            "--dataset",
            str(data_dir / "binarized_mnist"),
            "--limit",
            "1024",
            "--arch",
            "mlp",
            "--hidden",
            "32",
            "--latent-dim",
            "4",
            "--batch-size",
            "64",
            "--eval-k",
            "2",
            "--eval-limit",
            "20",
            "--val-split",
            "validation",
            *common,
        ],  # fmt: skip
    }


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def weights_of(out: Path) -> dict[str, str]:
    """What must match: the saved model, and every tensor of the checkpoint's networks."""
    state = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)
    tensors = {k: v for k, v in state.items() if isinstance(v, dict) and any(isinstance(t, torch.Tensor) for t in v.values())}
    checkpoint = hashlib.sha256()
    for name in sorted(tensors):
        for key, tensor in sorted(tensors[name].items()):
            if isinstance(tensor, torch.Tensor):
                checkpoint.update(f"{name}.{key}".encode())
                checkpoint.update(tensor.contiguous().numpy().tobytes())
    return {"model.safetensors": digest(out / "model" / "model.safetensors"), "checkpoint networks": checkpoint.hexdigest()}


def soak(name: str, command: list[str], reference: Path, work: Path, kills: int, rng: random.Random, env: dict) -> dict:
    started = time.perf_counter()
    subprocess.run(command[:-4] + ["--out", str(reference), *command[-2:]], check=True, env=env, capture_output=True)
    straight_seconds = time.perf_counter() - started
    expected = weights_of(reference)
    made, runs, resumes, log = 0, 0, 0, []
    run = [*command[:-4], "--out", str(work), *command[-2:]]
    while True:
        resume = (work / "checkpoint.pt").exists()
        if not resume and work.exists():  # killed before its first checkpoint: nothing to resume, start over
            shutil.rmtree(work)
        process = subprocess.Popen(run + (["--resume"] if resume else []), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        runs += 1
        resumes += resume
        if made < kills:
            delay = rng.uniform(0.3 * straight_seconds, 0.9 * straight_seconds)  # past start-up, before the end
            try:
                process.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                process.wait()
                made += 1
                log.append(round(delay, 2))
                continue
        stderr = process.communicate()[1].decode()
        if process.returncode != 0:
            # A kill before the first checkpoint leaves an out folder without one: start again.
            if "exists; pass --resume" in stderr or "already holds" in stderr:
                raise RuntimeError(f"{name}: a killed run left {work} in a state resume cannot continue:\n{stderr[-2000:]}")
            raise RuntimeError(f"{name} failed after {made} kills:\n{stderr[-2000:]}")
        if made >= kills:
            break
    found = weights_of(work)
    return {
        "script": f"train/{name}.py",
        "kills": made,
        "runs": runs,
        "resumed_runs": resumes,
        "kill_delays_s": log,
        "uninterrupted_s": round(straight_seconds, 1),
        "bit_exact": found == expected,
        "expected": expected,
        "found": found,
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--scripts", nargs="+", choices=["gan", "vae"], default=["gan", "vae"])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0, help="seeds the kill times")
    parser.add_argument("--work", default="runs/soak")
    parser.add_argument("--out", default=str(REPO / "docs"), help="where reliability.md/json go ('' writes nothing)")
    args = parser.parse_args(argv)
    data_dir = Path(os.environ.get("GENHUB_DATA_DIR", REPO.parent / "shared" / "data"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    work = Path(args.work)
    rng = random.Random(args.seed)
    results = []
    for name in args.scripts:
        folder = work / name
        for sub in ("reference", "killed"):
            if (folder / sub).exists():
                shutil.rmtree(folder / sub)
        command = commands(data_dir, folder / "placeholder", args.epochs)[name]
        result = soak(name, command, folder / "reference", folder / "killed", args.kills, rng, env)
        print(json.dumps(result), flush=True)
        results.append(result)
    report = {"command": "python benchmarks/soak.py " + " ".join(argv if argv is not None else sys.argv[1:]), "results": results,
              "machine": f"{os.cpu_count()} cores, torch {torch.__version__}, 1 torch thread per run"}  # fmt: skip
    if args.out:
        out = Path(args.out)
        (out / "reliability.json").write_text(json.dumps(portable(report, REPO), indent=2) + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
