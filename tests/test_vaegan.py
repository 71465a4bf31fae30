"""The VAE -> GAN warm start (genhub.training.warm_start) and train/vaegan.py end to end on real faces."""

import json
from pathlib import Path

import pytest
import torch
from conftest import script

from genhub import GenDCGAN, GenGAN, GenVAE, load_model
from genhub.evaluation.metrics import _blur, laplacian_variance
from genhub.training.warm_start import early_layers, gan_from_vae, load_vae_decoder, slow_early_layers

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "train" / "vaegan.py"


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def trained_looking_vae(prior="standard", **kwargs) -> GenVAE:
    """A conv VAE whose weights are far from their initialization, so a bad copy would show."""
    vae = GenVAE(image_shape=(3, 32, 32), latent_dim=8, architecture="conv", width=8, likelihood="gaussian", prior=prior, **kwargs)
    with torch.no_grad():
        for parameter in vae.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.2)
    return vae.eval()


def test_warm_started_generator_draws_the_vae_mean_images():
    vae = trained_looking_vae()
    generator = gan_from_vae(vae, "hinge").eval()
    z = torch.randn(16, 8)
    with torch.no_grad():
        assert torch.allclose(generator.decode(z), vae.decode(z), atol=1e-5)
        assert torch.allclose(generator.sample(4, seed=3), vae.sample(4, seed=3), atol=1e-5)  # both draw z ~ N(0, I)
    assert isinstance(generator, GenGAN) and generator.objective == "hinge"
    assert (generator.batch_norm, generator.width) == (False, 8)
    assert isinstance(gan_from_vae(vae, "dcgan"), GenDCGAN)


def test_warm_start_survives_save_and_load(tmp_path):
    generator = gan_from_vae(trained_looking_vae())
    generator.save_pretrained(tmp_path / "gan")
    loaded = load_model(tmp_path / "gan").eval()
    z = torch.randn(4, 8)
    with torch.no_grad():
        assert torch.equal(loaded.decode(z), generator.eval().decode(z))
    assert json.loads((tmp_path / "gan" / "config.json").read_text())["batch_norm"] is False


@pytest.mark.parametrize(
    ("generator_kwargs", "message"),
    [
        ({"width": 8}, r"differ from the VAE decoder's.*batch_norm=False"),  # batch norm on by default
        ({"width": 16, "batch_norm": False}, r"layer project\.0\.weight.*width=8"),
        ({"width": 8, "batch_norm": False, "latent_dim": 4}, "must share latent size"),
        ({"architecture": "mlp", "hidden_dims": (16,)}, "needs a conv decoder"),
    ],
)
def test_a_generator_of_another_architecture_is_a_clear_error(generator_kwargs, message):
    generator = GenGAN(**{"image_shape": (3, 32, 32), "latent_dim": 8, **generator_kwargs})
    before = {k: v.clone() for k, v in generator.state_dict().items()}
    with pytest.raises(ValueError, match=message):
        load_vae_decoder(generator, trained_looking_vae())
    assert all(torch.equal(before[k], v) for k, v in generator.state_dict().items())  # untouched


def test_a_vae_with_a_learned_prior_or_an_mlp_decoder_is_refused():
    with pytest.raises(ValueError, match="standard N\\(0, I\\) prior"):
        gan_from_vae(trained_looking_vae(prior="mog", num_components=3))
    with pytest.raises(ValueError, match="needs a conv decoder"):
        gan_from_vae(GenVAE(image_shape=(3, 32, 32), latent_dim=8, architecture="mlp", hidden_dims=(16,)))


def test_frozen_early_layers_stay_put_while_the_rest_trains():
    generator = gan_from_vae(trained_looking_vae())
    optimizer = slow_early_layers(torch.optim.Adam(generator.parameters(), lr=1e-2), generator, count=2, lr_scale=0.0)
    frozen = [p.clone() for layer in early_layers(generator, 2) for p in layer.parameters()]
    last = generator.generator[0].blocks[-1].weight.clone()
    for _ in range(3):
        optimizer.zero_grad()
        generator.decode(torch.randn(8, 8)).mean().backward()
        optimizer.step()
    assert all(torch.equal(a, b) for a, b in zip(frozen, (p for layer in early_layers(generator, 2) for p in layer.parameters())))
    assert not torch.equal(last, generator.generator[0].blocks[-1].weight)
    assert [group["lr"] for group in optimizer.param_groups] == [0.0, 1e-2]
    assert sum(len(group["params"]) for group in optimizer.param_groups) == len(list(generator.parameters()))


