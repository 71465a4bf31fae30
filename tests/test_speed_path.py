"""The GAN trainer's speed options (precision, channels_last, compile): each trains, and the
compiled gradient penalty falls back to an eager critic instead of failing."""

from __future__ import annotations

import pytest
import torch

from genhub.models.gan import GenWGAN, build_critic
from genhub.objectives import get_objective
from genhub.training.gan import GANTrainer, TrainSettings


def trainer(objective: str, **settings) -> GANTrainer:
    torch.manual_seed(0)
    shape = (1, 16, 16)
    model = GenWGAN(image_shape=shape, latent_dim=8, architecture="conv", width=8, objective=objective)
    critic = build_critic(get_objective(objective), shape, architecture="conv", width=8)
    return GANTrainer(model, critic, objective, settings=TrainSettings(batch_size=8, progress=False, **settings))


def images(n: int = 32) -> torch.Tensor:
    return torch.randint(0, 256, (n, 1, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("settings", [{"precision": "bf16"}, {"channels_last": True}, {"precision": "bf16", "channels_last": True}])
def test_speed_options_train(settings):
    gan = trainer("wgan-gp", **settings)
    before = [p.clone() for p in gan.model.parameters()]
    gan.fit(images(), steps=2)
    assert gan.generator_steps == 2
    assert all(torch.isfinite(torch.tensor(values)).all() for values in gan.history.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, gan.model.parameters()))
    if settings.get("channels_last"):
        assert gan.critic.body.layers[0].weight.is_contiguous(memory_format=torch.channels_last)
        assert gan.scale(images(2)).is_contiguous(memory_format=torch.channels_last)


def test_bf16_autocast_runs_the_forward_in_bf16_on_cpu():
    gan = trainer("wgan-gp", precision="bf16")
    assert gan.use_autocast
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=gan.use_autocast):
        assert gan.step_generator(torch.randn(2, 8)).dtype == torch.bfloat16
    assert not trainer("wgan-gp").use_autocast  # "auto" is fp32 on the CPU


@pytest.mark.slow
def test_compile_with_a_gradient_penalty_keeps_the_critic_step_eager(capsys):
    gan = trainer("wgan-gp", compile=True)
    assert "runs eager" in capsys.readouterr().out
    assert gan.step_critic is gan.critic  # the critic step is not compiled
    assert hasattr(gan.step_generator, "_orig_mod") and hasattr(gan.generator_step_critic, "_orig_mod")  # the rest is
    gan.fit(images(), steps=2)  # n_critic 5: ten critic steps with the penalty, two generator steps
    assert all(torch.isfinite(torch.tensor(values)).all() for values in gan.history.values())


@pytest.mark.slow
def test_a_double_backward_met_under_compile_falls_back_to_eager(capsys):
    gan = trainer("wgan-gp", compile=True)
    gan.step_critic = torch.compile(gan.critic)  # as if the objective's penalty had not been foreseen
    gan.fit(images(), steps=1)
    assert "runs eager" in capsys.readouterr().out and gan.step_critic is gan.critic


def test_bad_precision_is_a_clear_error():
    with pytest.raises(ValueError, match="precision must be auto, bf16 or fp32"):
        TrainSettings(precision="fp16").check()


# -- the VAE trainer's speed options (the same two fields, from the trainer base) --------------
def vae_trainer(**settings):
    from genhub import GenVAE
    from genhub.training.vae import VAESettings, VAETrainer

    torch.manual_seed(0)
    model = GenVAE(image_shape=(1, 16, 16), latent_dim=4, architecture="conv", width=8, likelihood="bernoulli", pixelcnn_layers=2)
    return VAETrainer(model, settings=VAESettings(batch_size=8, progress=False, **settings))


def binary_images(n: int = 16) -> torch.Tensor:
    return (images(n) > 127).to(torch.uint8) * 255


def test_vae_speed_options_give_the_fp32_loss_and_default_to_fp32():
    assert vae_trainer().use_autocast is False  # a likelihood model: fp32 unless asked, on any device
    x, eps = binary_images(8), torch.randn(8, 4, generator=torch.Generator().manual_seed(1))
    losses = {}
    for name, settings in {"fp32": {}, "channels_last": {"channels_last": True}, "bf16": {"precision": "bf16"}}.items():
        vae = vae_trainer(**settings)
        batch = vae.scale(x)
        weights = [w for w in vae.model.parameters() if w.dim() == 4]
        nhwc = [w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous() for w in weights]
        assert any(nhwc) == (name == "channels_last") and batch.is_contiguous(memory_format=vae.memory_format)
        losses[name] = float(vae.step(batch, eps)["loss"])
        assert vae.step(batch)["loss"].dtype == torch.float32  # the loss leaves autocast as fp32
    assert losses["channels_last"] == pytest.approx(losses["fp32"], rel=1e-5)  # the same numbers in another layout
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.02) and losses["bf16"] != losses["fp32"]  # bf16 convs


