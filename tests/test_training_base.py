"""The trainer base both trainers share: budgets, exact resume (at an epoch's end and inside one),
the VAE trainer's checkpoints, callbacks at evaluation points, the NaN guard."""

import time

import pytest
import torch

from genhub import GenDCGAN, GenVAE
from genhub.models.gan import build_critic
from genhub.training import Budget, Callback, EarlyStop, Every, GANTrainer, TrainingDiverged, TrainSettings, VAESettings, VAETrainer


def images(n=96, shape=(1, 28, 28), seed=0):
    return torch.randint(0, 256, (n, *shape), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def gan(out=None, **settings):
    torch.manual_seed(0)
    model = GenDCGAN(latent_dim=8, width=4)
    return GANTrainer(model, build_critic("dcgan", (1, 28, 28), width=4), "dcgan", out=out,
                      settings=TrainSettings(batch_size=16, grid_size=4, progress=False, **settings))  # fmt: skip


def vae(out=None, **settings):
    torch.manual_seed(0)
    model = GenVAE(latent_dim=4, hidden_dims=(32,))
    return VAETrainer(model, out=out, settings=VAESettings(batch_size=16, grid_size=4, progress=False, **settings))


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_a_gan_stopped_inside_an_epoch_resumes_exactly(tmp_path):
    data = images()
    straight = gan()
    straight.fit(data, steps=9)  # 6 batches an epoch: the budget ends inside the second epoch
    stopped = gan(out=tmp_path)
    stopped.fit(data, steps=4)
    assert stopped.position > 0 and stopped.epoch == 0  # mid-epoch, checkpoint written
    resumed = GANTrainer.from_checkpoint(tmp_path / "checkpoint.pt", progress=False)
    assert resumed.position == stopped.position
    resumed.fit(data, steps=9)
    assert resumed.generator_steps == straight.generator_steps == 9
    assert same(resumed.model, straight.model) and same(resumed.ema, straight.ema) and same(resumed.critic, straight.critic)


class StopAt(Callback):
    """Ends the run after `epoch` epochs, as a crash would (the budget, and so the learning-rate
    schedule, stays the full run's)."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, trainer):
        trainer.stop_requested = trainer.epoch >= self.epoch


def test_the_vae_trainer_resumes_exactly_and_keeps_its_best_model(tmp_path):
    data, validation = images(seed=1), images(32, seed=2)
    straight = vae()
    straight.fit(data, 3, validation=validation)
    first = vae(out=tmp_path)
    first.fit(data, 3, validation=validation, callbacks=[StopAt(2)])
    assert first.epoch == 2
    resumed = VAETrainer.from_checkpoint(tmp_path / "checkpoint.pt", progress=False)
    resumed.fit(data, 3, validation=validation)
    assert same(resumed.model, straight.model) and resumed.epoch == 3 and len(resumed.epoch_log) == 3
    assert [row["val_elbo"] for row in resumed.epoch_log] == [row["val_elbo"] for row in straight.epoch_log]
    best = max(resumed.epoch_log, key=lambda row: row["val_elbo"])
    assert (tmp_path / "best" / "model.safetensors").exists() and best["best"]


def test_every_calls_at_start_at_its_points_and_at_the_end_outside_training_time():
    calls = []
    trainer = gan()
    trainer.fit(images(), steps=7, callbacks=[Every(lambda t: calls.append(t.steps_done), steps=3)])
    assert calls == [0, 3, 6, 7]


def test_early_stop_ends_the_run():
    scores = iter([3.0, 2.0, 2.5, 2.6, 1.0, 1.0])  # no better than 2.0 for two epochs after the second
    trainer = vae()
    trainer.fit(images(), 6, validation=images(16), callbacks=[EarlyStop(lambda t: next(scores), patience=2, mode="min")])
    assert trainer.epoch == 4


def test_a_time_budget_on_the_process_clock_stops_training():
    trainer = gan()
    trainer.fit(images(960), seconds=0.5, clock="process")
    assert 0.5 <= trainer.train_seconds < 5 and trainer.epoch < 10
    with pytest.raises(ValueError, match="budget needs"):
        Budget().check()
    with pytest.raises(ValueError, match="clock"):
        trainer.fit(images(), seconds=1, clock="sundial")


def test_the_wall_clock_is_counted_beside_a_process_budget(tmp_path):
    """Cards give both: a sleeping step spends wall time, not CPU time."""
    trainer = gan(out=tmp_path)
    step = trainer.step

    def slow_step(batch):
        time.sleep(0.05)
        return step(batch)

    trainer.step = slow_step
    trainer.fit(images(64), epochs=1, clock="process")  # 4 steps
    assert trainer.wall_seconds >= 0.2 and trainer.wall_seconds > trainer.train_seconds + 0.15
    resumed = GANTrainer.from_checkpoint(tmp_path / "checkpoint.pt", progress=False)
    assert resumed.wall_seconds == pytest.approx(trainer.wall_seconds, abs=0.05)  # saved at the epoch end, just before fit returns


def test_the_nan_guard_stops_a_diverging_vae(tmp_path):
    trainer = vae(out=tmp_path, lr=1e30)
    with pytest.raises(TrainingDiverged, match="training diverged"):
        trainer.fit(images(), 3, validation=images(16))