def test_early_layer_options_are_checked():
    generator = gan_from_vae(trained_looking_vae())
    layers = early_layers(generator, 4)  # 32x32: the projection and three transposed convs
    assert isinstance(layers[0][0], torch.nn.Linear) and len(layers) == 4
    with pytest.raises(ValueError, match="has 4 layers"):
        early_layers(generator, 5)
    with pytest.raises(ValueError, match=">= 0"):
        slow_early_layers(torch.optim.Adam(generator.parameters()), generator, 1, -0.5)
    optimizer = slow_early_layers(torch.optim.Adam(generator.parameters()), generator, 1, 0.5)
    with pytest.raises(ValueError, match="fresh optimizer"):
        slow_early_layers(optimizer, generator, 1, 0.5)


def test_generators_saved_before_the_batch_norm_option_still_load(tmp_path):
    GenDCGAN(image_shape=(3, 16, 16), latent_dim=8, width=4).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["batch_norm"]  # a config written before the option existed
    (tmp_path / "config.json").write_text(json.dumps(config))
    model = GenDCGAN.from_pretrained(tmp_path)
    assert model.batch_norm is True
    assert model.sample(2, seed=0).shape == (2, 3, 16, 16)


def test_laplacian_variance_scores_blurred_images_lower():
    images = torch.rand(6, 3, 32, 32)
    sharp, blurred = laplacian_variance(images), laplacian_variance(_blur(images))
    assert sharp.shape == (6,) and bool((blurred < sharp / 4).all())
    assert torch.allclose(laplacian_variance(torch.full((2, 1, 16, 16), 0.5)), torch.zeros(2))  # flat images: no edges
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        laplacian_variance(images * 255)


# -- train/vaegan.py ---------------------------------------------------------------------------
def run_script(argv):
    return script("vaegan").main(argv)


def tiny_argv(data_dir, out) -> list[str]:
    return [
        "--dataset",
        str(data_dir / "anime_faces"),
        "--limit",
        "200",
        "--image-size",
        "32",
        "--vae-epochs",
        "1",
        "--epochs",
        "1",
        "--width",
        "4",
        "--latent-dim",
        "8",
        "--batch-size",
        "32",
        "--vae-eval-k",
        "2",
        "--vae-eval-limit",
        "8",
        "--eval-samples",
        "64",
        "--threads",
        "1",
        "--no-progress",
        "--out",
        str(out),
    ]


