"""What the Gradio Space does, without Gradio: model registry, input checks, actions.

Every action takes a loaded model and plain Python values, checks them, and returns PIL
images (or a GIF path); a value a user can get wrong raises `AppInputError` with a message
meant for that user. `app.py` only wires these functions to widgets, which keeps them
testable without a browser and shared by the UI and the API.
"""

from __future__ import annotations

import math
import os
import tempfile
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from genhub.assets import bundled_weights_dir
from genhub.data import WIDE_MODES, prepare_image
from genhub.images import grid_image, save_gif
from genhub.models.classifier import is_digit_shape
from genhub.models.hub import CONFIG_NAME, GenModel, ModelLoadError, load_hub_model, load_model
from genhub.runtime import pick_device
from genhub.space import latent

WEIGHTS_DIR = bundled_weights_dir()
NOT_GENERATIVE = {"evaluators"}  # weights/ folders that hold no generator (classifiers for metrics)
HUB_ID_HELP = "a Hub model id looks like owner/name"

MAX_SEED = 2**31 - 1
MAX_SAMPLES = 64
MAX_TRUNCATION = 4.0  # the Sample tab's truncation slider: 0 is off, t in (0, 4] keeps |z_i| <= t
NUM_SLIDERS = 8  # leading latent dimensions shown as sliders
SLIDER_LIMIT = 5.0  # |z_i| <= 5 covers a N(0, 1) code with probability 1 - 6e-7 per dimension
MIN_STEPS, MAX_STEPS = 3, 16
MAX_ROWS = 16
MAX_HUB_MODELS = 4  # Hub models loaded at once; the oldest is dropped first
MAX_NOTICES = 20  # notices kept for the UI; older ones are dropped
MAX_UPLOAD_PIXELS = 4096 * 4096  # an uploaded image larger than this is refused before it is decoded
MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # and so is a file larger than 10 MB
MAX_MODEL_PARAMETERS = 50_000_000  # a Hub model whose config describes more is refused before it is built
DISPLAY_SIDE = 112  # images are upscaled (nearest) to at least this many pixels a side


class AppInputError(ValueError):
    """A value from the user that the app cannot use; the message says what to change."""


# -- input checks ------------------------------------------------------------------------
def check_int(value, name: str, low: int, high: int) -> int:
    """An integer in [low, high]; floats are accepted only when whole (widgets send 3.0)."""
    if isinstance(value, bool) or value is None:
        raise AppInputError(f"{name} must be a whole number from {low} to {high}, got {value!r}.")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise AppInputError(f"{name} must be a whole number from {low} to {high}, got {value!r}.") from None
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise AppInputError(f"{name} must be a whole number from {low} to {high}, got {value!r}.")
        value = int(value)
    if not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise AppInputError(f"{name} must be a whole number from {low} to {high}, got {value!r}.")
    return int(value)


def check_float(value, name: str, low: float, high: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise AppInputError(f"{name} must be a number from {low} to {high}, got {value!r}.") from None
    if isinstance(value, bool) or not math.isfinite(number) or not low <= number <= high:
        raise AppInputError(f"{name} must be a number from {low} to {high}, got {value!r}.")
    return number


def check_seed(value, name: str = "Seed") -> int:
    return check_int(value, name, 0, MAX_SEED)


def is_vae(model: GenModel) -> bool:
    """VAE-only features (reconstruct, interpolate between images) need an encoder."""
    return callable(getattr(model, "encode", None))


# -- the models the app serves ------------------------------------------------------------
def is_hub_id(text: str) -> bool:
    """A real Hub id, owner/name, as the Hub allows them: never a local path (`weights/x`, `x/..`,
    `./a`), whatever exists on the server."""
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}", text or ""):
        return False
    name = text.split("/")[1]
    return ".." not in name and not name.endswith((".", "-"))


def bundled_model_folders(weights_dir: Path | str = WEIGHTS_DIR) -> list[Path]:
    """Top-level folders of `weights_dir` holding a config.json, minus non-generative ones."""
    weights_dir = Path(weights_dir)
    if not weights_dir.is_dir():
        return []
    return sorted(
        folder
        for folder in weights_dir.iterdir()
        if folder.is_dir() and folder.name not in NOT_GENERATIVE and (folder / CONFIG_NAME).is_file()
    )


