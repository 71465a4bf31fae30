"""The levers for small GANs that the zoo's recipes use: spectral normalisation of the critic,
the R1 penalty, upsample-plus-conv generators, depth (extra 3x3 convs) and learning-rate decay (hinge loss, two time-scale
learning rates, EMA and augmentation are tested with the objectives and the trainer)."""

import math

import pytest
import torch
from conftest import REPO, script
from torch import nn

from genhub import GenDCGAN, GenGAN, load_model
from genhub.models.gan import Critic, build_critic
from genhub.models.nets import upsampling_conv
from genhub.objectives import get_objective
from genhub.objectives.penalties import r1_penalty
from genhub.training import CHECKPOINT_NAME, GANTrainer, TrainSettings
from genhub.training.base import lr_factor

train_gan = script("gan")


def toy_images(n=64):
    return torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8)


# -- spectral norm ---------------------------------------------------------------------------
def test_spectral_norm_makes_every_critic_weight_of_unit_spectral_norm():
    torch.manual_seed(0)
    critic = Critic((1, 28, 28), width=8, norm="spectral")
    layers = [m for m in critic.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(layers) == 3  # two convs and the linear head
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) for m in critic.modules())
    raw = [float(torch.linalg.matrix_norm(layer.parametrizations.weight.original.detach().flatten(1), ord=2)) for layer in layers]
    assert all(sigma > 1.05 or sigma < 0.95 for sigma in raw)  # the unnormalised weights are not already there
    critic.train()
    for _ in range(50):  # one power iteration per training forward pass
        critic(torch.randn(4, 1, 28, 28))
    for layer in layers:
        sigma = float(torch.linalg.matrix_norm(layer.weight.detach().flatten(1), ord=2))
        assert sigma == pytest.approx(1.0, abs=0.02)


def test_spectral_critic_resumes_exactly_from_a_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = GenDCGAN(latent_dim=8, width=4)
    critic = build_critic("hinge", (1, 28, 28), width=4, norm="spectral")
    trainer = GANTrainer(model, critic, "hinge", out=tmp_path, settings=TrainSettings(batch_size=16, grid_size=4, progress=False))
    trainer.fit(toy_images(), epochs=1)
    resumed = GANTrainer.from_checkpoint(tmp_path / CHECKPOINT_NAME, progress=False)
    probe = torch.rand(8, 1, 28, 28) * 2 - 1
    trainer.critic.eval(), resumed.critic.eval()
    assert resumed.critic.config["norm"] == "spectral"
    assert torch.equal(trainer.critic(probe), resumed.critic(probe))  # the power iteration's u and v came back too


# -- upsampling ------------------------------------------------------------------------------
def test_nearest_upsampling_draws_no_checkerboard_where_the_transposed_conv_does():
    """A constant feature map is the clearest probe: each output pixel of a stride-2 transposed
    conv sums a different 2x2 subset of its 4x4 kernel, by position modulo 2, so a constant input
    comes out in a period-2 pattern; nearest upsampling then a 3x3 conv gives a constant interior."""
    torch.manual_seed(0)
    constant = torch.ones(1, 4, 8, 8)
    with torch.no_grad():
        transposed = upsampling_conv(4, 1, "transpose")(constant)[0, 0, 2:-2, 2:-2]
        nearest = upsampling_conv(4, 1, "nearest")(constant)[0, 0, 2:-2, 2:-2]
    assert transposed.shape == nearest.shape == (12, 12)
    parity_means = [transposed[i::2, j::2].mean() for i in (0, 1) for j in (0, 1)]
    assert torch.allclose(transposed[0::2, 0::2], parity_means[0].expand(6, 6))  # constant within a parity class
    assert max(parity_means) - min(parity_means) > 1e-3  # and different between them: the checkerboard
    assert torch.allclose(nearest, nearest[0, 0].expand_as(nearest), atol=1e-6)


def test_upsample_is_a_config_field_with_a_round_trip_and_old_configs_load_as_transpose(tmp_path):
    model = GenGAN(latent_dim=8, width=4, upsample="nearest", objective="hinge")
    model.save_pretrained(tmp_path / "gan")
    loaded = GenGAN.from_pretrained(tmp_path / "gan")
    assert loaded.upsample == "nearest"
    z = model.sample_latent(3, seed=1)
    model.eval(), loaded.eval()
    assert torch.equal(model(z), loaded(z))
    bundled = load_model(REPO / "weights" / "wgan-gp-mnist")  # saved before the field existed
    assert bundled.upsample == "transpose"
    with pytest.raises(ValueError, match="upsample must be one of"):
        GenGAN(upsample="bilinear")


