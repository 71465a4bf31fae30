"""What a careless or hostile user can hand genhub, as a table: the CLIs, load_images,
from_pretrained / load_model and the Space's functions. Every bad input ends in a clear error (an
exit code and one line naming the input, no traceback); every valid one gives the right result."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, bad_image_file, script
from PIL import Image
from safetensors.torch import load_file, save_file

from genhub import DatasetError, GenDCGAN, GenVAE, ModelLoadError, load_images, load_model
from genhub.space import app_logic as logic


def run_script(name: str, argv: list[str]) -> tuple[int, str]:
    """Run train/<name>.py's main as its `__main__` does (through run_cli): (exit code, stderr)."""
    import contextlib

    namespace = script(name)
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), pytest.raises(SystemExit) as exit_info:
        namespace.run_cli(lambda: namespace.main(argv))
        raise SystemExit(0)
    code = exit_info.value.code
    message = stderr.getvalue()
    if isinstance(code, str):  # SystemExit("error: ...") prints its text and exits 1
        message, code = message + code, 1
    return code, message


def assert_clear(code: int, message: str, *needles: str) -> None:
    assert code != 0, message
    assert "Traceback" not in message, message
    lines = [line for line in message.strip().splitlines() if line.strip()]
    assert lines, "no message"
    for needle in needles:
        assert needle in message, f"{needle!r} not in: {message}"


# -- the CLIs ------------------------------------------------------------------------------
@pytest.fixture()
def out(tmp_path) -> Path:
    return tmp_path / "out"


@pytest.fixture()
def a_file(tmp_path) -> Path:
    path = tmp_path / "a-file"
    path.write_text("not a folder")
    return path


VAE_CASES = [
    (["--epochs", "0"], "--epochs must be a positive integer"),
    (["--batch-size", "0"], "--batch-size must be a positive integer"),
    (["--width", "0"], "--width must be a positive integer"),
    (["--eval-k", "0"], "--eval-k must be a positive integer"),
    (["--lr", "0"], "--lr must be positive"),
    (["--kl-weight", "-1"], "--kl-weight must be >= 0"),
    (["--kl-warmup", "-2"], "--kl-warmup must be >= 0"),
    (["--eval-limit", "0"], "--eval-limit must be a positive integer"),
    (["--seed", "-1"], "--seed must be a whole number"),
    (["--seed", "1e20"], "invalid int value: '1e20'"),
    (["--device", "foo"], "--device 'foo'"),
    (["--latent-dim", "1000000"], "--latent-dim 1000000 is too large"),
    (["--holdout", "0.9"], "--holdout must be a fraction"),
    (["--dataset", "no-such-data"], "Unknown dataset 'no-such-data'"),
    (["--recipe", "no-such-recipe.toml"], "no recipe file at no-such-recipe.toml"),
]
GAN_CASES = [
    (["--seed", "-1"], "--seed must be a whole number"),
    (["--seed", "1e20"], "invalid int value: '1e20'"),
    (["--device", "foo"], "--device 'foo'"),
    (["--latent-dim", "1000000"], "--latent-dim 1000000 is too large"),
    (["--augment", "zoom"], "--augment/--augment-p"),
    (["--save-every", "0"], "--save-every must be a positive integer"),
    (["--recipe", str(REPO / "recipes" / "vae-binarized-mnist.toml")], "is a recipe for train/vae.py, not train/gan.py"),
]


@pytest.mark.parametrize(("argv", "message"), VAE_CASES)
def test_train_vae_rejects(argv, message, out):
    assert_clear(*run_script("vae", [*argv, "--out", str(out)]), message)
    assert not (out / "checkpoint.pt").exists()


@pytest.mark.parametrize(("argv", "message"), GAN_CASES)
def test_train_gan_rejects(argv, message, out):
    assert_clear(*run_script("gan", [*argv, "--out", str(out)]), message)


@pytest.mark.parametrize("name", ["vae", "gan", "vaegan"])
def test_every_training_script_checks_its_output_folder_first(name, a_file):
    assert_clear(*run_script(name, ["--out", str(a_file)]), "is a file, not a folder")
    # A folder inside a file can never be made, whoever runs the test (root included).
    assert_clear(*run_script(name, ["--out", str(a_file / "run")]), "cannot be written")


