"""The data layer: a dataset name, Hub id or local path in, a uint8 image tensor out.

    >>> data = load_images("mnist", split="train")          # ylecun/mnist on the Hub
    >>> data = load_images("../shared/data/mnist")          # the same, from a local folder
    >>> data.images.shape, data.images.dtype
    (torch.Size([60000, 1, 28, 28]), torch.uint8)

Images stay uint8 (N, C, H, W) until they reach the training device, where the trainer
scales them; that keeps 60k MNIST digits at 47 MB and lets a whole dataset live on a GPU.

Offline, set GENHUB_DATA_DIR to a folder holding the datasets in Hub layout (one
sub-folder per dataset, e.g. ../shared/data/mnist) and the short names resolve there.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError


class DatasetError(ValueError):
    """A dataset name, id or path that cannot be turned into images."""


@dataclass(frozen=True)
class DatasetSpec:
    hub_id: str
    local_name: str  # folder name under GENHUB_DATA_DIR
    description: str
    config: str | None = None
    image_size: int | None = None  # native size, used when the caller does not ask for one
    channels: int | None = None
    binarize: bool = False
    note: str | None = None  # what a model card says of the data's origin and terms


DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec("ylecun/mnist", "mnist", "MNIST digits, 28x28 grey, labelled", image_size=28, channels=1),
    "binarized-mnist": DatasetSpec(
        "binarized_mnist",
        "binarized_mnist",
        "statically binarized MNIST (Larochelle & Murray 2011), 28x28, pixels 0/255",
        image_size=28,
        channels=1,
        binarize=True,
    ),
    "svhn": DatasetSpec(
        "ufldl-stanford/svhn",
        "svhn_sample",
        "SVHN cropped digits, 32x32 RGB",
        config="cropped_digits",
        image_size=32,
        channels=3,
        note=(
            "Offline, genhub's `svhn` is the small mirror of the first 1,083 crops of the official cropped-digits train "
            "split (unlabelled); with network access the same name reads all 73,257 crops from the Hub."
        ),
    ),
    "anime-faces": DatasetSpec("huggan/anime-faces", "anime_faces", "anime face illustrations, RGB", image_size=64, channels=3),
    "comic-faces": DatasetSpec(
        "huggan/cartoon-faces",
        "comic_faces",
        "cartoon (Bitmoji avatar) faces, 64x64 RGB; offline: the 3,648 faces of the public Bitmoji Faces set, no stated licence",
        image_size=64,
        channels=3,
        note=(
            "Offline, genhub's `comic-faces` is a local set of 3,648 real cartoon faces at 64x64: the Bitmoji avatar images "
            'of the public "Bitmoji Faces Gender Recognition" competition, downscaled from 384x384, duplicates removed. '
            "That set was re-hosted publicly without a stated licence: these weights were trained on it, the images "
            "themselves are not distributed with genhub, and the avatars' rights stay with their owners (Bitmoji/Snap)."
        ),
    ),
}


def dataset_key(source) -> str | None:
    """The genhub name of a dataset given by name, Hub id, or a local mirror folder of the shared
    layout (`.../binarized_mnist` is "binarized-mnist"); None for any other data."""
    text = str(source).lower()
    if text in DATASETS:
        return text
    name = Path(str(source)).name.lower()
    return next((key for key, spec in DATASETS.items() if spec.local_name == name or spec.hub_id.lower() == text), None)


def holdout_split(images: torch.Tensor, fraction: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, held_out): a fixed random `fraction` of `images` kept apart, the same for a seed,
    for data with no test split of its own (the small SVHN and comic-face sets). Training and
    evaluation call it alike, so the held-out images are never trained on."""
    if not 0 < fraction < 1:
        raise ValueError(f"the held-out fraction must be in (0, 1), got {fraction}")
    count = max(1, round(len(images) * fraction))
    if count >= len(images):
        raise ValueError(f"holding out {fraction:g} of {len(images)} images leaves none to train on")
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    return images[order[count:].sort().values], images[order[:count].sort().values]


HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")  # owner/name
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
DATA_SUFFIXES = {".parquet", ".arrow", ".csv", ".json", ".jsonl"} | IMAGE_SUFFIXES


@dataclass
class ImageData:
    """Images as uint8 (N, C, H, W), labels as int64 (N,) when the source has them."""

    images: torch.Tensor
    labels: torch.Tensor | None
    source: str
    split: str

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])


def accepted_sources() -> str:
    names = "\n".join(f"  {name:<16} {spec.description} (Hub: {spec.hub_id})" for name, spec in DATASETS.items())
    return (
        f"Accepted dataset names:\n{names}\n"
        "or a Hub dataset id (owner/name), or a local folder of parquet files or images "
        "(set GENHUB_DATA_DIR to a folder holding the named datasets to work offline)."
    )


