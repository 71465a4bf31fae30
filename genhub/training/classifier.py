"""Training the evaluator CNN (genhub.models.classifier): one epoch of jittered digits at a time."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from genhub.images import to_unit_range
from genhub.models.classifier import DigitClassifier, random_jitter


def train_steps(
    model: DigitClassifier,
    optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    generator: torch.Generator,
    scheduler=None,
) -> float:
    """One pass over (images, labels) in a random order; returns the mean loss."""
    model.train()
    order = torch.randperm(len(images), generator=generator)
    total, count = 0.0, 0
    for start in range(0, len(images), batch_size):
        index = order[start : start + batch_size]
        x = random_jitter(to_unit_range(images[index].to(model.device)), generator)
        loss = F.cross_entropy(model(x), labels[index].to(model.device), label_smoothing=0.05)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        total += loss.item() * len(index)
        count += len(index)
    return total / count


@torch.no_grad()
def accuracy(model: DigitClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    predictions = model.predict(to_unit_range(images.to(model.device)))
    return (predictions.cpu() == labels).float().mean().item()
