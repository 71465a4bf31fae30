"""The Space: pure actions and input checks, then the real app on 127.0.0.1 driven with gradio_client."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from torch import nn

from genhub import GenModel, GenVAE, load_model
from genhub.space import app_logic as logic
from genhub.space import latent
from genhub.space.serve import free_port

REPO = Path(__file__).resolve().parent.parent


class TinyGenerator(GenModel):
    """A generator without an encoder, standing in for the GANs (same interface, no `encode`)."""

    card_family = "vae"  # any existing card template: the card is not what these tests check

    def __init__(self, latent_dim: int = 6, image_shape=(3, 16, 16)):
        super().__init__()
        self.latent_dim = latent_dim
        self.image_shape = tuple(image_shape)
        self.net = nn.Linear(latent_dim, int(np.prod(image_shape)))

    def decode(self, z):
        return torch.sigmoid(self.net(z)).view(len(z), *self.image_shape)


@pytest.fixture(autouse=True, scope="module")
def _hub_offline():
    """huggingface_hub reads HF_HUB_OFFLINE once, at import; set its constant so no test waits on the network."""
    from huggingface_hub import constants

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(constants, "HF_HUB_OFFLINE", True)
        yield


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    GenVAE(latent_dim=10, hidden_dims=(32,)).save_pretrained(folder / "vae-tiny")
    TinyGenerator().save_pretrained(folder / "gan-tiny")
    (folder / "evaluators").mkdir()  # classifiers for metrics: not a generator, must be skipped
    (folder / "evaluators" / "config.json").write_text("{}")
    (folder / "notes").mkdir()  # no config.json: not a model
    (folder / "broken").mkdir()  # a config but no weights: skipped with a notice
    (folder / "broken" / "config.json").write_text('{"genhub_class": "GenVAE"}')
    return folder


@pytest.fixture(scope="module")
def registry(weights_dir) -> logic.ModelRegistry:
    return logic.ModelRegistry.from_environment(weights_dir, hub_ids="")


@pytest.fixture(scope="module")
def vae(registry):
    return registry.get("bundled:vae-tiny")


@pytest.fixture(scope="module")
def generator(registry):
    return registry.get("bundled:gan-tiny")


def digit_drawing(size=(300, 200), background="white", ink="black", box=(130, 40, 170, 160)) -> Image.Image:
    image = Image.new("RGBA", size, background)
    ImageDraw.Draw(image).rectangle(box, fill=ink)
    return image


# -- the model registry -------------------------------------------------------------------
def test_registry_lists_generative_folders_and_reports_broken_ones(registry, weights_dir):
    assert [f.name for f in logic.bundled_model_folders(weights_dir)] == ["broken", "gan-tiny", "vae-tiny"]
    assert [key for _, key in registry.choices()] == ["bundled:gan-tiny", "bundled:vae-tiny"]
    assert len(registry.notices) == 1 and "broken" in registry.notices[0] and "model.safetensors" in registry.notices[0]
    assert logic.is_vae(registry.get("bundled:vae-tiny")) and not logic.is_vae(registry.get("bundled:gan-tiny"))
    with pytest.raises(logic.AppInputError, match="Unknown model"):
        registry.get("bundled:nope")


def test_unreachable_hub_model_falls_back_to_bundled_with_notice(weights_dir, monkeypatch):
    monkeypatch.setenv("GENHUB_MODELS", "someone/not-cached, , bad id!")
    registry = logic.ModelRegistry.from_environment(weights_dir)
    assert "bundled:vae-tiny" in registry.models and not any(key.startswith("hub:") for key in registry.models)
    hub_notice = next(n for n in registry.notices if "someone/not-cached" in n)
    assert "bundled models are still available" in hub_notice and "Hub cannot be reached" in hub_notice
    key, message = registry.add_hub_model("bad id!")
    assert key is None and "not a Hub model id" in message


def test_hub_model_from_cache_is_added_and_oldest_dropped(weights_dir, monkeypatch):
    registry = logic.ModelRegistry.from_environment(weights_dir, hub_ids="")
    monkeypatch.setattr(logic, "load_hub_model", lambda repo_id, **options: TinyGenerator())
    keys = [registry.add_hub_model(f"owner/model-{i}")[0] for i in range(logic.MAX_HUB_MODELS + 1)]
    assert keys[-1] == f"hub:owner/model-{logic.MAX_HUB_MODELS}"
    assert keys[0] not in registry.models and keys[-1] in registry.models
    assert sum(key.startswith("hub:") for key in registry.models) == logic.MAX_HUB_MODELS
    assert registry.bundled_keys() == ["bundled:gan-tiny", "bundled:vae-tiny"]


def test_every_bundled_model_loads_and_samples():
    folders = logic.bundled_model_folders(REPO / "weights")
    if not folders:
        pytest.skip("no bundled models under weights/ yet")
    for folder in folders:
        model = load_model(folder)
        images = model.sample(4, seed=0)
        assert images.shape == (4, *model.image_shape), folder.name
        assert 0 <= images.min() and images.max() <= 1 and images.std() > 0.01, folder.name
        assert torch.equal(images, model.sample(4, seed=0)), folder.name


# -- input checks ---------------------------------------------------------------------------
@pytest.mark.parametrize("value", [0, 65, -1, 2.5, "abc", None, True, float("nan"), float("inf")])
def test_bad_counts_are_rejected_with_a_message(vae, value):
    with pytest.raises(logic.AppInputError, match="Number of images must be a whole number from 1 to 64"):
        logic.sample_grid(vae, 0, value)


def test_whole_floats_and_numeric_strings_are_accepted(vae):
    assert logic.check_int(3.0, "x", 0, 5) == 3 and logic.check_int(" 4 ", "x", 0, 5) == 4
    with pytest.raises(logic.AppInputError, match="Seed"):
        logic.sample_grid(vae, 2**31, 4)


@pytest.mark.parametrize("value", [5.01, -7, float("nan"), "x", None])
def test_slider_values_out_of_range_are_rejected(vae, value):
    with pytest.raises(logic.AppInputError, match=r"Slider z\[1\]"):
        logic.slider_redraw(vae, 0, [0.0, value])


@pytest.mark.parametrize("value", [-0.1, 4.5, float("nan"), "x", None])
def test_bad_truncation_values_are_rejected(vae, value):
    with pytest.raises(logic.AppInputError, match="Truncation must be a number from 0.0 to 4.0"):
        logic.sample_grid(vae, 0, 4, value)


# -- actions ---------------------------------------------------------------------------------
def test_sample_grid_is_deterministic_per_seed(vae, generator):
    first, again, other = (np.asarray(logic.sample_grid(vae, s, 16)) for s in (1, 1, 2))
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    scale = logic.display_scale(vae)
    assert first.shape[:2] == ((4 * 28 + 5 * 2) * scale,) * 2
    assert logic.sample_grid(generator, 0, 3).mode == "RGB"
    truncated = np.asarray(logic.sample_grid(vae, 1, 16, 0.5))
    assert not np.array_equal(truncated, first) and np.array_equal(np.asarray(logic.sample_grid(vae, 1, 16, 0)), first)


def test_sliders_start_at_the_seed_code_and_redraw_changes_the_image(vae):
    values, image = logic.slider_start(vae, 7)
    z = vae.sample_latent(1, 7)[0]
    assert len(values) == logic.NUM_SLIDERS and np.allclose(values, z[: logic.NUM_SLIDERS], atol=0.005)
    assert np.array_equal(np.asarray(image), np.asarray(logic.slider_redraw(vae, 7, values)))
    moved = logic.slider_redraw(vae, 7, [4.5] + values[1:])
    assert not np.array_equal(np.asarray(image), np.asarray(moved))


def test_few_latent_dims_get_few_sliders(registry):
    small = TinyGenerator(latent_dim=3)
    assert logic.num_sliders(small) == 3
    values, _ = logic.slider_start(small, 0)
    assert len(values) == 3


def test_lerp_and_slerp_end_at_the_codes_and_slerp_keeps_the_norm():
    a, b = torch.randn(64, generator=torch.Generator().manual_seed(0)), torch.randn(64, generator=torch.Generator().manual_seed(1))
    b = b / b.norm() * a.norm()
    t = latent.interpolation_weights(9)
    for path in (latent.lerp(a, b, t), latent.slerp(a, b, t)):
        assert torch.allclose(path[0], a, atol=1e-5) and torch.allclose(path[-1], b, atol=1e-5)
    assert torch.allclose(latent.slerp(a, b, t).norm(dim=1), a.norm().expand(9), rtol=1e-4)
    assert latent.lerp(a, b, t)[4].norm() < 0.9 * a.norm()  # the straight line cuts inside the shell
    assert torch.allclose(latent.slerp(a, 2 * a, t), latent.lerp(a, 2 * a, t))  # parallel: falls back to lerp
    with pytest.raises(ValueError, match="at least 2 steps"):
        latent.interpolation_weights(1)


def test_perturbation_codes_change_one_dimension_per_row():
    z = torch.randn(8)
    codes = latent.perturbation_codes(z, [2, 5]).view(2, 10, 8)
    offsets = torch.arange(-5, 5, dtype=torch.float32)
    assert torch.equal(codes[:, 5], z.expand(2, 8))  # eps = 0 is the original code
    assert torch.allclose(codes[0, :, 2] - z[2], offsets) and torch.allclose(codes[1, :, 5] - z[5], offsets)
    others = [i for i in range(8) if i != 2]
    assert torch.equal(codes[0][:, others], z[others].expand(10, 7))
    with pytest.raises(ValueError, match="out of range"):
        latent.perturbation_codes(z, [8])


def test_perturbation_grid_has_ten_columns_and_clips_rows(vae):
    scale = logic.display_scale(vae)
    grid = logic.perturbation_grid(vae, 0, 8, 16)  # dims 8, 9 only: the latent has 10
    assert grid.size == ((10 * 30 + 2) * scale, (2 * 30 + 2) * scale)
    with pytest.raises(logic.AppInputError, match="First dimension must be a whole number from 0 to 9"):
        logic.perturbation_grid(vae, 0, 10, 2)


def test_interpolate_seeds_gives_three_rows_and_a_ping_pong_gif(generator):
    strip, gif_path = logic.interpolate_seeds(generator, 0, 1, 5)
    with Image.open(gif_path) as gif:
        assert gif.n_frames == 2 * 5 - 2
    scale = logic.display_scale(generator)
    assert strip.height == (3 * 18 + 2) * scale
    with pytest.raises(logic.AppInputError, match="Steps must be a whole number from 3 to 16"):
        logic.interpolate_seeds(generator, 0, 1, 50)


def test_a_generator_reconstructs_and_interpolates_images_by_inversion(generator):
    """No encoder: Reconstruct and image Interpolate invert the images (genhub.space.inversion)."""
    scale = logic.display_scale(generator)
    pair = logic.reconstruct(generator, digit_drawing())
    assert pair.size == ((2 * 18 + 2) * 2 * scale, (18 + 2) * 2 * scale)  # [model input | its inversion]
    strip, gif_path = logic.interpolate_images(generator, digit_drawing(), digit_drawing(), 4)
    assert strip.height == (3 * 18 + 2) * scale and Path(gif_path).is_file()


def test_drawn_digit_is_inverted_centred_and_resized_like_mnist(vae):
    x = logic.image_to_model_input(vae, {"composite": digit_drawing(), "background": None, "layers": []})
    assert x.shape == (1, 1, 28, 28) and 0 <= x.min() and x.max() <= 1
    assert x[0, 0, 0].max() == 0 and x[0, 0, :, 0].max() == 0  # dark background as in MNIST
    assert x[0, 0, 14, 14] > 0.9  # the stroke, now light, sits in the middle
    rows = torch.nonzero(x[0, 0].sum(1) > 0).flatten()
    assert rows.max() - rows.min() + 1 == 20  # the ink spans MNIST's 20-pixel box
    dark = logic.image_to_model_input(vae, digit_drawing(background="black", ink="white").convert("L"))
    assert torch.allclose(dark, x, atol=0.02)  # a light-on-dark digit is not inverted


def test_images_of_any_size_and_mode_are_converted(vae, generator):
    for image in (Image.new("RGB", (50, 80), "red"), Image.new("L", (7, 7), 128), Image.new("P", (64, 64))):
        x = logic.image_to_model_input(generator, image)
        assert x.shape == (1, 3, 16, 16)
    with pytest.raises(logic.AppInputError, match="blank"):
        logic.image_to_model_input(vae, Image.new("RGBA", (100, 100), (0, 0, 0, 0)))
    with pytest.raises(logic.AppInputError, match="Upload or draw an image first"):
        logic.reconstruct(vae, {"composite": None, "background": None, "layers": []})


def test_reconstruct_and_interpolate_images_on_a_vae(vae, tmp_path):
    result = logic.reconstruct(vae, digit_drawing())
    scale = 2 * logic.display_scale(vae)
    assert result.size == ((2 * 28 + 3 * 2) * scale, (28 + 2 * 2) * scale)
    path = tmp_path / "digit.png"
    digit_drawing(box=(100, 30, 200, 60)).save(path)
    strip, gif_path = logic.interpolate_images(vae, str(path), digit_drawing(), 4)
    assert Path(gif_path).exists() and strip.width > strip.height
    with pytest.raises(logic.AppInputError, match="not a readable image"):
        logic.interpolate_images(vae, str(tmp_path / "missing.png"), digit_drawing(), 4)


def test_gif_store_keeps_only_the_newest_files():
    store = logic.GifFiles(keep=2)
    frames = [Image.new("L", (4, 4), v) for v in (0, 255)]
    paths = [store.write(frames) for _ in range(3)]
    assert not Path(paths[0]).exists() and all(Path(p).exists() for p in paths[1:])


# -- the running app -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served(weights_dir):
    import runpy
    from types import SimpleNamespace

    app = SimpleNamespace(**runpy.run_path(str(REPO / "app.py"), run_name="genhub_space"))  # the Space's entry point, as a file

    registry = logic.ModelRegistry.from_environment(weights_dir, hub_ids="someone/offline-model")
    demo = app.build_app(registry)
    _, url, _ = app.launch(demo, server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    from gradio_client import Client

    yield url, Client(url, verbose=False)
    demo.close()


def test_page_is_served_with_the_offline_notice(served):
    url, _ = served
    html = urllib.request.urlopen(url, timeout=10).read().decode()
    assert "<html" in html.lower()
    config = json.loads(urllib.request.urlopen(url.rstrip("/") + "/config", timeout=10).read())
    texts = json.dumps(config)
    assert "someone/offline-model" in texts and "bundled models are still available" in texts
    assert "gan-tiny (bundled)" in texts and "vae-tiny (bundled)" in texts and "evaluators" not in texts


def test_client_samples_and_bad_requests_do_not_break_the_app(served):
    _, client = served
    first = np.asarray(Image.open(client.predict("bundled:vae-tiny", 3, 16, api_name="/sample")))
    again = np.asarray(Image.open(client.predict("bundled:vae-tiny", 3, 16, api_name="/sample")))
    assert np.array_equal(first, again) and first.std() > 0
    for arguments, message in [
        (("bundled:vae-tiny", 3, 100), "greater than maximum"),  # Gradio's own slider bound
        (("bundled:vae-tiny", 3, 2.5), "whole number"),  # our check (Gradio rounds the seed box itself)
        (("bundled:missing", 3, 4), "not in the list of choices"),
    ]:
        with pytest.raises(Exception, match=message):
            client.predict(*arguments, api_name="/sample")
    assert Image.open(client.predict("bundled:gan-tiny", 0, 4, api_name="/sample")).mode == "RGB"
    truncated = np.asarray(Image.open(client.predict("bundled:vae-tiny", 3, 16, 0.5, api_name="/sample")))
    assert truncated.shape == first.shape and not np.array_equal(truncated, first)


def test_client_drives_sliders_interpolation_and_explore(served):
    _, client = served
    *updates, image = client.predict("bundled:vae-tiny", 5, api_name="/slider_start")
    values = [u["value"] for u in updates]
    assert all(u["visible"] for u in updates) and Image.open(image).size[0] > 28
    moved = client.predict("bundled:vae-tiny", 5, 4.0, *values[1:], api_name="/redraw")
    assert not np.array_equal(np.asarray(Image.open(moved)), np.asarray(Image.open(image)))
    with pytest.raises(Exception, match="greater than maximum"):
        client.predict("bundled:vae-tiny", 5, 9.0, *values[1:], api_name="/redraw")
    *few, _ = client.predict("bundled:gan-tiny", 5, api_name="/slider_start")
    assert [u["visible"] for u in few] == [True] * 6 + [False] * 2

    strip, gif = client.predict("bundled:gan-tiny", 0, 1, 4, api_name="/interpolate_seeds")
    assert Image.open(gif).n_frames == 6 and Image.open(strip).height > 0
    grid = Image.open(client.predict("bundled:gan-tiny", 0, 2, 3, api_name="/explore"))
    assert grid.size[0] > 3 * grid.size[1]  # ten columns, three rows


def test_client_drives_vae_features_and_model_switch(served, tmp_path):
    from gradio_client import handle_file

    _, client = served
    path = tmp_path / "drawing.png"
    digit_drawing().save(path)
    sketch = {"background": handle_file(str(path)), "layers": [], "composite": handle_file(str(path))}
    assert Image.open(client.predict("bundled:vae-tiny", sketch, api_name="/reconstruct")).size[0] > 56
    assert Image.open(client.predict("bundled:gan-tiny", sketch, api_name="/reconstruct")).size[0] > 32  # by inversion
    strip, gif = client.predict("bundled:vae-tiny", handle_file(str(path)), handle_file(str(path)), 3, api_name="/interpolate_images")
    assert Path(gif).exists()
    # The API returns the description and which model-dependent tabs apply; the browser test checks they hide.
    info, tabs = client.predict("bundled:gan-tiny", api_name="/select_model")
    assert "generator only" in info and set(tabs) == {"directions", "invert", "neighbours"}
    info, tabs = client.predict("bundled:vae-tiny", api_name="/select_model")
    assert "VAE" in info and tabs["neighbours"] is False  # no index ships with a test model
    _, notice = client.predict("someone/else", api_name="/load_hub")
    assert "Could not load `someone/else`" in notice["value"] and notice["visible"] is True


@pytest.mark.parametrize("kind", ["text", "truncated", "bomb"])
def test_bad_uploads_over_http_get_the_same_clear_message(served, tmp_path, kind):
    """Uploads reach genhub as files and are decoded there, so a bad one is a clear message in
    the client, not Gradio's generic upstream error."""
    from conftest import bad_image_file
    from gradio_client import handle_file

    _, client = served
    path = bad_image_file(tmp_path / f"{kind}.png", {"bomb": "too many pixels"}.get(kind, kind))
    upload = {"background": handle_file(str(path)), "layers": [], "composite": handle_file(str(path))}
    with pytest.raises(Exception, match="not a readable image|at most 4096x4096") as error:
        client.predict("bundled:vae-tiny", upload, api_name="/reconstruct")
    assert "upstream" not in str(error.value).lower()
    assert Image.open(client.predict("bundled:gan-tiny", 0, 4, api_name="/sample")).size[0] > 0  # still serving


