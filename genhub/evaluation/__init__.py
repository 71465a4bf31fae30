"""Evaluate a genhub model against real held-out data and record the result in its card.

    >>> evaluation = evaluate_model(model, "mnist")          # samples vs MNIST test
    >>> print(evaluation.table())
    >>> record_evaluation("runs/vae", evaluation)            # card metadata + body, eval.json

Training scripts call `evaluate_for_card` at the end of training: the same evaluation, merged
into the card context they pass to `genhub.training.cli.finish`, so it is saved before any push.

Which metrics: on 28x28 grey digits (mnist, binarized-mnist) the classifier-based ones
(Fréchet distance, KID, precision/recall on the bundled evaluator CNN's features, class
coverage and entropy) plus the network-free sliced Wasserstein distance; on any other data
(faces, SVHN) the SWD only. The NLL is added for models with a likelihood (VAEs) when it
is a true likelihood of the reference data: Gaussian models, or Bernoulli models on binary data.
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from genhub.data import DATASETS, DatasetError, dataset_key, holdout_split, load_images
from genhub.images import to_unit_range
from genhub.runtime import atomic_write, eval_mode, save_image

from . import metrics as M

DIGIT_DATASETS = {"mnist", "binarized-mnist"}
EVALUATOR_NOTE = (
    "FD and KID are computed on the 128-d features of genhub's MNIST evaluator CNN "
    "(weights/evaluators/mnist-cnn, 99.5% test accuracy), not Inception: compare them only with "
    "other genhub numbers."
)
NO_EVALUATOR_NOTE = (
    "genhub's only evaluator CNN reads 28x28 grey digits, so on this data FD, KID, precision/recall and class coverage are not computed."
)
SWD_NOTE = "SWD is the network-free multi-scale sliced Wasserstein distance on 7x7 Laplacian-pyramid patches (x1000)."

# metric key -> (label in tables, EvalResult metric type, higher is better?)
METRICS = {
    "fd": ("Fréchet distance (evaluator CNN features)", "frechet_distance", False),
    "kid": ("KID x 10^3 (evaluator CNN features)", "kernel_inception_distance", False),
    "precision": ("precision (k=3)", "precision", True),
    "recall": ("recall (k=3)", "recall", True),
    "class_coverage": ("digit classes drawn (of 10)", "class_coverage", True),
    "class_entropy_bits": ("class-histogram entropy, bits (max 3.32)", "entropy", True),
    "swd": ("sliced Wasserstein distance x 10^3", "sliced_wasserstein_distance", False),
    "nll": ("NLL, nats per image (IWAE bound)", "nll", False),
    "memorisation_ratio": ("memorisation: nearest-training-image distance, samples / held-out (pixels)", "memorisation_ratio", True),
    "memorisation_ratio_features": (
        "memorisation: the same ratio in evaluator-CNN features",
        "memorisation_ratio_features",
        True,
    ),
}
MEMORISATION_NOTE = (
    "Memorisation: the median distance from a generated sample to its nearest training image, over the same for "
    "held-out real images the model never saw; near 1 or above, the samples are no closer to the training set than new "
    "real images are, and well below 1 the generator is copying it. memorisation.png shows samples beside their nearest "
    "training images."
)


@dataclass
class Evaluation:
    """Metric values (`metrics`, flat), everything behind them (`details`) and how they were computed."""

    dataset: str
    dataset_id: str
    split: str
    metrics: dict
    details: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)

    def table(self) -> str:
        """A markdown table of the metrics."""
        rows = ["| metric | value |", "|---|---|"]
        rows += [f"| {METRICS[key][0] if key in METRICS else key} | {_format(key, value)} |" for key, value in self.metrics.items()]
        return "\n".join(rows)

    def note(self) -> str:
        settings = ", ".join(f"{key} {value}" for key, value in self.settings.items())
        evaluator = EVALUATOR_NOTE if "fd" in self.metrics else NO_EVALUATOR_NOTE
        memorisation = f" {MEMORISATION_NOTE}" if "memorisation_ratio" in self.metrics else ""
        return f"Measured on {self.dataset} split `{self.split}` ({settings}). {evaluator} {SWD_NOTE}{memorisation}"

    def eval_results(self) -> list:
        """The metrics as huggingface_hub EvalResult entries for the card's model-index."""
        from huggingface_hub import EvalResult

        return [
            EvalResult(
                task_type="unconditional-image-generation",
                task_name="Unconditional image generation",
                dataset_type=self.dataset_id,
                dataset_name=self.dataset,
                dataset_split=self.split,
                metric_type=METRICS[key][1],
                metric_name=METRICS[key][0],
                metric_value=_rounded(key, value),
            )
            for key, value in self.metrics.items()
            if key in METRICS
        ]

    def card_context(self) -> dict:
        """Keys for the card templates (model_cards/*.md): `metrics`, `metrics_note`, `eval_results`."""
        return {
            "metrics": {METRICS[key][0] if key in METRICS else key: _format(key, value) for key, value in self.metrics.items()},
            "metrics_note": self.note(),
            "eval_results": self.eval_results(),
        }

    def to_dict(self) -> dict:
        return {
            "dataset": self.dataset,
            "dataset_id": self.dataset_id,
            "split": self.split,
            "metrics": self.metrics,
            "details": self.details,
            "settings": self.settings,
        }