# -- depth (extra 3x3 convs) -------------------------------------------------------------------
def _convs(module):
    return [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]


@pytest.mark.parametrize("side", [28, 32])
def test_extra_convs_add_one_same_size_conv_per_resolution_and_keep_the_shapes(side):
    """Generator 28x28: convs at 7x7 (after the projection) and 14x14 (after the first upsampling),
    none after the last; critic: one after each of its downsamplings (14x14 and 7x7). A 3x3,
    stride-1, padding-1 conv keeps the side and the channels."""
    torch.manual_seed(0)
    plain = GenGAN(image_shape=(3, side, side), latent_dim=8, width=4, objective="hinge")
    deep = GenGAN(image_shape=(3, side, side), latent_dim=8, width=4, objective="hinge", extra_convs=2)
    added = [m for m in _convs(deep) if m.kernel_size == (3, 3) and m.stride == (1, 1)]
    steps = len(_convs(plain))  # one upsampling conv per doubling
    assert len(_convs(deep)) == steps + 2 * steps and len(added) == 2 * steps
    assert all(m.in_channels == m.out_channels for m in added)
    z = deep.sample_latent(5, seed=0)
    assert deep(z).shape == plain(z).shape == (5, 3, side, side)
    plain_critic = Critic((3, side, side), width=4, norm="spectral")
    deep_critic = Critic((3, side, side), width=4, norm="spectral", extra_convs=1)
    assert len(_convs(deep_critic)) == 2 * len(_convs(plain_critic))
    assert deep_critic(torch.rand(5, 3, side, side) * 2 - 1).shape == (5,)
    assert "extra_convs" not in plain_critic.config and deep_critic.config["extra_convs"] == 1  # old checkpoints compare equal


def test_extra_convs_round_trip_resume_and_clear_errors(tmp_path):
    model = GenDCGAN(latent_dim=8, width=4, extra_convs=1)
    model.save_pretrained(tmp_path / "gan")
    loaded = load_model(tmp_path / "gan")
    assert loaded.extra_convs == 1
    model.eval(), loaded.eval()
    z = model.sample_latent(3, seed=2)
    assert torch.equal(model(z), loaded(z))
    assert load_model(REPO / "weights" / "wgan-gp-mnist").extra_convs == 0  # saved before the field existed
    critic = build_critic("dcgan", (1, 28, 28), width=4, norm="spectral", extra_convs=1)
    trainer = GANTrainer(model, critic, "dcgan", out=tmp_path / "run", settings=TrainSettings(batch_size=16, grid_size=4, progress=False))
    trainer.fit(toy_images(32), epochs=1)
    resumed = GANTrainer.from_checkpoint(tmp_path / "run" / CHECKPOINT_NAME, progress=False)
    assert resumed.model.extra_convs == 1 and resumed.critic.config["extra_convs"] == 1
    for bad in (-1, 9, 1.5, True):
        with pytest.raises(ValueError, match="extra_convs must be an integer from 0 to 8"):
            GenGAN(latent_dim=8, width=4, extra_convs=bad)
    with pytest.raises(ValueError, match="extra_convs applies to the 'conv' architecture only"):
        GenGAN(latent_dim=8, architecture="mlp", hidden_dims=(16,), extra_convs=1)
    with pytest.raises(ValueError, match="extra_convs applies to the 'conv' architecture only"):
        Critic((1, 28, 28), architecture="mlp", hidden_dims=(16,), extra_convs=1)


# -- R1 ----------------------------------------------------------------------------------------
class LinearCritic(nn.Module):
    """D(x) = w . x + b: its input gradient is w for every image, so R1 = ||w||^2 exactly."""

    image_shape = (1, 28, 28)

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(784, 1)

    def forward(self, x):
        return self.linear(x.flatten(1)).squeeze(1)


