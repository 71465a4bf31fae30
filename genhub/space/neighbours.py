"""Nearest training neighbours of a sample: the Space's memorisation view.

The Space ships no dataset. Beside the bundled weights, `weights/neighbours/` holds one small
index per (dataset, image shape): the features of up to 5,000 training images (evenly spaced
over the part of the split the models trained on), their positions in that split, and, as the
reference, the distance from each of up to 1,000 held-out real images (never trained on) to
its nearest indexed image. A sample whose nearest training image is much closer than a
held-out image's would be a copy; the ratio

    d(sample, index) / median_h d(h, index)

says how close "close" is (genhub.evaluation.metrics.memorisation computes the same over
thousands of samples for the cards).

Features, as genhub.evaluation uses them:
- 28x28 grey digits: the evaluator CNN's 128-d features;
- anything else: the pixels in [0, 1] through a fixed Gaussian random projection to 128
  dimensions (seed 0), which keeps Euclidean distances to within a few percent
  (Johnson-Lindenstrauss) and holds far too few numbers to redraw an image from.

Build the indexes of every bundled model with `python -m genhub.space.neighbours` (it reads
the shared data); the Space then finds neighbours without it, and shows the neighbour images
only where the dataset itself can be loaded.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch

from genhub.models.classifier import is_digit_shape

INDEX_FOLDER = "neighbours"
INDEX_SIZE = 5000
REFERENCE_SIZE = 1000
PROJECTION_DIM = 128
HOLDOUT = 0.1  # the held-out fraction of datasets without a test split, as their recipes use (seed 0)


def index_name(dataset: str, image_shape) -> str:
    return f"{dataset}-{'x'.join(str(s) for s in image_shape)}.safetensors"


def feature_function(image_shape, device="cpu"):
    """Images in [0, 1] (N, C, H, W) -> features (N, 128), the index's kind for this shape."""
    if is_digit_shape(image_shape):
        from genhub.models.classifier import load_evaluator

        classifier = load_evaluator("mnist", device=device)
        return lambda images: classifier.features(images.clamp(0, 1).to(classifier.device)).float().cpu()
    pixels = int(torch.tensor(image_shape).prod())
    projection = torch.randn(pixels, PROJECTION_DIM, generator=torch.Generator().manual_seed(0)) / PROJECTION_DIM**0.5
    return lambda images: images.clamp(0, 1).flatten(1).float().cpu() @ projection


@dataclass
class Index:
    dataset: str
    split: str
    image_shape: tuple[int, ...]
    features: torch.Tensor  # (N, 128) float32
    positions: torch.Tensor  # (N,) int64: each indexed image's position in `split` (after the hold-out)
    reference: torch.Tensor  # (M,) float32: held-out images' distances to their nearest indexed image
    total: int  # images in the trained-on split

    @property
    def kind(self) -> str:
        return "evaluator CNN features" if is_digit_shape(self.image_shape) else "pixels, random projection to 128 dimensions"

    def nearest(self, query_features: torch.Tensor, k: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
        """The k nearest indexed images of one query: (distances, positions in the split)."""
        # The exact difference form: cdist's matrix-product shortcut loses ~1e-2 to cancellation near 0.
        distances = torch.cdist(query_features.reshape(1, -1).float(), self.features, compute_mode="donot_use_mm_for_euclid_dist")[0]
        values, order = distances.topk(min(k, len(distances)), largest=False)
        return values, self.positions[order]

    def save(self, path) -> Path:
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        metadata = {"dataset": self.dataset, "split": self.split, "image_shape": ",".join(map(str, self.image_shape)),
                    "total": str(self.total), "kind": self.kind}  # fmt: skip
        tensors = {"features": self.features.half(), "positions": self.positions, "reference": self.reference}
        save_file(tensors, str(path), metadata=metadata)
        return path


def load_index(path) -> Index:
    """An index written by `Index.save`; errors name the file."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in ("features", "positions", "reference")}
        shape = tuple(int(s) for s in meta["image_shape"].split(","))
        return Index(meta["dataset"], meta["split"], shape, tensors["features"].float(), tensors["positions"].long(),
                     tensors["reference"].float(), int(meta["total"]))  # fmt: skip
    except Exception as error:  # a truncated file, a missing tensor or metadata field: all the same to a user
        raise ValueError(f"{path} is not a genhub neighbour index ({type(error).__name__}: {error})") from error


def training_split(dataset: str, image_shape):
    """(trained-on images, held-out images, split name) as uint8, the way the bundled recipes
    split the data: the test (or validation) split as held-out where there is one; else 10% held
    out (seed 0), as the recipes' `holdout`."""
    from genhub.data import DatasetError, holdout_split, load_images

    options = dict(image_size=image_shape[1], channels=image_shape[0])
    train = load_images(dataset, split="train", **options).images
    for split in ("test", "validation"):
        try:
            return train, load_images(dataset, split=split, **options).images, "train"
        except DatasetError:
            continue
    trained, held_out = holdout_split(train, HOLDOUT)
    return trained, held_out, f"train without its held-out {HOLDOUT:g}"


def build_index(dataset: str, image_shape, size: int = INDEX_SIZE, reference_size: int = REFERENCE_SIZE) -> Index:
    from genhub.images import to_unit_range

    train, held_out, split = training_split(dataset, image_shape)
    positions = torch.linspace(0, len(train) - 1, min(size, len(train))).round().long().unique()
    features = feature_function(image_shape)
    bank = features(to_unit_range(train[positions]))
    reference_rows = torch.linspace(0, len(held_out) - 1, min(reference_size, len(held_out))).round().long().unique()
    queries = features(to_unit_range(held_out[reference_rows]))
    reference = torch.cdist(queries, bank, compute_mode="donot_use_mm_for_euclid_dist").min(dim=1).values
    return Index(dataset, split, tuple(image_shape), bank, positions, reference, len(train))


def model_dataset(folder) -> str | None:
    """The genhub dataset a saved model's card names (its `datasets:` front matter)."""
    from genhub.data import dataset_key

    card = Path(folder) / "README.md"
    if not card.is_file():
        return None
    from huggingface_hub import ModelCard

    datasets = ModelCard.load(card).data.datasets or []
    return next((key for key in map(dataset_key, datasets) if key), None)


def main(argv=None) -> None:
    from genhub.models.hub import load_model
    from genhub.space.app_logic import WEIGHTS_DIR, bundled_model_folders

    parser = argparse.ArgumentParser(description="Build the neighbour indexes of the bundled models (weights/neighbours/).")
    parser.add_argument("--weights", type=Path, default=Path(WEIGHTS_DIR))
    parser.add_argument("--size", type=int, default=INDEX_SIZE)
    args = parser.parse_args(argv)
    built = set()
    for folder in bundled_model_folders(args.weights):
        dataset, shape = model_dataset(folder), tuple(load_model(folder).image_shape)
        if dataset is None or (dataset, shape) in built:
            continue
        index = build_index(dataset, shape, args.size)
        path = index.save(args.weights / INDEX_FOLDER / index_name(dataset, shape))
        built.add((dataset, shape))
        print(f"{path}: {len(index.features)} of {index.total} {dataset} images, {index.kind}; "
              f"held-out median distance {index.reference.median():.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