def _format(key: str, value) -> str:
    if isinstance(value, int):
        return str(value)
    return f"{value * 1000:.3f}" if key == "kid" else f"{value:.4g}" if abs(value) < 1 else f"{value:.2f}"


def _rounded(key: str, value):
    return value if isinstance(value, int) else round(value * 1000 if key == "kid" else value, 4)


# -- data -------------------------------------------------------------------------------------
def dataset_family(dataset: str) -> str | None:
    """The short name of a dataset given by name or by a local folder of the shared layout."""
    return dataset_key(dataset)


def native_shape(dataset) -> tuple[int, int, int] | None:
    """(channels, height, width) of a dataset's own images: from its spec for the named sets, else
    from its first image; None when it cannot be read (the load then reports why)."""
    key = dataset_key(dataset)
    spec = DATASETS.get(key) if key else None
    if spec is not None and spec.image_size and spec.channels:
        return (spec.channels, spec.image_size, spec.image_size)
    try:
        return tuple(load_images(dataset, split="train", limit=1).images.shape[1:])
    except (DatasetError, ValueError):
        return None


def is_digit_data(dataset: str, image_shape) -> bool:
    """Whether images of this dataset and shape are judged with the digit evaluator CNN."""
    from genhub.models.classifier import is_digit_shape

    return dataset_family(dataset) in DIGIT_DATASETS and is_digit_shape(image_shape)


def held_out_images(dataset: str, image_shape, fraction: float, limit: int | None = None, seed: int = 0):
    """The training images and the held-out part (both in [0, 1]) of a dataset trained with
    `holdout_split(fraction, seed)`: what the model never saw, and what it did."""
    channels, side, _ = image_shape
    images = load_images(dataset, split="train", image_size=side, channels=channels, limit=limit).images
    train, held_out = holdout_split(images, fraction, seed)
    return to_unit_range(train), to_unit_range(held_out)


def digit_features(classifier):
    """Images -> the evaluator CNN's features, for digit images of any size and channel count
    (SVHN crops are made 28x28 grey first)."""

    def features(images: torch.Tensor) -> torch.Tensor:
        if tuple(images.shape[1:]) != (1, 28, 28):
            images = torch.nn.functional.interpolate(images.mean(1, keepdim=True), size=(28, 28), mode="bilinear", antialias=True)
        return classifier.features(images.clamp(0, 1).to(classifier.device))

    return features


def memorisation_grid(samples: torch.Tensor, train: torch.Tensor, nearest: torch.Tensor, count: int = 16):
    """A PIL grid: pairs of columns, each generated sample beside its nearest training image."""
    from genhub.images import grid_image

    count = min(count, len(samples))
    pairs = torch.stack([samples[:count].cpu(), train[nearest[:count]].cpu()], dim=1).flatten(0, 1)
    return grid_image(pairs, nrow=8, scale=2 if samples.shape[-1] <= 32 else 1)


