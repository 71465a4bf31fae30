"""DigitClassifier: the small CNN that judges generated digits, as a Hub model.

Offline there are no Inception weights, so genhub's sample metrics (Fréchet distance, KID,
precision/recall, the class histogram) use this network instead: trained on MNIST train,
its 128-d penultimate layer gives the features and its logits the digit classes.

    >>> classifier = load_evaluator("mnist")           # the bundled weights/evaluators/mnist-cnn
    >>> classifier.predict(images)                      # images (N, 1, 28, 28) in [0, 1]
    >>> classifier.features(images)                     # (N, 128)

It is not a GenModel (it does not generate), but it shares the Hub plumbing (HubModel):
safetensors + config.json + a card rendered from `model_cards/classifier.md`.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from genhub.assets import asset_dir
from genhub.models.hub import HubModel, ModelLoadError
from genhub.runtime import eval_mode

EVALUATORS = {"mnist": "mnist-cnn"}  # dataset family -> bundled folder under weights/evaluators


def is_digit_shape(image_shape) -> bool:
    """Whether images of this (C, H, W) are what the digit evaluator reads as they are: 28x28 grey."""
    return tuple(image_shape) == (1, 28, 28)


class DigitClassifier(HubModel, tags=["image-classification", "evaluation"], pipeline_tag="image-classification"):
    """Three conv stages (16, 32, 64 channels) with max pooling down to 3x3, a 128-d feature layer.

    Inputs are images in [0, 1] of exactly `image_shape`; anything else is refused with a
    clear message, because features of mis-sized images would silently be meaningless.
    """

    card_family = "classifier"

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (1, 28, 28),
        num_classes: int = 10,
        widths: tuple[int, ...] = (16, 32, 64),
        feature_dim: int = 128,
    ):
        super().__init__()
        self.image_shape = tuple(int(s) for s in image_shape)
        self.num_classes = num_classes
        layers: list[nn.Module] = []
        fan_in = self.image_shape[0]
        for index, width in enumerate(widths):
            layers += [nn.Conv2d(fan_in, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
            layers.append(nn.MaxPool2d(2) if index < len(widths) - 1 else nn.AdaptiveMaxPool2d(3))
            fan_in = width
        layers += [nn.Flatten(), nn.Linear(fan_in * 9, feature_dim), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Linear(feature_dim, num_classes)

    def check_images(self, images: torch.Tensor) -> torch.Tensor:
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or tuple(images.shape[1:]) != self.image_shape:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(
                f"{type(self).__name__} expects images of shape (N, {', '.join(map(str, self.image_shape))}) in [0, 1], got {shape}"
            )
        if not images.is_floating_point():
            raise ValueError(f"expected float images in [0, 1], got dtype {images.dtype} (divide uint8 images by 255)")
        return images

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] -> class logits (N, num_classes)."""
        return self.head(self.dropout(self.body(self.check_images(images) * 2 - 1)))

    @torch.no_grad()
    def features(self, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """The 128-d penultimate activations, in eval mode, computed `batch_size` at a time."""
        return self._batched(self.body, images, batch_size, rescale=True)

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        return self._batched(lambda x: self.head(self.body(x)).softmax(-1), images, batch_size, rescale=True)

    def predict(self, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        return self.probabilities(images, batch_size).argmax(-1)

    def _batched(self, function, images: torch.Tensor, batch_size: int, rescale: bool) -> torch.Tensor:
        self.check_images(images)
        with eval_mode(self):
            return torch.cat(
                [function(batch.to(self.device) * 2 - 1 if rescale else batch.to(self.device)) for batch in images.split(batch_size)]
            )


def load_evaluator(name: str = "mnist", device: torch.device | str | None = None) -> DigitClassifier:
    """The bundled evaluator for a dataset family ("mnist"), a local folder, or a Hub id, in eval mode."""
    source = asset_dir("evaluators") / EVALUATORS[name] if name in EVALUATORS else name
    if name in EVALUATORS and not Path(source).is_dir():
        raise ModelLoadError(f"the bundled evaluator {source} is missing; train it with `python train/classifier.py`")
    classifier = DigitClassifier.from_pretrained(str(source))
    if device is not None:
        classifier.to(device)
    return classifier.eval()


def random_jitter(
    images: torch.Tensor, generator: torch.Generator | None = None, degrees: float = 10.0, shift: float = 0.1, scale: float = 0.1
) -> torch.Tensor:
    """Small random rotations, shifts and scalings: the augmentation that makes the
    classifier robust to slightly off-centre generated digits."""
    n = len(images)
    uniform = lambda: torch.rand(n, generator=generator).to(images.device) * 2 - 1  # noqa: E731
    angle = uniform() * degrees * torch.pi / 180
    factor = 1 + uniform() * scale
    cos, sin = torch.cos(angle) / factor, torch.sin(angle) / factor
    theta = torch.stack([torch.stack([cos, -sin, uniform() * shift * 2], -1), torch.stack([sin, cos, uniform() * shift * 2], -1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, align_corners=False, padding_mode="zeros")
