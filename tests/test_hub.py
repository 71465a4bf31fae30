import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from genhub import GenDCGAN, GenVAE, ModelLoadError, PushError, load_model, push_folder
from genhub.models.hub import standard_normal


@pytest.fixture
def saved(tmp_path):
    model = GenVAE(image_shape=(1, 28, 28), latent_dim=8, hidden_dims=(32,))
    folder = tmp_path / "vae"
    model.save_pretrained(folder, model_card_kwargs={"dataset": "binarized-mnist", "metrics": {"NLL": "99.00"}})
    return model, folder


def test_save_writes_safetensors_config_and_card(saved):
    model, folder = saved
    assert {p.name for p in folder.iterdir()} == {"config.json", "model.safetensors", "README.md"}
    config = json.loads((folder / "config.json").read_text())
    assert config["latent_dim"] == 8 and config["genhub_class"] == "GenVAE"
    card = (folder / "README.md").read_text()
    assert "library_name: genhub" in card and "pipeline_tag: unconditional-image-generation" in card
    assert "license: mit" in card and "| NLL | 99.00 |" in card and "binarized-mnist" in card
    assert set(load_file(folder / "model.safetensors")) == set(model.state_dict())


def test_round_trip_is_exact(saved):
    model, folder = saved
    loaded = GenVAE.from_pretrained(folder, strict=True)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    assert torch.equal(model.sample(4, seed=3), loaded.sample(4, seed=3))
    assert isinstance(load_model(folder), GenVAE)


def test_load_from_hub_cache_offline(saved, tmp_path, monkeypatch):
    """A model in the Hub cache loads by its repo id with HF_HUB_OFFLINE=1 (no network)."""
    _, folder = saved
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--someone--tiny-vae"
    shutil.copytree(folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = GenVAE.from_pretrained("someone/tiny-vae", cache_dir=tmp_path / "hub")
    assert loaded.latent_dim == 8
    with pytest.raises(ModelLoadError, match="Hub cannot be reached"):
        GenVAE.from_pretrained("someone/not-cached", cache_dir=tmp_path / "hub")


def test_corrupt_config_is_a_clear_error(saved):
    _, folder = saved
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="config.json is corrupt"):
        GenVAE.from_pretrained(folder)


def test_missing_weights_is_a_clear_error(saved):
    _, folder = saved
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="no weights file"):
        GenVAE.from_pretrained(folder)


def test_truncated_weights_is_a_clear_error(saved):
    _, folder = saved
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ModelLoadError, match="corrupt"):
        GenVAE.from_pretrained(folder)


def test_weights_that_do_not_fit_the_config(saved):
    _, folder = saved
    config = json.loads((folder / "config.json").read_text())
    config["latent_dim"] = 16
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="do not match"):
        GenVAE.from_pretrained(folder)