def test_a_recipe_with_an_unknown_field_names_the_file_and_field(tmp_path, out):
    recipe = tmp_path / "bad.toml"
    recipe.write_text('script = "gan"\n[model]\nwidht = 8\n')
    assert_clear(*run_script("gan", ["--recipe", str(recipe), "--out", str(out)]), "bad.toml: unknown field 'widht'")
    recipe.write_text('script = "gan"\n[model]\nwidth = "eight"\n')
    assert_clear(*run_script("gan", ["--recipe", str(recipe), "--out", str(out)]), "field 'width' must be int")


SCRIPT_RECIPES = sorted(
    p.relative_to(REPO).as_posix() for p in (REPO / "recipes").rglob("*.toml") if 'script = "classic"' not in p.read_text()
)


@pytest.mark.parametrize("recipe", SCRIPT_RECIPES)
def test_every_committed_recipe_parses_with_its_script(recipe):
    """A recipe with a misspelt or mistyped field, or one its script no longer takes, fails here,
    not an hour into a run (the classic recipes are benchmarks/quality.py's own, not a script's)."""
    from genhub.training.cli import parse_gan_args, parse_vae_args, parse_vaegan_args
    from genhub.training.recipes import read_recipe

    parse = {"gan": parse_gan_args, "vae": parse_vae_args, "vaegan": parse_vaegan_args}[read_recipe(REPO / recipe)["script"]]
    args = parse(["--recipe", str(REPO / recipe)])
    assert args.epochs >= 1


def test_train_vae_into_an_existing_run_refuses_instead_of_replacing_it(data_dir, out):
    common = ["--dataset", str(data_dir / "binarized_mnist"), "--limit", "200", "--epochs", "1", "--arch", "mlp", "--hidden", "16",
              "--latent-dim", "4", "--eval-k", "2", "--eval-limit", "10", "--no-eval", "--out", str(out), "--no-progress"]  # fmt: skip
    assert run_script("vae", common)[0] == 0
    best = (out / "best" / "model.safetensors").read_bytes()
    assert_clear(*run_script("vae", common), "already holds a VAE run", "--resume")
    assert (out / "best" / "model.safetensors").read_bytes() == best  # nothing lost
    assert run_script("vae", [*common[:5], "2", *common[6:], "--resume"])[0] == 0  # the same run, one more epoch
    assert len(json.loads((out / "history.json").read_text())["history"]) == 2


def test_a_diverging_vae_stops_with_the_guard_and_keeps_what_it_had(data_dir, out):
    code, message = run_script(
        "vae",
        [
            "--dataset",
            str(data_dir / "binarized_mnist"),
            "--limit",
            "200",
            "--epochs",
            "2",
            "--arch",
            "mlp",
            "--hidden",
            "16",
            "--latent-dim",
            "4",
            "--lr",
            "1e30",
            "--no-eval",
            "--out",
            str(out),
            "--no-progress",
        ],  # fmt: skip
    )
    assert_clear(code, message, "training diverged")
    assert "HFValidationError" not in message


def test_gan_resume_refuses_another_dataset_unless_told(data_dir, out):
    common = ["--limit", "64", "--width", "4", "--batch-size", "32", "--no-eval", "--out", str(out), "--no-progress"]
    assert run_script("gan", ["--dataset", str(data_dir / "mnist"), "--epochs", "1", *common])[0] == 0
    code, message = run_script("gan", ["--dataset", str(data_dir / "anime_faces"), "--epochs", "2", "--resume", *common])
    assert_clear(code, message, "--dataset", "the checkpoint's run used", "--allow-changes")
    code, message = run_script("gan", ["--batch-size", "16", "--epochs", "2", "--resume", *common[:4], *common[6:]])
    assert_clear(code, message, "--batch-size 16")
    # Said nothing about the data: the checkpoint's dataset is used, and the card names it.
    assert run_script("gan", ["--epochs", "2", "--resume", *common])[0] == 0
    assert "mnist" in (out / "model" / "README.md").read_text()


def test_train_classifier_rejects_bad_numbers_and_data(tmp_path, out):
    assert_clear(*run_script("classifier", ["--epochs", "0", "--out", str(out)]), "--epochs must be a positive integer")
    assert_clear(*run_script("classifier", ["--batch-size", "0", "--out", str(out)]), "--batch-size must be a positive integer")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_clear(*run_script("classifier", ["--dataset", str(empty), "--out", str(out)]), str(empty))
    unlabelled = tmp_path / "unlabelled"
    for split in ("train", "test"):
        (unlabelled / split).mkdir(parents=True)
        for i in range(4):
            Image.new("L", (28, 28), 40 * i).save(unlabelled / split / f"{i}.png")
    assert_clear(*run_script("classifier", ["--dataset", str(unlabelled), "--out", str(out)]), "has no labels")