def test_r1_penalty_matches_a_hand_computation():
    torch.manual_seed(0)
    critic = LinearCritic()
    real, fake = torch.rand(6, 1, 28, 28) * 2 - 1, torch.rand(6, 1, 28, 28) * 2 - 1
    w, b = critic.linear.weight.detach()[0], critic.linear.bias.detach()
    squared_norm = float(w.pow(2).sum())

    x = real.clone().requires_grad_(True)
    assert float(r1_penalty(x, critic(x)).detach()) == pytest.approx(squared_norm, rel=1e-5)

    objective = get_objective("hinge")
    objective.r1_weight = 3.0
    loss, logs = objective.critic_step_loss(critic, real, fake)
    real_scores, fake_scores = real.flatten(1) @ w + b, fake.flatten(1) @ w + b
    hinge = torch.relu(1 - real_scores).mean() + torch.relu(1 + fake_scores).mean()
    assert float(loss) == pytest.approx(float(hinge) + 0.5 * 3.0 * squared_norm, rel=1e-5)
    assert float(logs["r1_penalty"]) == pytest.approx(squared_norm, rel=1e-5)
    loss.backward()  # the penalty trains the critic: d/dw (gamma/2)||w||^2 = gamma w joins the hinge's gradient
    hinge_grad = -(real.flatten(1) * (real_scores < 1).float()[:, None]).mean(0) + (
        fake.flatten(1) * (fake_scores > -1).float()[:, None]
    ).mean(0)
    assert torch.allclose(critic.linear.weight.grad[0], hinge_grad + 3.0 * w, atol=1e-5)


def test_r1_is_off_by_default_and_refused_where_an_objective_has_its_own_critic_step():
    assert get_objective("dcgan").r1_weight == 0 and not get_objective("dcgan").double_backward
    model = GenDCGAN(latent_dim=8, width=4)
    trainer = GANTrainer(model, build_critic("dcgan", (1, 28, 28), width=4), "dcgan", settings=TrainSettings(r1=2.0, progress=False))
    assert trainer.objective.r1_weight == 2.0 and trainer.objective.double_backward
    logs = trainer.step(torch.rand(16, 1, 28, 28) * 2 - 1)
    assert logs is not None and float(logs["r1_penalty"]) > 0
    with pytest.raises(ValueError, match="R1 penalty needs a score objective"):
        GANTrainer(GenGAN(latent_dim=8, width=4), build_critic("mmdgan", (1, 28, 28), width=4), "mmdgan", settings=TrainSettings(r1=1.0))


# -- top-k generator updates -------------------------------------------------------------------
def test_top_k_generator_loss_is_the_loss_of_the_best_scored_fakes_and_the_rest_get_no_gradient():
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Flatten(), nn.Linear(4, 1), nn.Flatten(0))
    fake = torch.randn(6, 1, 2, 2, requires_grad=True)
    objective = get_objective("dcgan")
    loss, _ = objective.generator_step_loss(critic, fake, None, keep=2)
    scores = critic(fake).detach()
    best = scores.argsort(descending=True)[:2]
    assert float(loss) == pytest.approx(float(torch.nn.functional.softplus(-scores[best]).mean()), rel=1e-6)  # -log sigmoid(D)
    (grad,) = torch.autograd.grad(loss, fake)
    kept = torch.zeros(6, dtype=torch.bool)
    kept[best] = True
    assert grad[~kept].abs().max() == 0 and grad[kept].abs().min() > 0
    full, _ = objective.generator_step_loss(critic, fake, None)
    assert float(full) == pytest.approx(float(torch.nn.functional.softplus(-scores).mean()), rel=1e-6)
    assert float(objective.generator_step_loss(critic, fake, None, keep=6)[0]) == pytest.approx(float(full))


def test_top_k_keeps_a_shrinking_fraction_per_epoch_and_is_refused_where_it_has_no_meaning():
    def trainer(objective="dcgan", **settings):
        critic = build_critic(objective, (1, 28, 28), width=4)
        settings = TrainSettings(batch_size=64, progress=False, **settings)
        return GANTrainer(GenGAN(latent_dim=8, width=4), critic, objective, settings=settings)

    assert trainer().top_k_keep is None  # off by default: every fake counts
    gan = trainer(top_k=0.5, top_k_decay=0.9)
    keeps = []
    for epoch in range(9):
        gan.epoch = epoch
        keeps.append(gan.top_k_keep)
    assert keeps == [64, 58, 52, 47, 42, 38, 35, 32, 32]  # ceil(64 * max(0.9^epoch, 0.5))
    gan.epoch = 0
    gan.fit(toy_images(128), steps=2)  # trains with the option on
    for bad in ({"top_k": 0}, {"top_k": 1.5}, {"top_k_decay": 0}):
        with pytest.raises(ValueError, match="top_k"):
            trainer(**bad)
    with pytest.raises(ValueError, match="top-k updates need a score objective"):
        trainer("mmdgan", top_k=0.5)
    with pytest.raises(SystemExit):
        train_gan.main(["--dataset", "mnist", "--objective", "began", "--top-k", "0.5", "--out", "unused"])