def reference_images(dataset: str, image_shape, split: str = "auto", limit: int | None = None) -> tuple[torch.Tensor, str]:
    """Real held-out images in [0, 1] shaped like the model's output, and the split they came from.

    split "auto": validation, else test, else train (for datasets that only have train).
    """
    channels, side, _ = image_shape
    candidates = ["validation", "test", "train"] if split == "auto" else [split]
    for name in candidates:
        try:
            data = load_images(dataset, split=name, image_size=side, channels=channels, limit=limit)
        except DatasetError as error:
            if split == "auto" and "has no split" in str(error):
                continue
            raise
        return data.images.float() / 255, name
    raise AssertionError("unreachable: train always exists")


@torch.no_grad()
def generate(model, n: int, seed: int = 0, batch_size: int = 500, truncation: float | None = None) -> torch.Tensor:
    """n samples in [0, 1] from the model's prior (truncated to [-t, t] with `truncation` t),
    decoded in batches, on the model's device."""
    with eval_mode(model):
        latents = model.sample_latent(n, seed, truncation)
        return torch.cat([model.decode(batch).clamp(0, 1) for batch in latents.split(batch_size)])


# -- metrics ----------------------------------------------------------------------------------
def evaluate_images(
    samples: torch.Tensor, reference: torch.Tensor, *, classifier=None, seed: int = 0, swd_images: int = 1024
) -> tuple[dict, dict]:
    """Sample metrics of `samples` against real `reference` images (both in [0, 1]).

    With a `classifier` (DigitClassifier): FD, KID, precision/recall, class coverage and entropy
    on its features and predictions, plus SWD; without one, SWD only. Returns (metrics, details).
    """
    M.check_images(samples, "samples")
    M.check_images(reference, "reference images")
    if samples.shape[1:] != reference.shape[1:]:
        raise ValueError(f"samples {tuple(samples.shape[1:])} and reference images {tuple(reference.shape[1:])} differ in shape")
    values: dict = {}
    details: dict = {}
    if classifier is not None:
        real_features = classifier.features(reference)
        fake_features = classifier.features(samples)
        values["fd"] = M.frechet_distance(real_features, fake_features)
        kid = M.kernel_distance(real_features, fake_features, subsets=50, seed=seed)
        values["kid"] = kid["mean"]
        details["kid"] = kid
        pr = M.precision_recall(real_features, fake_features)
        values["precision"], values["recall"] = pr["precision"], pr["recall"]
        histogram = M.class_histogram(classifier.probabilities(samples))
        values["class_coverage"], values["class_entropy_bits"] = histogram["coverage"], histogram["entropy_bits"]
        details["class_histogram"] = histogram
    device = samples.device
    swd = M.sliced_wasserstein(reference[:swd_images].to(device), samples[:swd_images], seed=seed)
    values["swd"] = swd["mean"]
    details["swd"] = swd
    return values, details


def has_true_likelihood(model, reference: torch.Tensor) -> bool:
    """NLL is reported for Gaussian VAEs, and for Bernoulli VAEs only on binary data."""
    if not hasattr(model, "iwae_bound"):
        return False
    if getattr(model, "likelihood", None) == "bernoulli":
        return bool(((reference == 0) | (reference == 1)).all())
    return True


