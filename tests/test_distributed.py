"""Data-parallel training and experiment tracking (genhub.training.distributed), on this CPU
with 2 processes over gloo. The launches are real: `accelerate launch --multi_gpu
--num_processes 2` runs two processes on a machine without GPUs (distributed type MULTI_CPU)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from genhub import load_model
from genhub.objectives import penalties
from genhub.training.distributed import Distributed, GlobalBatchNorm, check_trackers, convert_batch_norm

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "distributed_steps.py"
ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch"]
TWO = [*ACCELERATE, "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]


def launch(command, tmp_path, timeout=300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    env.pop("WORLD_SIZE", None)
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def one_process_update(kind: str, monkeypatch) -> dict[str, torch.Tensor]:
    monkeypatch.setattr(penalties, "interpolation_points", penalties.interpolation_points)  # the worker swaps it; restore after
    spec = importlib.util.spec_from_file_location("distributed_steps", WORKER)
    worker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(worker)
    return worker.update(kind, Distributed())


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["dcgan", "wgan-gp", "vae"])
def test_two_process_update_equals_one_process_update(kind, tmp_path, monkeypatch):
    """From the same weights and the same global batch (noise and penalty points included), a
    2-process update (DDP, synchronised batch norm for DCGAN, the gradient penalty's double
    backward through the DDP-wrapped critic for WGAN-GP) equals the 1-process update."""
    expected = one_process_update(kind, monkeypatch)
    launch([*TWO, str(WORKER), kind, str(tmp_path / "two.pt")], tmp_path)
    saved = torch.load(tmp_path / "two.pt", weights_only=True)
    assert saved["world_size"] == 2
    assert expected.keys() == saved["weights"].keys()
    for name, value in expected.items():
        torch.testing.assert_close(saved["weights"][name], value, rtol=1e-4, atol=1e-5, msg=name)
    initial = one_process_initial(kind)
    moved = sum(not torch.equal(initial[name], value) for name, value in expected.items() if value.is_floating_point())
    assert moved > len(expected) // 3  # the update changed the weights, so equality means something


def one_process_initial(kind: str) -> dict[str, torch.Tensor]:
    spec = importlib.util.spec_from_file_location("distributed_steps", WORKER)
    worker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(worker)
    trainer = worker.build(kind, Distributed())
    if kind == "vae":
        return {f"model.{k}": v.clone() for k, v in trainer.model.state_dict().items()}
    return {
        **{f"generator.{k}": v.clone() for k, v in trainer.model.state_dict().items()},
        **{f"critic.{k}": v.clone() for k, v in trainer.critic.state_dict().items()},
    }


@pytest.mark.slow
def test_two_process_gan_run_checkpoints_resumes_on_one_process_and_loads(tmp_path):
    out = tmp_path / "run"
    common = ["--dataset", "mnist", "--limit", "256", "--batch-size", "32", "--width", "8", "--latent-dim", "16", "--no-eval"]
    first = launch([*TWO, str(ROOT / "train/gan.py"), *common, "--epochs", "1", "--sync-bn", "--out", str(out), "--no-progress"], tmp_path)
    assert first.stdout.count("epoch 1 ") == 1, first.stdout  # the main process alone reports and saves
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 1 and state["generator_steps"] == 256 // 32
    launch([sys.executable, str(ROOT / "train/gan.py"), *common, "--epochs", "2", "--resume", "--out", str(out), "--no-progress"], tmp_path)
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 2 and state["generator_steps"] == 2 * 256 // 32
    model = load_model(out / "model")
    assert model.sample(4, seed=0).shape == (4, 1, 28, 28)


@pytest.mark.slow
@pytest.mark.parametrize("script", ["gan", "vae"])
def test_the_issue_launch_command_writes_a_model_that_loads(script, tmp_path):
    """The command of the README: on this 2-core CPU it runs (accelerate's --cpu launcher starts
    one process and genhub says so) and writes a model that genhub.load_model loads."""
    out = tmp_path / "out"
    command = [*ACCELERATE, "--cpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    result = launch([*command, str(ROOT / f"train/{script}.py"), "--dataset", "mnist", "--limit", "512", "--epochs", "1",
                     "--out", str(out), "--no-eval", "--no-progress"], tmp_path)  # fmt: skip
    assert "started one process" in result.stdout
    model = load_model(out / "model")
    assert model.sample(2, seed=0).shape[0] == 2


@pytest.mark.slow
def test_two_process_vae_run_resumes_with_two_processes(tmp_path):
    out = tmp_path / "vae"
    common = ["--dataset", "binarized-mnist", "--limit", "300", "--batch-size", "50", "--width", "8", "--latent-dim", "4",
              "--eval-k", "2", "--eval-limit", "20", "--no-eval", "--no-progress", "--out", str(out)]  # fmt: skip
    launch([*TWO, str(ROOT / "train/vae.py"), *common, "--epochs", "1"], tmp_path)
    launch([*TWO, str(ROOT / "train/vae.py"), *common, "--epochs", "2", "--resume"], tmp_path)
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 2 and state["optimizer_steps"] == 2 * 300 // 50
    assert load_model(out / "model").sample(2, seed=0).shape == (2, 1, 28, 28)


def test_global_batch_norm_is_batch_norm_on_one_process():
    torch.manual_seed(0)
    plain = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3), torch.nn.Linear(4, 4), torch.nn.BatchNorm2d(3))
    converted = convert_batch_norm(torch.nn.Sequential(*[layer for layer in plain]))
    assert isinstance(converted[1], GlobalBatchNorm) and converted[1].weight is plain[1].weight
    reference = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3))
    reference.load_state_dict({k: v for k, v in plain.state_dict().items() if k.split(".")[0] in "01"})
    x = torch.randn(5, 2, 6, 6)
    torch.testing.assert_close(converted[:2](x), reference(x))
    assert set(converted.state_dict()) == set(plain.state_dict())  # saves as batch norm


def test_batch_size_must_divide_among_processes():
    distributed = Distributed()
    distributed.world_size = 3
    with pytest.raises(ValueError, match="global batch .* 3 processes; 64 does not"):
        distributed.local_batch_size(64)
    assert distributed.local_batch_size(63) == 21


def test_shards_are_disjoint_and_equal():
    data = torch.arange(11)
    shards = []
    for rank in range(3):
        distributed = Distributed()
        distributed.world_size, distributed.rank = 3, rank
        shards.append(distributed.shard(data))
    assert [len(shard) for shard in shards] == [3, 3, 3]
    assert len(set(torch.cat(shards).tolist())) == 9


def test_unknown_or_missing_tracker_is_a_clear_error(monkeypatch):
    with pytest.raises(ValueError, match="unknown tracker 'tensorbored'"):
        check_trackers(["tensorbored"])
    import accelerate.tracking

    monkeypatch.setattr(accelerate.tracking, "get_available_trackers", lambda: [])
    with pytest.raises(ValueError, match="pip install wandb"):
        check_trackers(["wandb"])
    assert check_trackers(["none"]) == [] and check_trackers([]) == []


@pytest.mark.slow
def test_report_to_tensorboard_logs_losses_metrics_and_grids(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    launch([sys.executable, str(ROOT / "train/gan.py"), "--dataset", "mnist", "--limit", "256", "--batch-size", "32",
            "--width", "8", "--epochs", "2", "--out", str(out), "--report-to", "tensorboard", "--eval-samples", "200",
            "--no-progress"], tmp_path)  # fmt: skip
    events = list(out.rglob("events.out.tfevents.*"))
    assert events, list(out.rglob("*"))
    accumulator = EventAccumulator(str(events[0].parent), size_guidance={"scalars": 0, "images": 0}).Reload()
    tags = accumulator.Tags()
    assert {"critic_loss", "generator_loss"} <= set(tags["scalars"])
    assert len(accumulator.Scalars("generator_loss")) == 2 * 256 // 32  # every logged step
    assert any(tag.startswith("eval/") for tag in tags["scalars"]), tags["scalars"]  # the card's metrics
    assert any("samples" in tag for tag in tags["images"]), tags["images"]