@pytest.mark.slow
def test_train_gan_with_every_lever_writes_a_loadable_model_whose_card_names_them(tmp_path, data_dir):
    out = tmp_path / "run"
    argv = ["--dataset", "mnist", "--limit", "128", "--width", "8", "--latent-dim", "16", "--batch-size", "32", "--epochs", "1"]
    argv += ["--objective", "hinge", "--critic-norm", "spectral", "--upsample", "nearest", "--r1", "0.5", "--lr", "4e-4"]
    argv += ["--generator-lr-scale", "0.25", "--augment", "translation", "--lr-schedule", "linear", "--top-k", "0.5"]
    argv += ["--generator-extra-convs", "1", "--critic-extra-convs", "2", "--out", str(out), "--no-progress", "--no-eval"]
    train_gan.main(argv)
    model = load_model(out / "model")
    assert type(model) is GenGAN and model.upsample == "nearest" and model.sample(4, seed=0).shape == (4, 1, 28, 28)
    assert model.extra_convs == 1
    card = (out / "model" / "README.md").read_text()
    assert "norm spectral" in card and "| R1 penalty (gamma) | 0.5 |" in card and "| generator upsampling | nearest |" in card
    assert "lr 0.0001 (generator), 0.0004 (critic)" in card  # the initial rates
    assert "| learning-rate schedule | linear decay to 0 over the budget |" in card
    assert "| top-k generator updates | kept fraction 0.99^epoch, at least 0.5 (per process batch) |" in card
    assert "| extra 3x3 convs per resolution | generator 1, critic 2 |" in card


# -- learning-rate schedules -------------------------------------------------------------------
def test_lr_factor_matches_hand_values():
    assert lr_factor("constant", 0.7) == 1.0
    assert lr_factor("linear", 0.0) == 1.0 and lr_factor("linear", 0.25) == 0.75 and lr_factor("linear", 1.0) == 0.0
    assert lr_factor("cosine", 0.5) == pytest.approx(0.5) and lr_factor("cosine", 1.0) == pytest.approx(0.0)
    assert lr_factor("cosine", 1 / 3) == pytest.approx((1 + math.cos(math.pi / 3)) / 2)  # 0.75
    assert lr_factor("linear", 1.5) == 0.0 and lr_factor("linear", -1) == 1.0  # clamped to the budget
    with pytest.raises(ValueError, match="schedule must be one of constant, linear, cosine, got 'step'"):
        lr_factor("step", 0.5)
    with pytest.raises(ValueError, match="schedule must be one of"):
        TrainSettings(schedule="exponential").check()


@pytest.mark.parametrize("schedule", ["constant", "linear"])
def test_gan_learning_rates_follow_the_schedule_and_resume_on_the_curve(tmp_path, schedule):
    torch.manual_seed(0)
    settings = TrainSettings(batch_size=16, grid_size=4, progress=False, lr=1e-3, generator_lr_scale=0.5, schedule=schedule)
    trainer = GANTrainer(GenDCGAN(latent_dim=8, width=4), Critic((1, 28, 28), width=4), "dcgan", out=tmp_path, settings=settings)
    trainer.fit(toy_images(), epochs=2)  # 4 batches an epoch: the last update is at 7/8 of the budget
    factor = 1.0 if schedule == "constant" else 1 / 8
    assert trainer.optimizer_d.param_groups[0]["lr"] == pytest.approx(1e-3 * factor)
    assert trainer.optimizer_g.param_groups[0]["lr"] == pytest.approx(5e-4 * factor)
    resumed = GANTrainer.from_checkpoint(tmp_path / CHECKPOINT_NAME, progress=False)
    assert resumed.settings.schedule == schedule
    resumed.fit(toy_images(), epochs=4)  # the budget is now 4 epochs: the last update at 15/16
    factor = 1.0 if schedule == "constant" else 1 / 16
    assert resumed.optimizer_d.param_groups[0]["lr"] == pytest.approx(1e-3 * factor)


# -- transfer learning (--init-from) -----------------------------------------------------------
def _tiny_run(out, data_dir, *extra):
    argv = ["--dataset", "mnist", "--limit", "64", "--width", "4", "--latent-dim", "8", "--batch-size", "32", "--epochs", "1"]
    train_gan.main([*argv, "--image-size", "32", "--channels", "3", "--out", str(out), "--no-progress", "--no-eval", *extra])