def evaluate_model(
    model,
    dataset: str = "mnist",
    *,
    num_samples: int = 10000,
    seed: int = 0,
    split: str = "auto",
    nll_k: int = 1000,
    nll_images: int = 1000,
    classifier=None,
    holdout: float | None = None,
    limit: int | None = None,
    allow_other_data: bool = False,
    truncation: float | None = None,
) -> Evaluation:
    """Evaluate `model` (any GenModel) against held-out real images of `dataset`.

    num_samples: generated images and reference images compared (fewer if the split is smaller).
    nll_k, nll_images: importance samples and held-out images for the IWAE NLL (0 skips it).
    classifier: evaluator for digit data (default: the bundled MNIST CNN, on the model's device).
    holdout, limit: for data trained with a held-out fraction (`--holdout`, on the first `limit`
    training images), compare against that held-out part and measure memorisation.
    truncation: draw the samples with the truncation trick at threshold t (GenModel.sample);
    the settings record it, since it trades recall for precision.
    Deterministic for a seed. Runs on the model's device.
    """
    from genhub.models.classifier import load_evaluator

    family = dataset_family(dataset)
    native = native_shape(dataset)
    converted = native is not None and tuple(native) != tuple(model.image_shape)
    if converted and not allow_other_data:
        raise ValueError(
            f"{dataset!r} holds {native[1]}x{native[2]} images with {native[0]} channel(s), but the model makes "
            f"{tuple(model.image_shape)}: scoring it against converted data of another kind would be meaningless. "
            "Evaluate against the data it was trained on, or pass --other-data (allow_other_data=True) to do it anyway."
        )
    train_part = None
    if holdout:
        train_part, reference = held_out_images(dataset, model.image_shape, holdout, limit=limit)
        used_split = f"train, held-out {holdout:g} ({len(reference)} images)"
    else:
        reference, used_split = reference_images(dataset, model.image_shape, split, limit=num_samples)
    digit_data = is_digit_data(dataset, model.image_shape)
    if (digit_data or family == "svhn") and classifier is None:
        classifier = load_evaluator("mnist", device=model.device)
    # Held-out sets are small: all `num_samples` samples go to the memorisation check, and the first
    # len(reference) of them to the distribution metrics. Otherwise the reference was loaded at that size.
    samples = generate(model, num_samples if holdout else len(reference), seed, truncation=truncation)
    values, details = evaluate_images(
        samples[: len(reference)], reference.to(model.device), classifier=classifier if digit_data else None, seed=seed
    )
    settings = {"samples": len(samples), "seed": seed}
    if truncation is not None:
        settings["latent truncation"] = truncation
    if converted:
        settings["reference converted"] = f"from {native[0]}x{native[1]}x{native[2]} to the model's {'x'.join(map(str, model.image_shape))}"
    if train_part is not None:
        features = digit_features(classifier) if classifier is not None else None
        found = M.memorisation(samples, train_part.to(model.device), reference.to(model.device), features=features)
        values["memorisation_ratio"] = found["pixel"]["ratio"]
        if "features" in found:
            values["memorisation_ratio_features"] = found["features"]["ratio"]
        details["memorisation"] = {key: value for key, value in found.items() if key != "nearest"}
        details["memorisation_grid"] = memorisation_grid(samples, train_part, found["nearest"])
        settings["held-out fraction"] = holdout
    if nll_k and has_true_likelihood(model, reference):
        if nll_images > len(reference) and not holdout:  # the NLL's images are not capped by --samples
            reference, _ = reference_images(dataset, model.image_shape, used_split, limit=nll_images)
        nll = M.iwae_nll(model, reference[:nll_images], k=nll_k, seed=seed)
        values["nll"] = nll["nll"]
        details["nll"] = nll
        settings.update({"NLL k": nll_k, "NLL images": nll["images"]})
    elif nll_k and hasattr(model, "iwae_bound"):
        details["nll"] = "skipped: a Bernoulli likelihood is not a density for grey-level images; evaluate on binarized-mnist"
    spec = DATASETS.get(family) if family else None
    return Evaluation(
        dataset=family or str(dataset),
        dataset_id=spec.hub_id if spec else str(dataset),
        split=used_split,
        metrics=values,
        details=details,
        settings=settings,
    )