@dataclass
class ModelRegistry:
    """Loaded models by key ("bundled:<folder>" or "hub:<owner/name>"), with user-facing notices.

    Bundled models are loaded at start-up, so a broken folder shows up as a notice instead of
    an error on first use. Hub models come from GENHUB_MODELS or the UI; when one cannot be
    loaded (no network, no such repo) the app keeps serving the bundled ones and says why.
    """

    weights_dir: Path = WEIGHTS_DIR
    device: torch.device = field(default_factory=pick_device)
    models: dict[str, GenModel] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    folders: dict[str, Path] = field(default_factory=dict)  # where each model's card is
    notices: deque = field(default_factory=lambda: deque(maxlen=MAX_NOTICES))
    _hub_order: deque = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_environment(cls, weights_dir: Path | str | None = None, hub_ids: str | None = None) -> ModelRegistry:
        """Bundled models from GENHUB_WEIGHTS_DIR (default weights/), Hub ids from GENHUB_MODELS (comma separated)."""
        weights_dir = Path(weights_dir or os.environ.get("GENHUB_WEIGHTS_DIR") or WEIGHTS_DIR)
        registry = cls(weights_dir=weights_dir)
        for folder in bundled_model_folders(weights_dir):
            registry._add_bundled(folder)
        hub_ids = os.environ.get("GENHUB_MODELS", "") if hub_ids is None else hub_ids
        for repo_id in filter(None, (part.strip() for part in hub_ids.split(","))):
            registry.add_hub_model(repo_id)
        if not registry.models:
            registry.notices.append("No model could be loaded: there are no bundled model folders and no Hub model was reachable.")
        return registry

    def _prepare(self, model: GenModel) -> GenModel:
        return model.to(self.device).eval().requires_grad_(False)

    def _add_bundled(self, folder: Path) -> None:
        """One bad folder never stops the Space: whatever goes wrong, the folder is skipped with a
        notice that names it (by name only: no server path reaches the page)."""
        try:
            model = self._prepare(load_model(folder))
        except Exception as error:  # noqa: BLE001 - corrupt files raise many types; the app must start regardless
            reason = str(error).replace(str(folder.resolve()), folder.name).replace(str(folder), folder.name)
            reason = reason.replace(str(self.weights_dir.resolve()), "weights").replace(str(self.weights_dir), "weights")
            self.notices.append(f"Bundled model `{folder.name}` was skipped: {type(error).__name__}: {reason}")
            return
        key = f"bundled:{folder.name}"
        self.models[key] = model
        self.labels[key] = f"{folder.name} (bundled)"
        self.folders[key] = folder

    def add_hub_model(self, repo_id: str) -> tuple[str | None, str]:
        """Load a Hub model; returns (key or None, a message for the user)."""
        repo_id = (repo_id or "").strip()
        if not is_hub_id(repo_id):
            return None, f"`{repo_id[:100]}` is not a Hub model id ({HUB_ID_HELP})."
        key = f"hub:{repo_id}"
        if key in self.models:
            return key, f"`{repo_id}` is already loaded."
        try:
            model = self._prepare(load_hub_model(repo_id, max_parameters=MAX_MODEL_PARAMETERS))
        except (ModelLoadError, OSError, ValueError, TypeError, RuntimeError) as error:
            fallback = "the bundled models are still available" if self.bundled_keys() else "no bundled model is available"
            notice = f"Could not load `{repo_id}` from the Hub, so {fallback}. {error}"
            self.notices.append(notice)
            return None, notice
        with self._lock:
            self.models[key] = model
            self.labels[key] = f"{repo_id} (Hub)"
            if getattr(model, "source_folder", None) is not None:
                self.folders[key] = model.source_folder
            self._hub_order.append(key)
            while len(self._hub_order) > MAX_HUB_MODELS:
                dropped = self._hub_order.popleft()
                self.models.pop(dropped, None)
                self.labels.pop(dropped, None)
                self.folders.pop(dropped, None)
        return key, f"Loaded `{repo_id}` from the Hub."

    def bundled_keys(self) -> list[str]:
        return [key for key in self.models if key.startswith("bundled:")]

    def choices(self) -> list[tuple[str, str]]:
        """(label, key) pairs for a dropdown, bundled models first."""
        return [(self.labels[key], key) for key in self.models]

    def default_key(self) -> str | None:
        return next(iter(self.models), None)

    def get(self, key: str) -> GenModel:
        model = self.models.get(key)
        if model is None:
            known = ", ".join(self.labels.values()) or "none"
            raise AppInputError(f"Unknown model {key!r}. Available: {known}.")
        return model

    def describe(self, key: str) -> str:
        model = self.get(key)
        channels, height, width = model.image_shape
        kind = "VAE (has an encoder: reconstruct and image interpolation available)" if is_vae(model) else "generator only"
        return (
            f"**{self.labels[key]}** · {type(model).__name__} · {kind} · latent dim {model.latent_dim} · "
            f"{height}x{width} {'grey' if channels == 1 else 'RGB'} · {model.num_parameters():,} parameters"
        )