def test_init_from_a_run_starts_generator_and_critic_from_its_weights_with_fresh_optimizers(tmp_path, data_dir):
    """Pre-train on MNIST drawn as 32x32 RGB, then start a second run from it: the new run's
    generator begins at the first run's EMA generator and its critic at the first run's critic,
    its optimizers and counters start at zero, and its card says where it came from."""
    from genhub.training.gan import initialise_from, read_checkpoint

    _tiny_run(tmp_path / "pretrain", data_dir, "--objective", "wgan-gp", "--n-critic", "1")
    source = read_checkpoint(tmp_path / "pretrain" / CHECKPOINT_NAME)
    assert source["generator_steps"] == 2
    torch.manual_seed(1)
    model = GenGAN(image_shape=(3, 32, 32), latent_dim=8, width=4, objective="wgan-gp")
    critic = build_critic("wgan-gp", (3, 32, 32), width=4)
    assert not all(torch.equal(model.state_dict()[k], v) for k, v in source["ema_generator"].items())
    assert initialise_from(tmp_path / "pretrain", model, critic) == "generator (EMA) and critic"
    for name, value in source["ema_generator"].items():
        assert torch.equal(model.state_dict()[name], value), name
    for name, value in source["critic"].items():
        assert torch.equal(critic.state_dict()[name], value), name

    _tiny_run(tmp_path / "tuned", data_dir, "--objective", "wgan-gp", "--n-critic", "1", "--init-from", str(tmp_path / "pretrain"))
    tuned = read_checkpoint(tmp_path / "tuned" / CHECKPOINT_NAME)
    assert tuned["generator_steps"] == source["generator_steps"]  # one epoch each, not two: the counters restarted
    assert all(int(s["step"]) == 2 for s in tuned["optimizer_d"]["state"].values())  # Adam's counts began at 0
    card = (tmp_path / "tuned" / "model" / "README.md").read_text()
    assert f"| initialised from | {tmp_path / 'pretrain'} |" in card


def test_init_from_a_model_folder_loads_the_generator_only(tmp_path, data_dir):
    from genhub.training.gan import initialise_from

    _tiny_run(tmp_path / "pretrain", data_dir)
    saved = load_model(tmp_path / "pretrain" / "model")
    model = GenDCGAN(image_shape=(3, 32, 32), latent_dim=8, width=4)
    critic = build_critic("dcgan", (3, 32, 32), width=4)
    fresh_critic = {k: v.clone() for k, v in critic.state_dict().items()}
    assert initialise_from(tmp_path / "pretrain" / "model", model, critic) == "generator (the critic starts fresh)"
    assert all(torch.equal(model.state_dict()[k], v) for k, v in saved.state_dict().items())
    assert all(torch.equal(critic.state_dict()[k], v) for k, v in fresh_critic.items())


def test_init_from_a_model_saved_before_a_config_field_existed_reads_it_as_its_default(tmp_path):
    """Configs written before `extra_convs` existed lack it; they stand for the default (0), not for a mismatch."""
    import json

    from genhub.training.gan import initialise_from

    GenDCGAN(latent_dim=8, width=4).save_pretrained(tmp_path / "old")
    config = json.loads((tmp_path / "old" / "config.json").read_text())
    del config["extra_convs"]
    (tmp_path / "old" / "config.json").write_text(json.dumps(config))
    model, critic = GenDCGAN(latent_dim=8, width=4), build_critic("dcgan", (1, 28, 28), width=4)
    assert initialise_from(tmp_path / "old", model, critic) == "generator (the critic starts fresh)"
    with pytest.raises(ValueError, match=r"extra_convs 0 \(the flags build 1\)"):
        initialise_from(tmp_path / "old", GenDCGAN(latent_dim=8, width=4, extra_convs=1), critic)


def test_init_from_other_networks_or_a_bad_source_is_a_clear_error(tmp_path, data_dir):
    _tiny_run(tmp_path / "pretrain", data_dir)
    with pytest.raises(SystemExit, match=r"its generator is not the one these flags build: .*width 4 \(the flags build 8\)"):
        _tiny_run(tmp_path / "wider", data_dir, "--width", "8", "--init-from", str(tmp_path / "pretrain"))
    with pytest.raises(SystemExit, match=r"image_shape \[3, 32, 32\] \(the flags build \[3, 28, 28\]\)"):
        _tiny_run(tmp_path / "smaller", data_dir, "--image-size", "28", "--init-from", str(tmp_path / "pretrain"))
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit, match="broken.pt is corrupt"):
        _tiny_run(tmp_path / "b", data_dir, "--init-from", str(tmp_path / "broken.pt"))
    with pytest.raises(SystemExit, match="nowhere"):
        _tiny_run(tmp_path / "n", data_dir, "--init-from", str(tmp_path / "nowhere"))
    assert not (tmp_path / "wider" / CHECKPOINT_NAME).exists()  # nothing was trained or written