def test_evaluate_refuses_data_of_another_kind_without_the_flag(data_dir, tmp_path):
    model = tmp_path / "vae"
    GenVAE(latent_dim=4, hidden_dims=(16,)).save_pretrained(model)
    code, message = run_script("evaluate", [str(model), "--dataset", str(data_dir / "anime_faces"), "--samples", "32", "--nll-k", "0"])
    assert_clear(code, message, "64x64 images with 3 channel(s)", "--other-data")
    assert not (model / "eval.json").exists()
    argv = [str(model), "--dataset", str(data_dir / "anime_faces"), "--samples", "32", "--nll-k", "0", "--other-data"]
    assert run_script("evaluate", argv)[0] == 0
    assert "reference converted from 3x64x64" in (model / "README.md").read_text()


def test_a_real_cli_error_is_one_line_without_a_traceback(tmp_path):
    """The same through a real process, as a user types it."""
    result = subprocess.run([sys.executable, str(REPO / "train" / "vae.py"), "--dataset", "no-such-data", "--out", str(tmp_path)],
                            capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: Unknown dataset 'no-such-data'")


# -- load_images ---------------------------------------------------------------------------
def save_modes(folder: Path) -> dict[str, np.ndarray]:
    """One 8x8 image per PIL mode a folder can hold, and the grey levels each must load as."""
    folder.mkdir(parents=True, exist_ok=True)
    ramp8 = np.tile(np.arange(0, 256, 32, dtype=np.uint8), (8, 1))  # 0..224 across
    ramp16 = ramp8.astype(np.uint16) * 257
    expected = {}
    images = {
        "L.png": Image.fromarray(ramp8, "L"),
        "1.png": Image.fromarray(ramp8 >= 128).convert("1"),
        "LA.png": Image.merge("LA", [Image.fromarray(ramp8), Image.new("L", (8, 8), 255)]),
        "P.png": Image.fromarray(ramp8, "L").convert("P"),
        "RGB.png": Image.fromarray(np.stack([ramp8] * 3, -1), "RGB"),
        "RGBA.png": Image.fromarray(np.stack([ramp8] * 3 + [np.full((8, 8), 255, np.uint8)], -1), "RGBA"),
        "CMYK.tiff": Image.fromarray(np.stack([ramp8] * 3, -1), "RGB").convert("CMYK"),
        "I16.png": Image.fromarray(ramp16, "I;16"),
        "I16B.tiff": Image.frombytes("I;16B", (8, 8), ramp16.astype(">u2").tobytes()),
        "I.tiff": Image.fromarray(ramp16.astype(np.int32), "I"),
        "F.tiff": Image.fromarray(ramp8.astype(np.float32) / 255, "F"),
    }
    for name, image in images.items():
        image.save(folder / name)
        expected[name] = (ramp8 >= 128).astype(np.uint8) * 255 if name == "1.png" else ramp8
    return expected


def test_every_pil_mode_a_folder_can_hold_loads_with_the_right_grey_levels(tmp_path):
    for name, expected in save_modes(tmp_path / "modes").items():
        single = tmp_path / name.replace(".", "_")
        single.mkdir()
        (tmp_path / "modes" / name).rename(single / name)
        loaded = load_images(single, channels=1, cache_dir=tmp_path / "cache").images[0, 0].numpy()
        assert np.abs(loaded.astype(int) - expected.astype(int)).max() <= 2, f"{name}: {loaded[0]} vs {expected[0]}"


def test_a_16_bit_big_endian_tiff_is_not_saturated(tmp_path):
    """The reported case: I;16B read as RGB saturated 99.7% of its pixels at 255."""
    folder = tmp_path / "tiff"
    folder.mkdir()
    values = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(">u2")
    Image.frombytes("I;16B", (8, 8), values.tobytes()).save(folder / "deep.tiff")
    loaded = load_images(folder, cache_dir=tmp_path / "cache").images[0]
    assert loaded.shape[0] == 1 and (loaded == 255).float().mean() < 0.05
    assert abs(int(loaded[0, 4, 4]) - round(36000 / 257)) <= 1


@pytest.mark.parametrize("kind", ["truncated", "bomb", "text"])
def test_a_bad_image_inside_a_folder_names_the_file_and_example(kind, tmp_path, monkeypatch):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        Image.new("RGB", (8, 8), (i * 60, 0, 0)).save(folder / f"{i}.png")
    bad = folder / "3-bad.png"
    if kind == "truncated":
        buffer = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, "PNG")
        bad.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    elif kind == "bomb":
        Image.new("L", (16, 16)).save(bad)
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 256 pixels is then over twice the limit: a "bomb"
    else:
        bad.write_text("hello")
    with pytest.raises(DatasetError) as error:
        load_images(folder, cache_dir=tmp_path / "cache")
    message = str(error.value)
    assert "example" in message and ("3-bad.png" in message or kind == "text"), message