def real_floor(
    dataset: str,
    image_shape,
    *,
    num_samples: int = 10000,
    seed: int = 0,
    split: str = "auto",
    classifier=None,
    holdout: float | None = None,
    limit: int | None = None,
) -> dict:
    """The sample metrics that real images get against the reference `evaluate_model` uses with
    the same arguments: the floor a perfect generator would reach at this sample size.

    The real images are training images that are not in the reference: the last ones of the
    training part (with `holdout`), or of the train split (a dataset whose reference is its train
    split, such as anime-faces, compares its last images against its first). Digit data is judged
    with the evaluator CNN, like samples."""
    from genhub.models.classifier import load_evaluator

    channels, side, _ = image_shape
    if holdout:
        train, reference = held_out_images(dataset, image_shape, holdout, limit=limit)
    else:
        reference, used_split = reference_images(dataset, image_shape, split, limit=num_samples)
        train = to_unit_range(load_images(dataset, split="train", image_size=side, channels=channels).images)
        if used_split == "train" and len(train) < 2 * len(reference):
            raise ValueError(f"{dataset!r} has {len(train)} training images: too few for a real-vs-real floor at {len(reference)} images")
    real = train[-len(reference) :]
    if len(real) < len(reference):
        reference = reference[: len(real)]
    digit_data = is_digit_data(dataset, image_shape)
    if digit_data and classifier is None:
        classifier = load_evaluator("mnist")
    values, _ = evaluate_images(real, reference, classifier=classifier if digit_data else None, seed=seed)
    return {**values, "images": len(reference)}


# -- the card -----------------------------------------------------------------------------------
# A card accumulates results from several places (train/vae.py's NLL at the end of training, a
# later train/evaluate.py run): a new evaluation replaces the metrics it computes and keeps the rest.
_EVALUATION_SECTION = re.compile(r"^## Evaluation\n.*?(?=^## |\Z)", re.S | re.M)
_TABLE_ROW = re.compile(r"^\|([^|]+)\|([^|]+)\|$")
_NO_EVALUATION = "No evaluation recorded."
_EVALUATION_NOTE_START = "Measured on "  # how Evaluation.note() begins


def merge_eval_results(existing, evaluation: Evaluation) -> list:
    """model-index entries: the evaluation's, then the existing ones of metric types it does not recompute."""
    new = evaluation.eval_results()
    recomputed = {result.metric_type for result in new}
    return new + [result for result in existing or [] if result.metric_type not in recomputed]


def merge_rows_and_notes(rows: dict, notes: list[str], evaluation: Evaluation) -> tuple[dict, list[str]]:
    """A card's metric table (label -> value) and notes with `evaluation` merged in.

    Rows: the existing ones in their order, those the evaluation recomputes with its values, then
    the evaluation's new ones. Notes: the
    existing ones, then the evaluation's; an earlier evaluation's note is dropped unless a row
    it explains (a genhub metric label) is kept.
    """
    new = evaluation.card_context()["metrics"]
    kept = {label: value for label, value in rows.items() if label not in new}
    earlier_evaluation_shown = any(label in {spec[0] for spec in METRICS.values()} for label in kept)
    notes = [
        note
        for note in notes
        if note not in (_NO_EVALUATION, evaluation.note()) and (earlier_evaluation_shown or not note.startswith(_EVALUATION_NOTE_START))
    ]
    return {**rows, **new}, notes + [evaluation.note()]


def with_evaluation(card_context: dict, evaluation: Evaluation) -> dict:
    """A training script's card context (see genhub.training.cli.finish) with `evaluation` merged into
    its `metrics`, `metrics_note` and `eval_results`: the training-time metrics stay."""
    notes = [card_context["metrics_note"]] if card_context.get("metrics_note") else []
    rows, notes = merge_rows_and_notes(card_context.get("metrics") or {}, notes, evaluation)
    return {
        **card_context,
        "metrics": rows,
        "metrics_note": "\n\n".join(notes),
        "eval_results": merge_eval_results(card_context.get("eval_results"), evaluation),
    }