def load_images(
    source: str | os.PathLike,
    split: str = "train",
    image_size: int | None = None,
    channels: int | None = None,
    binarize: bool | None = None,
    limit: int | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> ImageData:
    """Load a dataset as uint8 image tensors ready for training.

    source: a short name (see `DATASETS`), a Hub id, or a local folder or file.
    image_size: square side to resize to (center-cropping non-square images first);
        the dataset's native size when None.
    channels: 1 (grey) or 3 (RGB); the dataset's own when None. RGBA is composited on white.
    binarize: threshold at 128 to {0, 255}; on by default for binarized datasets.
    limit: keep only the first `limit` examples (for quick runs and tests).
    cache_dir: decoded tensors are cached here (default ~/.cache/genhub) keyed by source,
        split and options, so the second load of a dataset skips image decoding.
    """
    spec = DATASETS.get(str(source).lower())
    image_size = image_size or (spec.image_size if spec else None)
    channels = channels or (spec.channels if spec else None)
    binarize = (spec.binarize if spec else False) if binarize is None else binarize
    if channels not in (None, 1, 3):
        raise DatasetError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
    if image_size is not None and image_size < 4:
        raise DatasetError(f"image_size must be at least 4 pixels, got {image_size}")

    location, config = _resolve(source, spec)
    cache = _cache_path(cache_dir, location, config, split, image_size, channels, binarize, limit)
    if cache is not None and cache.exists():
        cached = _read_cache(cache)
        if cached is not None:
            return ImageData(cached["images"], cached.get("labels"), str(source), split)

    dataset = _load_split(location, config, split, source)
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    image_column = _image_column(dataset, source)
    images = _decode_column(dataset, image_column, image_size, channels, source)
    if binarize:
        images = torch.where(images >= 128, 255, 0).to(torch.uint8)
    labels = None
    if "label" in dataset.column_names:
        values = dataset["label"]
        if all(isinstance(value, (int, np.integer)) for value in values):  # an unlabelled folder gives None labels
            labels = torch.as_tensor(np.asarray(values, dtype=np.int64))

    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        # A name of its own per process: processes that load the same data at once (benchmark
        # workers) each write their own file, and replace() is atomic, so a crashed or
        # concurrent save never leaves a half-written cache.
        temporary = cache.with_name(f"{cache.stem}.{os.getpid()}.tmp")
        torch.save({"images": images, "labels": labels}, temporary)
        temporary.replace(cache)
    return ImageData(images, labels, str(source), split)


def _read_cache(path: Path) -> dict | None:
    """A cached decode, or None (with a warning naming the file) when it is corrupt: the data
    is then decoded again and the entry rewritten, instead of failing until it is deleted."""
    import warnings

    try:
        cached = torch.load(path, weights_only=True)
        if isinstance(cached, dict) and isinstance(cached.get("images"), torch.Tensor) and cached["images"].dtype == torch.uint8:
            return cached
        problem = "it does not hold uint8 images"
    except Exception as error:  # torch raises zip, pickle, EOF and runtime errors for a damaged file
        problem = f"{type(error).__name__}: {error}"
    warnings.warn(f"ignoring the corrupt data cache entry {path} ({problem}); decoding the images again", stacklevel=3)
    return None


def _resolve(source, spec: DatasetSpec | None) -> tuple[str, str | None]:
    """Where to load from: a local path, or a Hub id with its config."""
    path = Path(os.path.expanduser(str(source)))
    if path.exists():
        return str(path.resolve()), None
    if spec is not None:
        data_dir = os.environ.get("GENHUB_DATA_DIR")
        if data_dir and (Path(data_dir) / spec.local_name).is_dir():
            return str((Path(data_dir) / spec.local_name).resolve()), None
        return spec.hub_id, spec.config
    text = str(source)
    if not HUB_ID.fullmatch(text):
        raise DatasetError(f"Unknown dataset {text!r}: no such name and no such local path.\n{accepted_sources()}")
    return text, None


def _load_split(location: str, config: str | None, split: str, source):
    import datasets

    path = Path(location)
    arguments: dict = {"path": location, "name": config}
    if path.is_dir() and not any(p.suffix.lower() in DATA_SUFFIXES for p in path.rglob("*")):
        raise DatasetError(f"{source!r} holds no parquet, arrow, csv, json or image files.\n{accepted_sources()}")
    if path.is_file():  # one file: pick the builder from its suffix
        suffix = path.suffix.lower()
        if suffix not in DATA_SUFFIXES:
            raise DatasetError(f"{source!r} is not a dataset file (expected one of {sorted(DATA_SUFFIXES)}).")
        builder = "imagefolder" if suffix in IMAGE_SUFFIXES else {".jsonl": "json"}.get(suffix, suffix[1:])
        arguments = {"path": builder, "data_files": {split: str(path)}}
    try:
        dataset_dict = datasets.load_dataset(**arguments)
    except Exception as error:  # datasets raises many types: missing repo, offline, bad files
        hint = (
            ""
            if path.exists()
            else (
                "\nThe Hugging Face Hub could not be reached or has no such dataset. Offline, point "
                "GENHUB_DATA_DIR at a folder of local datasets or pass a local path."
            )
        )
        raise DatasetError(f"Could not load dataset {source!r} ({location}): {type(error).__name__}: {error}{hint}") from error
    if split not in dataset_dict:
        raise DatasetError(f"Dataset {source!r} has no split {split!r}; it has {sorted(dataset_dict)}.")
    return dataset_dict[split]


def _image_column(dataset, source) -> str:
    import datasets

    for name, feature in dataset.features.items():
        if isinstance(feature, datasets.Image):
            return name
    for name in ("image", "img", "images"):
        if name in dataset.column_names:
            return name
    raise DatasetError(f"Dataset {source!r} has no image column (columns: {dataset.column_names}).")


def _decode_column(dataset, column: str, image_size: int | None, channels: int | None, source) -> torch.Tensor:
    import datasets

    if isinstance(dataset.features[column], datasets.Image):
        dataset = dataset.cast_column(column, datasets.Image(decode=False))
    raw = dataset[column]
    if not raw:
        raise DatasetError(f"Dataset {source!r} is empty.")
    first = _open(raw[0], source, 0)
    channels = channels or (1 if first.mode in GREY_MODES else 3)
    image_size = image_size or _square_side(first)
    out = np.empty((len(raw), image_size, image_size, channels), dtype=np.uint8)
    for index, item in enumerate(raw):
        image = first if index == 0 else _open(item, source, index)
        try:
            prepared = prepare_image(image, image_size, channels)
        except (OSError, ValueError) as error:
            raise DatasetError(f"Dataset {source!r}: example {index} ({_name(item)}) cannot be converted: {error}") from error
        out[index] = np.asarray(prepared).reshape(image_size, image_size, channels)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def _name(item) -> str:
    """The file an example came from, for messages."""
    if isinstance(item, dict):
        return str(item.get("path") or "embedded bytes")
    return str(getattr(item, "filename", "") or item if not isinstance(item, Image.Image) else "in-memory image")


def _open(item, source, index: int) -> Image.Image:
    """Open and fully decode one example: a truncated file or a decompression bomb fails here,
    with the file and the example number, not later inside a conversion."""
    try:
        if isinstance(item, Image.Image):
            image = item
        elif isinstance(item, dict):
            image = Image.open(io.BytesIO(item["bytes"])) if item.get("bytes") else Image.open(item["path"])
        else:
            image = Image.open(item)
        image.load()
        return image
    except Image.DecompressionBombError as error:
        raise DatasetError(f"Dataset {source!r}: example {index} ({_name(item)}) is too large to decode safely ({error}).") from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DatasetError(f"Dataset {source!r}: example {index} ({_name(item)}) is not a readable image ({error}).") from error


def _square_side(image: Image.Image) -> int:
    return min(image.size)


GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")  # more than 8 bits a pixel


def to_8bit(array: np.ndarray) -> np.ndarray:
    """Grey levels of a 16-bit, 32-bit or float image -> uint8 by their type's range, not by the
    image's own peak (a dark image stays dark): 16-bit (0..65535) / 257; 32-bit integers holding
    8- or 16-bit data alike; floats in [0, 1] x 255, or in [0, 255] as they are."""
    values = array.astype(np.float64)
    if np.issubdtype(array.dtype, np.floating):
        scale = 255.0 if np.nanmax(values, initial=0) <= 1.0 else 1.0
    elif array.dtype.itemsize == 2 or np.max(values, initial=0) > 255:
        scale = 255.0 / 65535.0
    else:
        scale = 1.0
    return np.clip(np.nan_to_num(values * scale), 0, 255).round().astype(np.uint8)


def prepare_image(image: Image.Image, size: int, channels: int) -> Image.Image:
    """Any PIL image -> `size`x`size`, grey (channels=1) or RGB (channels=3).

    Transparent images are composited on white; non-square ones are center-cropped to a
    square first so faces and digits keep their aspect ratio.
    """
    if image.mode in ("RGBA", "LA", "P", "PA"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    if image.mode in WIDE_MODES:
        image = Image.fromarray(to_8bit(np.asarray(image)))
    if image.mode not in ("1", "L", "RGB"):
        image = image.convert("RGB")  # CMYK, YCbCr, ...; modes PIL cannot convert raise ValueError
    image = image.convert("L" if channels == 1 else "RGB")
    width, height = image.size
    if width != height:
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        image = image.crop((left, top, left + side, top + side))
    if image.size != (size, size):
        image = image.resize((size, size), Image.BICUBIC if size > min(width, height) else Image.LANCZOS)
    return image


def _cache_path(cache_dir, location, config, split, image_size, channels, binarize, limit) -> Path | None:
    if os.environ.get("GENHUB_NO_CACHE"):
        return None
    stamp = ""
    path = Path(location)
    if path.exists():  # a local source: key on its files' sizes and times so edits invalidate the cache
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        stamp = "|".join(f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)
    key = repr((location, config, split, image_size, channels, binarize, limit, stamp))
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    root = Path(cache_dir or os.environ.get("GENHUB_CACHE", Path.home() / ".cache" / "genhub"))
    return root / "images" / f"{digest}.pt"