def test_directions_and_inversion_as_functions(vae, generator):
    still = logic.direction_redraw(vae, 3, "sefa", 1, 0)
    moved = logic.direction_redraw(vae, 3, "sefa", 1, 3)
    assert still.size == moved.size and np.asarray(still).tolist() != np.asarray(moved).tolist()
    grid = logic.direction_grid(vae, 3, "ganspace", 4)
    assert grid.height > 3 * still.height // 2  # four rows
    assert logic.model_directions(vae, "sefa") is logic.model_directions(vae, "sefa")  # computed once
    for bad in [("pca", 1, 0), ("sefa", 0, 0), ("sefa", 1, 99), ("sefa", 1, float("nan"))]:
        with pytest.raises(logic.AppInputError):
            logic.direction_redraw(vae, 3, *bad)
    with pytest.raises(logic.AppInputError, match="No sefa directions"):
        logic.direction_redraw(generator, 0, "sefa", 1, 1)
    pair, message = logic.invert_image(vae, digit_drawing())
    assert pair.width > pair.height and "pixel MSE" in message


def test_client_drives_directions_and_inversion(served, tmp_path):
    from gradio_client import handle_file

    _, client = served
    assert Image.open(client.predict("bundled:vae-tiny", 0, "sefa", 2, 1.5, api_name="/direction_redraw")).size[0] > 0
    assert Image.open(client.predict("bundled:vae-tiny", 0, "ganspace", api_name="/directions")).size[0] > 0
    path = tmp_path / "digit.png"
    digit_drawing().save(path)
    image, message = client.predict("bundled:vae-tiny", handle_file(str(path)), api_name="/invert")
    assert Image.open(image).size[0] > 0 and "pixel MSE" in message
    with pytest.raises(Exception, match="No sefa directions"):
        client.predict("bundled:gan-tiny", 0, "sefa", 1, 1.0, api_name="/direction_redraw")
    towards = client.predict("bundled:vae-tiny", 0, "digit", 1, 2.0, 3, api_name="/direction_redraw")  # "more like a 3"
    assert Image.open(towards).size[0] > 0
    with pytest.raises(Exception, match="need a 28x28 digit model"):
        client.predict("bundled:gan-tiny", 0, "digit", 1, 2.0, 3, api_name="/direction_redraw")
    with pytest.raises(Exception, match="No neighbour index ships with gan-tiny"):
        client.predict("bundled:gan-tiny", 0, 8, api_name="/neighbours")