def test_a_corrupt_cache_entry_is_decoded_again_and_named(tmp_path, data_dir):
    cache = tmp_path / "cache"
    first = load_images(data_dir / "mnist", split="test", limit=16, cache_dir=cache).images
    (entry,) = (cache / "images").glob("*.pt")
    entry.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match=entry.name):
        again = load_images(data_dir / "mnist", split="test", limit=16, cache_dir=cache).images
    assert torch.equal(first, again)
    assert torch.equal(load_images(data_dir / "mnist", split="test", limit=16, cache_dir=cache).images, first)  # rewritten


def test_comic_faces_resolves_offline_to_the_shared_folder(data_dir, monkeypatch):
    monkeypatch.setenv("GENHUB_DATA_DIR", str(data_dir))
    faces = load_images("comic-faces", limit=4)
    assert faces.images.shape == (4, 3, 64, 64)


# -- from_pretrained / load_model ----------------------------------------------------------
@pytest.fixture()
def saved(tmp_path) -> Path:
    folder = tmp_path / "gan"
    GenDCGAN(width=4, latent_dim=4).save_pretrained(folder)
    return folder


def corrupt_weights(folder: Path, change) -> None:
    weights = load_file(folder / "model.safetensors")
    key = next(k for k, v in weights.items() if v.is_floating_point() and v.numel() > 1)
    weights[key] = change(weights[key].clone())
    save_file(weights, folder / "model.safetensors")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: (f / "config.json").write_text("[1, 2, 3]"), "is not a JSON object"),
        (lambda f: (f / "config.json").write_text('"a string"'), "is not a JSON object"),
        (lambda f: corrupt_weights(f, lambda t: t.to(torch.int32)), "is stored as torch.int32"),
        (lambda f: corrupt_weights(f, lambda t: t.index_fill_(0, torch.tensor([0]), float("nan"))), "NaN or infinite"),
        (lambda f: corrupt_weights(f, lambda t: t.index_fill_(0, torch.tensor([0]), float("inf"))), "NaN or infinite"),
        (
            lambda f: (f / "config.json").write_text(json.dumps({**json.loads((f / "config.json").read_text()), "width": 10**5})),
            "over the limit",
        ),
        (lambda f: (f / "model.safetensors").write_bytes(b"\x00" * 10), "corrupt"),
    ],
)
def test_damaged_model_folders_are_refused_with_the_file_named(saved, damage, message):
    damage(saved)
    for load in (load_model, GenDCGAN.from_pretrained):
        with pytest.raises(ModelLoadError, match=message):
            load(saved)


def test_a_valid_model_folder_still_loads_exactly(saved):
    model = load_model(saved)
    assert torch.equal(model.sample(2, seed=1), GenDCGAN.from_pretrained(saved).sample(2, seed=1))


# -- the Space -------------------------------------------------------------------------------
@pytest.fixture()
def registry(tmp_path, saved):
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "good").mkdir()
    for item in saved.iterdir():
        (weights / "good" / item.name).write_bytes(item.read_bytes())
    (weights / "list-config").mkdir()
    (weights / "list-config" / "config.json").write_text("[]")
    (weights / "list-config" / "model.safetensors").write_bytes(b"")
    return logic.ModelRegistry.from_environment(weights, hub_ids="")


def test_one_bad_model_folder_never_stops_the_space_and_shows_no_server_path(registry, tmp_path):
    assert registry.bundled_keys() == ["bundled:good"]
    (notice,) = registry.notices
    assert "`list-config`" in notice and str(tmp_path) not in notice