# -- drawing helpers ----------------------------------------------------------------------
def display_scale(model: GenModel) -> int:
    return max(1, math.ceil(DISPLAY_SIDE / model.image_shape[1]))


@torch.no_grad()
def decode(model: GenModel, z: torch.Tensor) -> torch.Tensor:
    return model.decode(z.to(model.device)).float().clamp(0, 1).cpu()


@torch.no_grad()
def latent_codes(model: GenModel, n: int, seed: int, truncation: float | None = None) -> torch.Tensor:
    return model.sample_latent(n, seed, truncation).float().cpu()


def labelled_rows(images: torch.Tensor, labels: list[str], scale: int) -> Image.Image:
    """A grid with one row per label, the label written in a left margin (grey stays grey)."""
    grid = grid_image(images, nrow=len(images) // len(labels), scale=scale)
    margin = 56
    canvas = Image.new(grid.mode, (grid.width + margin, grid.height), "white")
    canvas.paste(grid, (margin, 0))
    draw = ImageDraw.Draw(canvas)
    row_height = grid.height / len(labels)
    for row, label in enumerate(labels):
        draw.text((4, row * row_height + row_height / 2 - 5), label, fill="black")
    return canvas


class GifFiles:
    """GIFs for the UI, written to one temp folder; only the newest `keep` are kept on disk."""

    def __init__(self, keep: int = 64):
        self.folder = Path(tempfile.mkdtemp(prefix="genhub-app-"))
        self.paths: deque[Path] = deque()
        self.keep = keep
        self._lock = threading.Lock()

    def write(self, frames: list[Image.Image], duration_ms: int = 120) -> str:
        path = self.folder / f"{uuid.uuid4().hex}.gif"
        save_gif(frames, path, duration_ms=duration_ms)
        with self._lock:
            self.paths.append(path)
            while len(self.paths) > self.keep:
                self.paths.popleft().unlink(missing_ok=True)
        return str(path)


GIFS = GifFiles()


# -- uploaded and drawn images ------------------------------------------------------------
def open_upload(path) -> Image.Image:
    """An uploaded file as a decoded PIL image, or AppInputError: too large a file, too many
    pixels (a decompression bomb), truncated or not an image at all."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError:
        raise AppInputError("The uploaded file is not a readable image (it could not be opened).") from None
    if size > MAX_UPLOAD_BYTES:
        raise AppInputError(f"The uploaded file is {size / 1e6:.1f} MB; images up to {MAX_UPLOAD_BYTES // 2**20} MB are accepted.")
    try:
        image = Image.open(path)
        if image.width * image.height > MAX_UPLOAD_PIXELS:
            raise AppInputError(f"The uploaded image is {image.width}x{image.height} pixels; at most 4096x4096 are accepted.")
        image.load()
    except AppInputError:
        raise
    except Exception:  # noqa: BLE001 - PIL raises OSError, SyntaxError, ValueError, DecompressionBombError...
        raise AppInputError("The uploaded file is not a readable image (not an image, truncated or damaged).") from None
    return image


def upload_folder() -> Path:
    """Where Gradio keeps uploaded files (GRADIO_TEMP_DIR, default <tmp>/gradio)."""
    return Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio").resolve()


def _uploaded_path(file_data: dict) -> Path:
    """The file of an undecoded upload (Gradio's FileData), which must lie in Gradio's upload
    folder: a request naming any other file on the server is refused."""
    path = Path(str(file_data.get("path") or "")).resolve()
    if not path.is_relative_to(upload_folder()):
        raise AppInputError("The image must be uploaded through the app; other files are not read.")
    return path


def image_from_widget(value) -> Image.Image | None:
    """A PIL image from gr.Image (PIL / numpy / path / an undecoded upload) or gr.Sketchpad (a dict
    with 'composite', decoded or not)."""
    if isinstance(value, dict) and "path" in value and "composite" not in value:
        return open_upload(_uploaded_path(value))
    if isinstance(value, dict):
        value = value.get("composite") if value.get("composite") is not None else value.get("background")
        if isinstance(value, dict):
            return open_upload(_uploaded_path(value))
    if value is None:
        return None
    if isinstance(value, Image.Image):
        return value
    if isinstance(value, np.ndarray):
        if value.size > MAX_UPLOAD_PIXELS * 4:
            raise AppInputError("The image is too large; at most 4096x4096 pixels are accepted.")
        try:
            return Image.fromarray(value)
        except (TypeError, ValueError):
            raise AppInputError(f"The image array of shape {value.shape} and type {value.dtype} is not an image.") from None
    if isinstance(value, (str, Path)):
        return open_upload(value)
    raise AppInputError(f"Expected an image, got {type(value).__name__}.")


def image_to_model_input(model: GenModel, value, name: str = "image") -> torch.Tensor:
    """Any uploaded or drawn image -> a (1, C, H, W) tensor in [0, 1] shaped like the model's data.

    Size and mode are converted with `prepare_image`. For grey models (MNIST digits: light
    ink on black, the digit scaled into the central 20x20 box) a drawing or photo with a light
    background is inverted and its ink is cropped and centred the same way, so that a digit
    drawn in black on the white sketchpad looks like the data the model learned.
    """
    image = image_from_widget(value)
    if image is None:
        raise AppInputError(f"Upload or draw an {name} first.")
    channels, size, _ = model.image_shape
    if channels == 1:
        image = _digit_like_mnist(image, size)
    array = np.asarray(prepare_image(image, size, channels), dtype=np.float32) / 255.0
    array = array.reshape(size, size, channels)
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0)


def _digit_like_mnist(image: Image.Image, size: int) -> Image.Image:
    if image.mode in WIDE_MODES:  # 16-bit, 32-bit and float greys: prepare_image rescales them by their range
        image = prepare_image(image, min(image.size), 1)
    rgba = image.convert("RGBA")  # no crop here: the ink is located below, wherever it is
    grey = np.asarray(Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("L"), dtype=np.float32)
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if np.median(border) > 127:  # light background: dark ink on paper or on the sketchpad
        grey = 255.0 - grey
    ink = np.argwhere(grey > 40)
    if len(ink) == 0:
        raise AppInputError("The image is blank: draw a digit or upload a picture of one.")
    (top, left), (bottom, right) = ink.min(0), ink.max(0) + 1
    crop = Image.fromarray(grey[top:bottom, left:right].astype(np.uint8))
    box = max(1, round(size * 20 / 28))  # MNIST: the digit fits a 20x20 box in a 28x28 image
    ratio = box / max(crop.size)
    crop = crop.resize((max(1, round(crop.width * ratio)), max(1, round(crop.height * ratio))), Image.LANCZOS)
    canvas = Image.new("L", (size, size), 0)
    canvas.paste(crop, ((size - crop.width) // 2, (size - crop.height) // 2))
    return canvas


# -- actions ------------------------------------------------------------------------------
def sample_grid(model: GenModel, seed, count, truncation=0.0) -> Image.Image:
    """`count` samples from the prior as one grid image (the same seed gives the same grid).
    `truncation` t > 0 draws every latent coordinate from the normal truncated to [-t, t]; 0 is off."""
    seed, count = check_seed(seed), check_int(count, "Number of images", 1, MAX_SAMPLES)
    truncation = check_float(truncation, "Truncation", 0.0, MAX_TRUNCATION) or None
    images = decode(model, latent_codes(model, count, seed, truncation))
    return grid_image(images, scale=display_scale(model))


def num_sliders(model: GenModel) -> int:
    return min(NUM_SLIDERS, model.latent_dim)


def slider_start(model: GenModel, seed) -> tuple[list[float], Image.Image]:
    """The leading coordinates of a seed's latent code (clipped to the slider range) and its image."""
    z = latent_codes(model, 1, check_seed(seed))[0]
    values = [round(float(v), 2) for v in z[: num_sliders(model)].clamp(-SLIDER_LIMIT, SLIDER_LIMIT)]
    return values, slider_redraw(model, seed, values)


def slider_redraw(model: GenModel, seed, values) -> Image.Image:
    """The seed's latent code with its leading coordinates replaced by the slider values."""
    z = latent_codes(model, 1, check_seed(seed))
    values = [check_float(v, f"Slider z[{i}]", -SLIDER_LIMIT, SLIDER_LIMIT) for i, v in enumerate(values)]
    count = min(len(values), model.latent_dim)
    z[0, :count] = torch.tensor(values[:count])
    image = decode(model, z)
    return grid_image(image, padding=0, scale=2 * display_scale(model))


def _interpolation_outputs(model: GenModel, z_a, z_b, image_a, image_b, steps: int) -> tuple[Image.Image, str]:
    t = latent.interpolation_weights(steps)
    rows = torch.cat(
        [
            decode(model, latent.lerp(z_a, z_b, t)),
            decode(model, latent.slerp(z_a, z_b, t)),
            latent.cross_fade(image_a, image_b, t),
        ]
    )
    scale = display_scale(model)
    strip = labelled_rows(rows, ["lerp", "slerp", "pixels"], scale)
    by_step = rows.unflatten(0, (3, steps)).transpose(0, 1)  # (steps, 3, C, H, W)
    frames = [labelled_rows(frame, ["lerp", "slerp", "pixels"], scale) for frame in by_step]
    if strip.mode == "RGB":
        # One palette for every frame, taken from the strip (which holds them all): GIF's default
        # median-cut quantization per frame cost ~0.15 s a frame, and made colours flicker.
        palette = strip.quantize(colors=256, method=Image.Quantize.FASTOCTREE)
        frames = [frame.quantize(palette=palette, dither=Image.Dither.NONE) for frame in frames]
    return strip, GIFS.write(frames)


def interpolate_seeds(model: GenModel, seed_a, seed_b, steps) -> tuple[Image.Image, str]:
    """Seed A to seed B by lerp and slerp in latent space, and a pixel cross-fade of the ends."""
    seed_a, seed_b = check_seed(seed_a, "Seed A"), check_seed(seed_b, "Seed B")
    steps = check_int(steps, "Steps", MIN_STEPS, MAX_STEPS)
    z_a, z_b = latent_codes(model, 1, seed_a)[0], latent_codes(model, 1, seed_b)[0]
    ends = decode(model, torch.stack([z_a, z_b]))
    return _interpolation_outputs(model, z_a, z_b, ends[0], ends[1], steps)


def interpolate_images(model: GenModel, image_a, image_b, steps) -> tuple[Image.Image, str]:
    """Two uploaded images, encoded to their posterior means (a VAE) or inverted (a GAN, about
    1 s each: genhub.space.inversion); the cross-fade blends the inputs."""
    steps = check_int(steps, "Steps", MIN_STEPS, MAX_STEPS)
    x = torch.cat([image_to_model_input(model, image_a, "image A"), image_to_model_input(model, image_b, "image B")])
    if is_vae(model):
        with torch.no_grad():
            z = model.posterior_mean(x.to(model.device)).float().cpu()
    else:
        z = torch.stack([_inversion(model, image, max_seconds=1.0).z.float().cpu() for image in x])
    return _interpolation_outputs(model, z[0], z[1], x[0], x[1], steps)


def perturbation_grid(model: GenModel, seed, first_dim, rows) -> Image.Image:
    """Rows: latent dimensions first_dim.. ; columns: z_i + eps for eps in -5..4 (eps = 0 is the sample)."""
    seed = check_seed(seed)
    first_dim = check_int(first_dim, "First dimension", 0, model.latent_dim - 1)
    rows = check_int(rows, "Rows", 1, MAX_ROWS)
    dims = list(range(first_dim, min(first_dim + rows, model.latent_dim)))
    z = latent_codes(model, 1, seed)[0]
    images = decode(model, latent.perturbation_codes(z, dims))
    return grid_image(images, nrow=len(latent.PERTURBATION_OFFSETS), scale=display_scale(model))


def reconstruct(model: GenModel, image) -> Image.Image:
    """[what the model sees | its reconstruction], side by side: a VAE decodes its posterior mean,
    a GAN draws its inversion (genhub.space.inversion, about 2 s)."""
    x = image_to_model_input(model, image)
    if is_vae(model):
        with torch.no_grad():
            recon = model.decode(model.posterior_mean(x.to(model.device))).float().clamp(0, 1).cpu()
    else:
        recon = _inversion(model, x[0]).image[None]
    return grid_image(torch.cat([x, recon]), nrow=2, scale=2 * display_scale(model))


# -- discovered directions and inversion (genhub.space.directions, genhub.space.inversion) -------
DIRECTION_METHODS = ("sefa", "ganspace", "digit")  # digit: classifier-guided, for 28x28 digit models
MAX_CACHED_DIGIT_PATHS = 256
NUM_DIRECTIONS = 8
DIRECTION_LIMIT = 5.0
DIRECTION_STEPS = (-3, -2, -1, 0, 1, 2, 3)
_DIRECTIONS_LOCK = threading.Lock()


def model_directions(model: GenModel, method) -> torch.Tensor:
    """The model's top discovered directions by `method` ("sefa" or "ganspace"), computed once
    and kept on the model itself (so they go when the model goes)."""
    from genhub.space import directions

    if method not in DIRECTION_METHODS[:2]:
        raise AppInputError(f"Method must be one of {', '.join(DIRECTION_METHODS)}, got {method!r}.")
    with _DIRECTIONS_LOCK:
        cache = model.__dict__.setdefault("_space_directions", {})
        if method not in cache:
            try:
                found = (
                    directions.sefa(model, NUM_DIRECTIONS) if method == "sefa" else directions.ganspace(model, NUM_DIRECTIONS, samples=2000)
                )
            except ValueError as error:
                raise AppInputError(f"No {method} directions for {type(model).__name__}: {error}") from None
            cache[method] = found.to(model.device)
        return cache[method]


DIGIT_STEP = 0.25  # the classifier-guided path's step in z; a slider value picks the nearest point


def digit_path(model: GenModel, seed: int, digit) -> torch.Tensor:
    """The classifier-guided path through seed's code ("make it more like a 3"): steps along
    the gradient of the evaluator's log-probability of `digit` with respect to z, re-taken at
    every point, for amounts -5..5 (genhub.space.directions.classifier_path); computed once per
    (seed, digit) and kept on the model, so a slider redraw is one decode."""
    from genhub.space.directions import classifier_path

    if not is_digit_model(model):
        raise AppInputError(f"Classifier-guided directions need a 28x28 digit model; {type(model).__name__} draws {model.image_shape}.")
    if not can_differentiate(model):
        raise AppInputError(f"{type(model).__name__} draws with a PixelCNN: its images cannot be differentiated with respect to z.")
    digit = check_int(digit, "Digit", 0, 9)
    with _DIRECTIONS_LOCK:
        cache = model.__dict__.setdefault("_space_digit_paths", {})
        if (seed, digit) in cache:
            return cache[(seed, digit)]
    z = latent_codes(model, 1, seed)[0]
    with torch.enable_grad():
        found = classifier_path(model, digit_evaluator(model), z, digit, DIRECTION_LIMIT, DIGIT_STEP).to(model.device)
    with _DIRECTIONS_LOCK:
        if len(cache) >= MAX_CACHED_DIGIT_PATHS:
            cache.pop(next(iter(cache)))
        cache[(seed, digit)] = found
    return found


def direction_redraw(model: GenModel, seed, method, index, amount, digit=3) -> Image.Image:
    """One sample moved by `amount` along discovered direction `index` (1 = strongest), or, with
    method "digit", along the classifier-guided direction towards `digit`."""
    seed = check_seed(seed)
    amount = check_float(amount, "Amount", -DIRECTION_LIMIT, DIRECTION_LIMIT)
    if method == "digit":
        z = _on_digit_path(digit_path(model, seed, digit), [amount])
    else:
        found = model_directions(model, method)
        z = latent_codes(model, 1, seed) + amount * found[check_int(index, "Direction", 1, len(found)) - 1]
    return grid_image(decode(model, z), nrow=1, scale=2 * display_scale(model))


def _on_digit_path(path: torch.Tensor, amounts) -> torch.Tensor:
    middle = len(path) // 2
    return path[[min(max(middle + round(a / DIGIT_STEP), 0), len(path) - 1) for a in amounts]]


def direction_grid(model: GenModel, seed, method, count) -> Image.Image:
    """Rows: the top `count` directions (with method "digit": one row per digit 0..9, towards
    it); columns: the sample moved by -3..3 along each."""
    from genhub.space.directions import move

    seed = check_seed(seed)
    z = latent_codes(model, 1, seed)[0]
    if method == "digit":
        codes = torch.cat([_on_digit_path(digit_path(model, seed, digit), DIRECTION_STEPS) for digit in range(10)])
        labels = [f"more {digit}" for digit in range(10)]
    else:
        found = model_directions(model, method)
        count = check_int(count, "Directions", 1, len(found))
        codes = torch.cat([move(z, direction, DIRECTION_STEPS) for direction in found[:count]])
        labels = [f"{method} {i + 1}" for i in range(count)]
    return labelled_rows(decode(model, codes), labels, display_scale(model))


def is_digit_model(model: GenModel) -> bool:
    return is_digit_shape(model.image_shape)


def can_differentiate(model: GenModel) -> bool:
    """Whether images can be differentiated with respect to z (inversion, classifier directions):
    not through a PixelCNN decoder, which draws its pixels one by one."""
    return not getattr(model, "pixelcnn_layers", 0)


_EVALUATORS: dict = {}


def digit_evaluator(model: GenModel):
    """The bundled MNIST evaluator CNN on the model's device, loaded once."""
    from genhub.models.classifier import load_evaluator

    with _DIRECTIONS_LOCK:
        key = str(model.device)
        if key not in _EVALUATORS:
            _EVALUATORS[key] = load_evaluator("mnist", device=model.device).requires_grad_(False)
        return _EVALUATORS[key]


def _inversion(model: GenModel, x: torch.Tensor, max_seconds: float = 2.0):
    from genhub.space.inversion import invert

    if not can_differentiate(model):
        raise AppInputError(f"{type(model).__name__} draws with a PixelCNN, pixel by pixel: it cannot be inverted by gradients.")
    classifier = digit_evaluator(model) if is_digit_model(model) else None
    return invert(model, x, starts=4, steps=150, max_seconds=max_seconds, classifier=classifier)


def invert_image(model: GenModel, image) -> tuple[Image.Image, str]:
    """[the image as the model sees it | the model's closest drawing], and the loss: GAN
    inversion (genhub.space.inversion), bounded to about 2 s, evaluator features for digits."""
    x = image_to_model_input(model, image)
    result = _inversion(model, x[0])
    pair = grid_image(torch.stack([x[0], result.image]), nrow=2, scale=2 * display_scale(model))
    message = (f"Projected with {result.steps} steps from 4 starts in {result.seconds:.1f} s: "
               f"pixel MSE {result.pixel_error:.4f}, loss {result.loss:.4f}.")  # fmt: skip
    return pair, message


def compare(registry: ModelRegistry, key_a, key_b, seed, count) -> tuple[Image.Image, Image.Image, list[list[str]]]:
    """Two models side by side: samples for the same seed and count, and the metrics their
    cards already carry (genhub.space.compare), as rows [metric, A, B]."""
    from genhub.space.compare import card_metrics, metrics_table

    model_a, model_b = registry.get(key_a), registry.get(key_b)
    seed, count = check_seed(seed), check_int(count, "Number of images", 1, MAX_SAMPLES)
    grid_a, grid_b = sample_grid(model_a, seed, count), sample_grid(model_b, seed, count)
    metrics_a = card_metrics(registry.folders[key_a]) if key_a in registry.folders else {}
    metrics_b = card_metrics(registry.folders[key_b]) if key_b in registry.folders else {}
    rows = metrics_table(metrics_a, metrics_b) or [["(neither card records metrics)", "-", "-"]]
    return grid_a, grid_b, rows


# -- nearest training neighbours (genhub.space.neighbours) --------------------------------------
NUM_NEIGHBOURS = 8
_NEIGHBOUR_LOCK = threading.Lock()
_TRAINING_IMAGES: dict = {}  # (dataset, shape) -> uint8 images, or None when the dataset cannot be loaded here
_INDEX_FEATURES: dict = {}  # image shape -> the index's feature function


def model_index(registry: ModelRegistry, key: str):
    """The neighbour index shipped for the model's (dataset, image shape) in weights/neighbours/,
    or None (a Hub model, a dataset without one); found once and kept on the model."""
    from genhub.space import neighbours

    model = registry.get(key)
    with _NEIGHBOUR_LOCK:
        if "_space_index" not in model.__dict__:
            folder = registry.folders.get(key)
            dataset = neighbours.model_dataset(folder) if folder is not None else None
            path = Path(registry.weights_dir) / neighbours.INDEX_FOLDER / neighbours.index_name(dataset or "", model.image_shape)
            model.__dict__["_space_index"] = neighbours.load_index(path) if dataset and path.is_file() else None
        return model.__dict__["_space_index"]


def _index_features(image_shape):
    from genhub.space.neighbours import feature_function

    with _NEIGHBOUR_LOCK:
        key = tuple(image_shape)
        if key not in _INDEX_FEATURES:
            _INDEX_FEATURES[key] = feature_function(key)
        return _INDEX_FEATURES[key]


def _training_images(index):
    """The indexed split's images when the dataset can be loaded here (not on a Space), else None."""
    from genhub.space.neighbours import training_split

    key = (index.dataset, index.image_shape)
    with _NEIGHBOUR_LOCK:
        if key not in _TRAINING_IMAGES:
            try:
                _TRAINING_IMAGES[key] = training_split(index.dataset, index.image_shape)[0]
            except Exception:  # noqa: BLE001 - no data here (a Space, no network): distances only
                _TRAINING_IMAGES[key] = None
        return _TRAINING_IMAGES[key]


def neighbours(registry: ModelRegistry, key: str, seed, count=NUM_NEIGHBOURS) -> tuple[Image.Image, list[list], str]:
    """A sample and its nearest training images in the model's index: [sample | neighbours] (the
    neighbours only where the dataset loads here), rows [rank, image, distance, distance over
    the held-out median], and a sentence on what the distance means."""
    from genhub.images import to_unit_range

    model = registry.get(key)
    seed, count = check_seed(seed), check_int(count, "Neighbours", 1, 16)
    index = model_index(registry, key)
    if index is None:
        label = registry.labels.get(key, key)
        raise AppInputError(f"No neighbour index ships with {label}: the memorisation view covers the bundled models.")
    sample = decode(model, latent_codes(model, 1, seed))
    distances, positions = index.nearest(_index_features(model.image_shape)(sample)[0], count)
    reference = float(index.reference.median())
    rows = [[rank + 1, int(position), round(float(d), 3), round(float(d) / reference, 2)]
            for rank, (d, position) in enumerate(zip(distances, positions))]  # fmt: skip
    train = _training_images(index)
    shown = [sample[0]] + ([to_unit_range(train[positions]).float()] if train is not None else [])
    picture = grid_image(torch.cat([image.reshape(-1, *model.image_shape) for image in shown]), nrow=count + 1, scale=display_scale(model))
    ratio = float(distances[0]) / reference
    message = (
        f"Nearest of {len(index.features):,} indexed training images ({index.dataset}, {index.split}; {index.kind}): distance "
        f"{float(distances[0]):.3f}, **{ratio:.2f}x** the median distance of a held-out real image to the index "
        f"({reference:.3f}). Near 1 or above: no closer than new real images are; well below 1: a possible copy."
        + ("" if train is not None else " The training images are not shipped with the Space, so only distances are shown.")
    )
    return picture, rows, message


def applicable_tabs(registry: ModelRegistry, key: str) -> dict[str, bool]:
    """Which of the Space's model-dependent tabs apply to the model: Directions needs a first
    layer linear in z, Invert a decoder that can be differentiated, Neighbours a shipped index."""
    from genhub.space.directions import first_linear

    model = registry.get(key)
    try:
        first_linear(model)
        linear = True
    except ValueError:
        linear = False
    return {"directions": linear, "invert": can_differentiate(model), "neighbours": model_index(registry, key) is not None}