def test_digit_path_is_cached_and_its_grid_has_a_row_per_digit(vae, generator):
    path = logic.digit_path(vae, 4, 3)
    assert path.shape == (41, vae.latent_dim) and logic.digit_path(vae, 4, 3) is path
    grid = logic.direction_grid(vae, 4, "digit", 8)
    single = logic.direction_redraw(vae, 4, "digit", 1, 0.0, 3)
    assert grid.height > 9 * single.height // 2  # ten rows
    with pytest.raises(logic.AppInputError, match="Digit must be a whole number from 0 to 9"):
        logic.direction_redraw(vae, 4, "digit", 1, 1.0, 12)


def test_compare_shows_both_models_and_their_cards_metrics(registry, served):
    from genhub.evaluation import Evaluation, record_evaluation

    folder = registry.folders["bundled:vae-tiny"]
    record_evaluation(folder, Evaluation("mnist", "ylecun/mnist", "test", {"fd": 12.5, "swd": 30.0}, {}, {"samples": 10}))
    grid_a, grid_b, rows = logic.compare(registry, "bundled:vae-tiny", "bundled:gan-tiny", 1, 4)
    assert grid_a.size[0] > 0 and grid_b.size[0] > 0
    assert any(row[0].startswith("Fréchet") and row[1] == "12.50" and row[2] == "-" for row in rows), rows
    with pytest.raises(logic.AppInputError, match="Unknown model"):
        logic.compare(registry, "bundled:vae-tiny", "bundled:nope", 1, 4)
    _, client = served
    a, b, table = client.predict("bundled:vae-tiny", "bundled:gan-tiny", 0, 4, api_name="/compare")
    assert Image.open(a).size[0] > 0 and Image.open(b).size[0] > 0 and table["headers"][0].startswith("metric")