def test_train_vae_with_bf16_and_channels_last_writes_a_model_whose_card_says_so(tmp_path, data_dir):
    from conftest import script

    from genhub import load_model

    out = tmp_path / "run"
    argv = ["--dataset", "binarized-mnist", "--limit", "200", "--epochs", "1", "--width", "8", "--latent-dim", "4"]
    argv += ["--pixelcnn-layers", "1", "--precision", "bf16", "--channels-last", "--eval-k", "2", "--eval-limit", "20"]
    script("vae").main([*argv, "--no-eval", "--out", str(out), "--no-progress"])
    model = load_model(out / "model")
    assert model.sample(2, seed=0).shape == (2, 1, 28, 28)
    assert "| precision | bf16 autocast in training, fp32 in evaluation |" in (out / "model" / "README.md").read_text()


def test_grad_in_input_format_is_the_identity_whose_gradient_keeps_the_input_layout():
    from genhub.models.nets import grad_in_input_format

    x = torch.randn(2, 3, 4, 5, dtype=torch.double).contiguous(memory_format=torch.channels_last).requires_grad_()
    y = grad_in_input_format(x)
    assert torch.equal(y, x)
    (grad,) = torch.autograd.grad(y.flatten(1).sum(), x)  # a flatten sends back an NCHW gradient
    assert not grad.is_contiguous() and grad.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(grad, torch.ones_like(x))
    nchw = torch.randn(2, 3, 4, 5, dtype=torch.double, requires_grad=True)
    (grad,) = torch.autograd.grad(grad_in_input_format(nchw), nchw, torch.randn(2, 4, 5, 3, dtype=torch.double).permute(0, 3, 1, 2))
    assert grad.is_contiguous()
    # differentiable twice, as a gradient penalty needs
    assert torch.autograd.gradgradcheck(lambda t: grad_in_input_format(t).tanh().flatten(1), (x,))


def test_channels_last_critic_backward_sees_one_layout_and_the_same_gradients():
    """The critic's flatten sends its gradient back channels-last: the LeakyReLU backward before it
    gets gradient and saved output in one layout (the fast kernel), and the input gradients (a
    gradient penalty's) equal the NCHW critic's."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Layouts(TorchDispatchMode):
        seen: list = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func._overloadpacket == torch.ops.aten.leaky_relu_backward:
                self.seen.append(tuple(a.is_contiguous() for a in args[:2]))
            return func(*args, **(kwargs or {}))

    torch.manual_seed(0)
    critic = build_critic("wgan-gp", (1, 16, 16), architecture="conv", width=8)
    x = torch.randn(4, 1, 16, 16, requires_grad=True)
    (reference,) = torch.autograd.grad(critic(x).sum(), x)
    critic.to(memory_format=torch.channels_last)
    x_cl = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    with Layouts() as layouts:
        (grad,) = torch.autograd.grad(critic(x_cl).sum(), x_cl)
    assert layouts.seen and all(a == b for a, b in layouts.seen)
    torch.testing.assert_close(grad, reference, rtol=1e-4, atol=1e-6)


def test_adam_is_fused_on_the_cpu_and_makes_the_stock_update():
    from genhub.runtime import adam

    torch.manual_seed(0)
    weights = [torch.randn(5, 3, requires_grad=True), torch.randn(3, requires_grad=True)]
    stock_weights = [w.detach().clone().requires_grad_() for w in weights]
    fused, stock = adam(weights, lr=1e-2, betas=(0.5, 0.999)), adam(stock_weights, lr=1e-2, betas=(0.5, 0.999), fused=False)
    assert fused.defaults["fused"] and not stock.defaults["fused"]
    for _ in range(3):
        grads = [torch.randn_like(w) for w in weights]
        for group, optimizer in ((weights, fused), (stock_weights, stock)):
            for w, g in zip(group, grads):
                w.grad = g.clone()
            optimizer.step()
    for w, s in zip(weights, stock_weights):
        torch.testing.assert_close(w, s, rtol=1e-6, atol=1e-7)
        assert not torch.equal(w, torch.zeros_like(w))
    # no fused kernel for parameters on other devices (here: meta): the stock loop, no error
    assert not adam([torch.empty(3, device="meta", requires_grad=True)], lr=1e-3).defaults["fused"]
    assert get_objective("dcgan").optimizer.build(torch.nn.Linear(2, 1).parameters()).defaults["fused"]