@pytest.mark.parametrize("text", ["weights/good", "x/..", "./good", "../etc/passwd", "/etc/passwd", "a b/c", "x" * 300])
def test_the_hub_box_takes_only_hub_ids(registry, text, monkeypatch):
    monkeypatch.chdir(Path(registry.weights_dir).parent)
    key, message = registry.add_hub_model(text)
    if text == "weights/good":  # shaped like an id: it goes to the Hub (unreachable here), never to the local folder
        assert key is None and "Could not load" in message
    else:
        assert key is None and "is not a Hub model id" in message
    assert sum(k.startswith("hub:") for k in registry.models) == 0


def test_notices_are_bounded(registry):
    for i in range(3 * logic.MAX_NOTICES):
        registry.add_hub_model(f"someone/missing-{i}")
    assert len(registry.notices) == logic.MAX_NOTICES


@pytest.mark.parametrize("kind", ["text", "truncated", "too many pixels", "too large a file"])
def test_bad_uploads_get_a_clear_message(kind, tmp_path):
    path = tmp_path / "upload.png"
    if kind == "too large a file":
        path.write_bytes(b"\x89PNG" + b"\x00" * (logic.MAX_UPLOAD_BYTES + 1))
    else:
        bad_image_file(path, kind)
    vae = GenVAE(latent_dim=4, hidden_dims=(16,))
    with pytest.raises(logic.AppInputError, match="readable image|pixels|MB"):
        logic.reconstruct(vae, str(path))


def test_an_undecoded_upload_must_come_from_the_upload_folder(tmp_path, monkeypatch):
    """With preprocess=False the app reads the uploaded file itself: a request naming a server
    file outside Gradio's upload folder is refused, whatever the file is."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "uploads"))
    inside = tmp_path / "uploads" / "digit.png"
    inside.parent.mkdir()
    outside = tmp_path / "secret.png"
    for path in (inside, outside):
        Image.new("L", (28, 28), 200).save(path)
    vae = GenVAE(latent_dim=4, hidden_dims=(16,))
    assert logic.reconstruct(vae, {"path": str(inside), "meta": {"_type": "gradio.FileData"}}).size[0] > 0
    for request in ({"path": str(outside)}, {"composite": {"path": "/etc/passwd"}}, {"path": str(inside.parent / ".." / "secret.png")}):
        with pytest.raises(logic.AppInputError, match="uploaded through the app"):
            logic.reconstruct(vae, request)


def test_a_16_bit_upload_reaches_reconstruct_unsaturated():
    vae = GenVAE(latent_dim=4, hidden_dims=(16,))
    values = np.zeros((28, 28), dtype=">u2")
    values[6:22, 12:16] = 40000  # a mid-grey stroke on black, stored big-endian 16-bit
    image = Image.frombytes("I;16B", (28, 28), values.tobytes())
    shown = logic.image_to_model_input(vae, image)
    assert 0 < shown.max() < 1.0 and (shown >= 0.999).float().mean() < 0.01


def test_writes_replace_symlinks_instead_of_following_them(data_dir, tmp_path):
    """The reported case: symlinks at out/history.json and out/model/samples.png had their
    targets overwritten. Every write goes through a temporary file and a rename."""
    out = tmp_path / "run"
    (out / "model").mkdir(parents=True)
    victims = {name: tmp_path / f"victim-{name.replace('/', '-')}" for name in ("history.json", "model/samples.png", "model/config.json")}
    for name, victim in victims.items():
        victim.write_text("precious")
        (out / name).symlink_to(victim)
    argv = ["--dataset", str(data_dir / "binarized_mnist"), "--limit", "200", "--epochs", "1", "--arch", "mlp", "--hidden", "16",
            "--latent-dim", "4", "--eval-k", "2", "--eval-limit", "10", "--no-eval", "--out", str(out), "--no-progress"]  # fmt: skip
    assert run_script("vae", argv)[0] == 0
    for name, victim in victims.items():
        assert victim.read_text() == "precious", name
        assert not (out / name).is_symlink(), name


def test_a_truncated_history_names_the_file(data_dir, tmp_path):
    out = tmp_path / "run"
    argv = ["--dataset", str(data_dir / "binarized_mnist"), "--limit", "200", "--epochs", "1", "--arch", "mlp", "--hidden", "16",
            "--latent-dim", "4", "--eval-k", "2", "--eval-limit", "10", "--no-eval", "--out", str(out), "--no-progress"]  # fmt: skip
    assert run_script("vae", argv)[0] == 0
    (out / "history.json").write_text('{"history": [{"epoch": 1, "val_')
    assert_clear(*run_script("vae", [*argv, "--eval-only"]), "history.json is unreadable or truncated")