def test_folder_without_config(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json"):
        GenVAE.from_pretrained(tmp_path)


def test_push_without_token_fails_cleanly(saved, tmp_path, monkeypatch):
    _, folder = saved
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-home"))  # no stored login either
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    with pytest.raises(PushError, match="No Hugging Face token") as error:
        push_folder(folder, "someone/tiny-vae")
    assert str(folder) in str(error.value)
    assert (folder / "model.safetensors").exists()


def test_push_offline_fails_cleanly(saved, monkeypatch):
    _, folder = saved
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(PushError, match="HF_HUB_OFFLINE"):
        push_folder(folder, "someone/tiny-vae", token="hf_fake")


@pytest.mark.parametrize("n", [0, -3, 2.5, "4", True])
def test_sample_rejects_bad_counts(n):
    with pytest.raises(ValueError, match="positive integer"):
        GenVAE(latent_dim=4, hidden_dims=(8,)).sample(n)


def test_sample_is_seeded_and_in_unit_range():
    model = GenVAE(image_shape=(3, 32, 32), latent_dim=4, architecture="conv", width=8, likelihood="gaussian")
    first, second = model.sample(5, seed=1), model.sample(5, seed=1)
    assert first.shape == (5, 3, 32, 32) and torch.equal(first, second)
    assert 0 <= first.min() and first.max() <= 1
    assert not torch.equal(first, model.sample(5, seed=2))
    grid = model.grid(first, nrow=5)
    assert grid.size == (5 * 34 + 2, 34 + 2) and grid.mode == "RGB"


def test_truncated_noise_matches_the_truncated_normal():
    """Every draw lies in [-t, t]; its variance is the truncated normal's, 1 - 2 t phi(t) / (2 Phi(t) - 1)."""
    generator = torch.Generator().manual_seed(0)
    for t in (0.5, 1.0, 2.0):
        z = standard_normal((200_000,), generator, truncation=t).double()
        phi = math.exp(-t * t / 2) / math.sqrt(2 * math.pi)
        mass = math.erf(t / math.sqrt(2))  # 2 Phi(t) - 1
        assert z.abs().max() <= t and abs(z.mean()) < 0.01, t
        assert z.var().item() == pytest.approx(1 - 2 * t * phi / mass, abs=0.01), t
        assert (z.abs() > 0.9 * t).any(), t  # it fills the interval, not only its middle
    plain = standard_normal((1000,), torch.Generator().manual_seed(3))
    assert torch.equal(plain, torch.randn(1000, generator=torch.Generator().manual_seed(3)))  # None: the old stream


@pytest.mark.parametrize("model", ["gan", "vae", "vamp-hierarchy"])
def test_sample_with_truncation_is_seeded_and_bounded(model):
    standard_prior = model != "vamp-hierarchy"
    if model == "gan":
        model = GenDCGAN(image_shape=(1, 8, 8), latent_dim=6, architecture="mlp", hidden_dims=(8,))
    elif model == "vae":
        model = GenVAE(latent_dim=6, hidden_dims=(8,))
    else:  # the VampPrior's components are drawn as usual; the noise around them is truncated
        model = GenVAE(latent_dim=6, hidden_dims=(8,), prior="vamp", num_pseudo_inputs=3, hierarchy_dim=2)
    z = model.sample_latent(500, seed=1, truncation=0.5)
    assert torch.equal(z, model.sample_latent(500, seed=1, truncation=0.5))
    if standard_prior:
        assert z.abs().max() <= 0.5
    assert z.std() < model.sample_latent(500, seed=1).std()
    assert torch.equal(model.sample(3, seed=2, truncation=1.0), model.sample(3, seed=2, truncation=1.0))


@pytest.mark.parametrize("truncation", [0, -1.0, float("nan"), float("inf"), "1", True])
def test_bad_truncation_is_a_clear_error(truncation):
    with pytest.raises(ValueError, match="truncation must be a positive number"):
        GenVAE(latent_dim=4, hidden_dims=(8,)).sample(2, truncation=truncation)


def test_configs_saved_before_the_names_were_unified_still_load(tmp_path):
    """The conv nets are `architecture="conv"` with `width` in every family now; bundled and Hub
    configs from before (GAN "dcgan", VAE "conv_width") load into the same weights and re-save
    under today's names."""
    import json

    from genhub import GenWGAN, load_model

    repo = Path(__file__).resolve().parent.parent / "weights"
    old_vae = json.loads((repo / "vae-binarized-mnist" / "config.json").read_text())
    old_gan = json.loads((repo / "wgan-gp-mnist" / "config.json").read_text())
    assert old_vae["conv_width"] == 32 and old_gan["architecture"] == "dcgan"  # the files are untouched
    vae, gan = load_model(repo / "vae-binarized-mnist"), load_model(repo / "wgan-gp-mnist")
    assert vae.decoder.blocks[-1].in_channels == 32 and isinstance(gan, GenWGAN) and gan.architecture == "conv"
    vae.save_pretrained(tmp_path / "vae")
    gan.save_pretrained(tmp_path / "gan")
    new_vae = json.loads((tmp_path / "vae" / "config.json").read_text())
    new_gan = json.loads((tmp_path / "gan" / "config.json").read_text())
    assert new_vae["width"] == 32 and "conv_width" not in new_vae and new_gan["architecture"] == "conv"
    again = load_model(tmp_path / "vae")
    z = torch.zeros(2, vae.latent_dim)
    assert torch.equal(again.decode(z), vae.decode(z))


def test_config_changes_names_each_differing_field_and_treats_tuples_as_lists():
    from genhub.models.hub import config_changes

    wanted = {"genhub_class": "GenDCGAN", "image_shape": (1, 28, 28), "width": 32, "objective": "dcgan"}
    found = {"genhub_class": "GenWGAN", "image_shape": [1, 28, 28], "width": 16, "objective": "wgan-gp", "upsample": "nearest"}
    changes = config_changes(wanted, found, ignore=("objective",))
    assert changes == ["upsample 'nearest' (the flags build None)", "width 16 (the flags build 32)"]
    assert config_changes(wanted, dict(wanted)) == []
