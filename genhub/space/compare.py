"""Two models side by side: the same seeds, the same grid size, and the metrics their cards
already carry (nothing is recomputed)."""

from __future__ import annotations

from pathlib import Path

from genhub.models.hub import GenModel


def card_metrics(folder) -> dict[str, str]:
    """The metric table of a saved model's card (README.md, "## Evaluation"): label -> value."""
    from genhub.evaluation import card_metrics as metrics_of

    card = Path(folder) / "README.md"
    return metrics_of(card.read_text(encoding="utf-8")) if card.is_file() else {}


def metrics_table(metrics_a: dict[str, str], metrics_b: dict[str, str]) -> list[list[str]]:
    """Rows [metric, model A, model B] over the union of both cards' metrics, A's order first."""
    labels = list(dict.fromkeys([*metrics_a, *metrics_b]))
    return [[label, metrics_a.get(label, "-"), metrics_b.get(label, "-")] for label in labels]


def same_seed_samples(model_a: GenModel, model_b: GenModel, seed: int, count: int):
    """Both models' samples for one seed (their own priors: the seed, not the codes, is shared)."""
    return model_a.sample(count, seed=seed), model_b.sample(count, seed=seed)