def evaluate_for_card(
    model, dataset: str, card_context: dict, folder, *, num_samples: int, seed: int = 0, nll_k: int = 0, holdout=None, limit=None
) -> dict:
    """The end of a training script: evaluate the final `model` against held-out `dataset` images,
    print the table, write `folder`/eval.json and return `card_context` with the evaluation merged
    in, so the card saved (and pushed) next carries it. Data without a reference split to read
    is reported and skipped: a finished training run is never lost to its evaluation."""
    try:
        # The run's own data, at the size it was trained on (a resized training set is converted alike).
        evaluation = evaluate_model(
            model, dataset, num_samples=num_samples, seed=seed, nll_k=nll_k, holdout=holdout, limit=limit, allow_other_data=True
        )
    except (DatasetError, ValueError) as error:
        print(f"evaluation skipped: {error}", file=sys.stderr)
        return card_context
    print(f"evaluation against {evaluation.dataset} ({evaluation.split}):\n{evaluation.table()}\n{evaluation.note()}", flush=True)
    Path(folder).mkdir(parents=True, exist_ok=True)
    grid = evaluation.details.pop("memorisation_grid", None)
    if grid is not None:
        save_image(grid, Path(folder) / "memorisation.png")
    write_json(Path(folder) / "eval.json", evaluation)
    return with_evaluation(card_context, evaluation)


def card_metrics(text: str) -> dict[str, str]:
    """The metric table of a model card's "## Evaluation" section: label -> value."""
    section = _EVALUATION_SECTION.search(text)
    return _parse_section(section.group(0))[0] if section else {}


def table_rows(text: str) -> dict[str, str]:
    """Every two-column `| label | value |` row of a card's text (header and rule rows left out)."""
    rows = {}
    for line in text.splitlines():
        match = _TABLE_ROW.match(line.strip())
        if match and not set(match[2].strip()) <= set("-:") and match[1].strip() not in ("metric", "setting"):
            rows[match[1].strip()] = match[2].strip()
    return rows


def _parse_section(section: str) -> tuple[dict, list[str]]:
    """The "## Evaluation" section's table rows (label -> value) and its other paragraphs."""
    rows, notes = {}, []
    for block in section.split("\n\n")[1:]:  # [0] is the heading
        lines = [line.strip() for line in block.strip().splitlines() if line.strip()]
        text = [line for line in lines if not line.startswith("|")]
        rows.update(table_rows("\n".join(lines)))
        if text:
            notes.append(" ".join(text))
    return rows, notes


def update_card(card, evaluation: Evaluation, model_name: str | None = None):
    """Merge the evaluation into a huggingface_hub ModelCard: the model-index metadata and the
    body's "## Evaluation" section (added before "## Limitations" when missing). Metrics the
    evaluation computes are replaced; every other result already in the card is kept."""
    card.data.eval_results = merge_eval_results(card.data.eval_results, evaluation)
    card.data.model_name = model_name or card.data.model_name or "genhub model"
    body = card.text
    match = _EVALUATION_SECTION.search(body)
    rows, notes = merge_rows_and_notes(*(_parse_section(match[0]) if match else ({}, [])), evaluation)
    table = "\n".join(["| metric | value |", "|---|---|", *(f"| {label} | {value} |" for label, value in rows.items())])
    section = "## Evaluation\n\n" + "\n\n".join([table, *notes]) + "\n\n"
    if match:
        body = body[: match.start()] + section + body[match.end() :]
    elif "## Limitations" in body:
        body = body.replace("## Limitations", section + "## Limitations", 1)
    else:
        body = body.rstrip("\n") + "\n\n" + section
    card.text = body
    return card


def record_evaluation(folder, evaluation: Evaluation, model_name: str | None = None) -> Path:
    """Write `eval.json` into a saved model folder and merge the evaluation into its README.md card."""
    from huggingface_hub import ModelCard

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder; save the model first")
    write_json(folder / "eval.json", evaluation)
    card_path = folder / "README.md"
    card = ModelCard.load(card_path) if card_path.exists() else ModelCard("---\n---\n\n# genhub model\n")
    update_card(card, evaluation, model_name=model_name or folder.name)
    atomic_write(card_path, lambda temporary: card.save(temporary))
    return card_path


def write_json(path, evaluation: Evaluation) -> None:
    text = json.dumps(evaluation.to_dict(), indent=2, default=_json_default) + "\n"
    atomic_write(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def _json_default(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, tuple):
        return list(value)
    return str(value)