@pytest.fixture(scope="module")
def run(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("vaegan")
    return out, run_script([*tiny_argv(data_dir, out), "--critic-norm", "spectral"])


def test_writes_both_models_and_they_load(run):
    out, result = run
    vae = GenVAE.from_pretrained(out / "vae" / "model")
    gan = load_model(out / "gan" / "model")
    assert (vae.prior, vae.likelihood, vae.latent_dim) == ("standard", "gaussian", 8)
    assert type(gan) is GenDCGAN and gan.batch_norm is False and gan.latent_dim == 8
    assert gan.sample(2, seed=0).shape == vae.sample(2, seed=0).shape == (2, 3, 32, 32)
    assert (out / "gan" / "model" / "samples.png").exists() and result["trainer"].generator_steps == 200 // 32


def test_cards_link_each_other_and_state_the_pre_training(run):
    out, _ = run
    vae_folder, gan_folder = out / "vae" / "model", out / "gan" / "model"
    vae_card, gan_card = (vae_folder / "README.md").read_text(), (gan_folder / "README.md").read_text()
    assert "## Pre-training for a GAN" in vae_card and "[../../gan/model](../../gan/model)" in vae_card
    assert "## Pre-training" in gan_card and "[../../vae/model](../../vae/model)" in gan_card
    assert (vae_folder / "../../gan/model").resolve() == gan_folder.resolve()
    assert "1 of 1 epochs kept" in gan_card and "train/vaegan.py" in gan_card
    assert 'from_pretrained("path/to/this/folder")' in vae_card  # no Hub id without --push
    assert "batch-norm statistics" not in gan_card  # this generator has none
    assert "width 4, norm spectral" in gan_card  # --critic-norm reaches the GAN phase's critic
    assert "adam lr 0.0004 (generator), 0.0002 (critic)" in gan_card  # the warm-started generator's default learning rate: 2x
    for card, folder in ((vae_card, vae_folder), (gan_card, gan_folder)):  # both evaluated on held-out faces
        assert "sliced Wasserstein" in card and (folder / "eval.json").exists()


def test_vae_from_runs_a_second_gan_phase_on_an_earlier_runs_vae(run, data_dir, tmp_path):
    """--vae-from RUN: phase 1 is RUN's VAE, copied as it was; phase 2 starts from its decoder."""
    out, _ = run
    again = tmp_path / "again"
    run_script([*tiny_argv(data_dir, again), "--vae-epochs", "7", "--vae-from", str(out), "--objective", "hinge"])
    reused, original = GenVAE.from_pretrained(again / "vae" / "model"), GenVAE.from_pretrained(out / "vae" / "model")
    assert all(torch.equal(a, b) for a, b in zip(reused.state_dict().values(), original.state_dict().values()))
    assert (again / "vae" / "metrics.json").read_bytes() == (out / "vae" / "metrics.json").read_bytes()  # no VAE epoch trained (7 asked)
    gan_card = (again / "gan" / "model" / "README.md").read_text()
    assert "1 of 1 epochs kept" in gan_card and f"taken from the earlier run {out}" in gan_card and "hinge" in gan_card
    assert (again / "vae" / "model" / "../../gan/model").resolve() == (again / "gan" / "model").resolve()
    with pytest.raises(SystemExit, match="its VAE has latent size 8 and width 4; the flags give 8 and 6"):
        run_script([*tiny_argv(data_dir, tmp_path / "wider"), "--width", "6", "--vae-from", str(out)])
    with pytest.raises(SystemExit, match="no finished train/vaegan.py VAE phase there"):
        run_script([*tiny_argv(data_dir, tmp_path / "none"), "--vae-from", str(tmp_path / "nowhere")])


def test_speed_flags_reach_both_phases_and_auto_keeps_the_vae_in_fp32(run, data_dir, tmp_path):
    out, _ = run  # the default, --precision auto on this CPU: fp32 for both
    assert "| precision | fp32 |" in (out / "gan" / "model" / "README.md").read_text()
    fast = tmp_path / "fast"
    result = run_script([*tiny_argv(data_dir, fast), "--precision", "bf16", "--channels-last", "--no-eval"])
    trainer = result["trainer"]
    assert trainer.use_autocast and trainer.settings.channels_last
    assert trainer.critic.body.layers[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert "| precision | bf16 autocast in training, fp32 in evaluation |" in (fast / "vae" / "model" / "README.md").read_text()
    assert "| precision | bf16 autocast |" in (fast / "gan" / "model" / "README.md").read_text()
    assert load_model(fast / "gan" / "model").sample(2, seed=0).shape == (2, 3, 32, 32)


def test_push_without_token_fails_after_saving_both(data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    with pytest.raises(SystemExit) as exit_info:  # also: an objective with an auto-encoder critic, no evaluation
        run_script(
            [
                *tiny_argv(data_dir, tmp_path / "run"),
                "--objective",
                "began",
                "--no-eval",
                "--push",
                "--repo-id",
                "someone/vaegan-test",
                "--vae-repo-id",
                "someone/vae-test",
                "--fit-prior",
                "3",  # the saved VAE gets a fitted mixture prior; the GAN still starts from its decoder
            ]
        )
    assert exit_info.value.code == 2
    assert "The model is saved in" in capsys.readouterr().err
    gan_card = (tmp_path / "run" / "gan" / "model" / "README.md").read_text()
    vae_card = (tmp_path / "run" / "vae" / "model" / "README.md").read_text()
    assert "[someone/vae-test](https://huggingface.co/someone/vae-test)" in gan_card
    assert "[someone/vaegan-test](https://huggingface.co/someone/vaegan-test)" in vae_card
    assert type(load_model(tmp_path / "run" / "gan" / "model")) is GenGAN and "**began**" in gan_card
    assert 'GenVAE.from_pretrained("someone/vae-test")' in vae_card
    assert GenVAE.from_pretrained(tmp_path / "run" / "vae" / "model").prior == "mog" and "mixture of 3 diagonal Gaussians" in vae_card


@pytest.mark.parametrize(
    "extra",
    [
        ["--push", "--repo-id", "someone/vaegan-test"],
        ["--push"],
        ["--width", "0"],
        ["--generator-lr-scale", "0"],
        ["--objective", "wgan-gp", "--critic-norm", "batch"],
    ],
)
def test_bad_arguments_stop_before_training(extra, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        run_script(["--out", str(tmp_path), *extra])
    assert exit_info.value.code == 2
    assert not (tmp_path / "vae").exists()
