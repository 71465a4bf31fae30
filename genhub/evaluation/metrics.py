"""Sample-quality and likelihood metrics, computed without any downloaded network.

    iwae_nll              -log p(x) estimate of a VAE on held-out images (Burda et al. 2016)
    frechet_distance      FD between Gaussian fits of evaluator features (FID with our CNN)
    kernel_distance       KID: unbiased polynomial-kernel MMD^2 on evaluator features (Binkowski et al. 2018)
    precision_recall      improved precision/recall with k-NN manifolds (Kynkaanniemi et al. 2019)
    class_histogram       what digits a generator draws: coverage of the ten classes, entropy
    sliced_wasserstein    multi-scale SWD on Laplacian-pyramid patches (Karras et al. 2018), network-free
    laplacian_variance    per-image sharpness (variance of the Laplacian), network-free

Features come from `genhub.models.classifier` (a CNN we train on MNIST), so FD/KID values are
comparable with each other but not with Inception-based numbers in papers.

Every function takes tensors on any device and works there in batches; every random
choice comes from a `torch.Generator` seeded by `seed`, so a seed gives the same number.
"""

from __future__ import annotations

import hashlib
import json
import math
import zlib
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from genhub.runtime import atomic_write, eval_mode


# -- input checks -------------------------------------------------------------------------
def _check_features(real: torch.Tensor, fake: torch.Tensor, minimum: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    for name, features in (("real", real), ("fake", fake)):
        if not isinstance(features, torch.Tensor) or features.dim() != 2:
            shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
            raise ValueError(f"{name} features must be a 2-D tensor (N, D), got {shape}")
        if len(features) < minimum:
            raise ValueError(f"{name} features: need at least {minimum} rows, got {len(features)}")
        if not torch.isfinite(features).all():
            raise ValueError(f"{name} features contain NaN or infinite values")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"real and fake features differ in dimension: {real.shape[1]} vs {fake.shape[1]}")
    return real.double(), fake.double().to(real.device)


def check_images(images: torch.Tensor, name: str = "images") -> torch.Tensor:
    """Float (N, C, H, W) images in [0, 1]; anything else raises ValueError saying what is wrong."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"{name} must be a batch (N, C, H, W), got {shape}")
    if not images.is_floating_point():
        raise ValueError(f"{name} must be float images in [0, 1], got dtype {images.dtype} (divide uint8 images by 255)")
    if len(images) == 0:
        raise ValueError(f"{name} is empty")
    if not torch.isfinite(images).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    low, high = images.min().item(), images.max().item()
    if low < -1e-3 or high > 1 + 1e-3:
        raise ValueError(f"{name} must lie in [0, 1], got values in [{low:.3f}, {high:.3f}]")
    return images


# -- likelihood ---------------------------------------------------------------------------
def iwae_nll(
    model,
    images: torch.Tensor,
    k: int = 1000,
    batch_size: int = 100,
    seed: int = 0,
    *,
    channels_last: bool = False,
    record: str | Path | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> dict:
    """Negative log-likelihood of held-out images under a VAE, from its importance-weighted bound.

    `model` needs `iwae_bound(x, k)` (GenVAE). The bound is a lower bound on log p(x), so
    the NLL is an upper bound that tightens with k. Returns nats per image (mean and standard
    error over images) and bits per dimension.

    Batch b draws its samples from its own seed (crc32 of "seed/b"), so every batch can be
    computed alone. With `record` (a JSON file) the per-image bounds are saved after every batch,
    and a later call for the same weights, images, k, seed and batch size continues from them: a
    k=1000 evaluation that takes half an hour survives an interruption. A record made for anything
    else is replaced. `channels_last` runs the convolutions in NHWC (fp32 all the same: the
    bound moves by float rounding only). `progress(images_done, total, running_nll)` is called
    after every batch.
    """
    if not hasattr(model, "iwae_bound"):
        raise TypeError(f"{type(model).__name__} has no likelihood (iwae_bound): NLL is defined for VAEs only")
    check_images(images)
    if tuple(images.shape[1:]) != tuple(model.image_shape):
        raise ValueError(f"images of shape {tuple(images.shape[1:])} do not fit a model of image shape {tuple(model.image_shape)}")
    device = model.device
    key = _nll_key(model, images, k, batch_size, seed) if record is not None else None
    done = _read_nll_record(record, key) if record is not None else []
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    batches = images.split(batch_size)
    with eval_mode(model), torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        model.to(memory_format=memory_format)
        try:
            for index in range(len(done), len(batches)):
                torch.manual_seed(zlib.crc32(f"{seed}/{index}".encode()))
                batch = batches[index].to(device)
                batch = batch.contiguous(memory_format=memory_format) if batch.dim() == 4 else batch
                done.append(model.iwae_bound(batch, k).double().cpu().tolist())
                if record is not None:
                    atomic_write(record, lambda path: path.write_text(json.dumps({"key": key, "bounds": done}), encoding="utf-8"))
                if progress is not None:
                    finished = sum(map(len, done))
                    progress(finished, len(images), -sum(map(sum, done)) / finished)
        finally:
            model.to(memory_format=torch.contiguous_format)
    nll = -torch.tensor([bound for batch in done for bound in batch], dtype=torch.float64)
    dims = math.prod(images.shape[1:])
    return {
        "nll": nll.mean().item(),
        "nll_stderr": (nll.std() / math.sqrt(len(nll))).item() if len(nll) > 1 else float("nan"),
        "bits_per_dim": nll.mean().item() / (dims * math.log(2)),
        "k": k,
        "images": len(nll),
    }


def _nll_key(model, images: torch.Tensor, k: int, batch_size: int, seed: int) -> str:
    """What an NLL record belongs to: a digest of the weights, the images and the settings."""
    digest = hashlib.sha256(f"k={k} batch={batch_size} seed={seed}".encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().flatten().view(torch.uint8).numpy().tobytes())
    digest.update(images.detach().cpu().contiguous().flatten().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _read_nll_record(path, key: str) -> list[list[float]]:
    """The finished batches of a record for `key`; none when the file is absent, unreadable or another run's."""
    try:
        saved = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return saved["bounds"] if isinstance(saved, dict) and saved.get("key") == key and isinstance(saved.get("bounds"), list) else []


# -- feature-based sample metrics ---------------------------------------------------------
def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^(1/2)) between Gaussian fits of two feature sets.

    The matrix square root's trace is taken from the eigenvalues of S_r^(1/2) S_f S_r^(1/2),
    which is symmetric, so it stays real and stable in float64.
    """
    real, fake = _check_features(real, fake)
    mean_real, mean_fake = real.mean(0), fake.mean(0)
    cov_real, cov_fake = torch.cov(real.T), torch.cov(fake.T)
    values, vectors = torch.linalg.eigh(cov_real)
    root_real = vectors @ torch.diag(values.clamp(min=0).sqrt()) @ vectors.T
    cross = torch.linalg.eigvalsh(root_real @ cov_fake @ root_real).clamp(min=0).sqrt().sum()
    distance = (mean_real - mean_fake).pow(2).sum() + cov_real.trace() + cov_fake.trace() - 2 * cross
    return max(distance.item(), 0.0)


def kernel_distance(real: torch.Tensor, fake: torch.Tensor, subset_size: int = 1000, subsets: int = 100, seed: int = 0) -> dict:
    """KID: the unbiased MMD^2 with kernel k(x, y) = (x.y / d + 1)^3, averaged over random subsets.

    Unbiased, so it is near zero (and can dip below) for two samples of one distribution.
    """
    real, fake = _check_features(real, fake)
    size = min(subset_size, len(real), len(fake))
    generator = torch.Generator().manual_seed(seed)
    dim = real.shape[1]
    values = []
    for _ in range(subsets):
        x = real[torch.randperm(len(real), generator=generator)[:size].to(real.device)]
        y = fake[torch.randperm(len(fake), generator=generator)[:size].to(fake.device)]
        kxx, kyy, kxy = ((a @ b.T / dim + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
        off_diagonal = size * (size - 1)
        values.append(
            (kxx.sum() - kxx.diagonal().sum()) / off_diagonal + (kyy.sum() - kyy.diagonal().sum()) / off_diagonal - 2 * kxy.mean()
        )
    values = torch.stack(values)
    return {"mean": values.mean().item(), "std": values.std().item() if subsets > 1 else 0.0, "subset_size": size, "subsets": subsets}


def _kth_neighbour_radii(features: torch.Tensor, k: int, batch_size: int) -> torch.Tensor:
    """Distance from each point to its k-th nearest other point of the same set."""
    radii = [torch.cdist(batch, features).topk(k + 1, largest=False).values[:, -1] for batch in features.split(batch_size)]
    return torch.cat(radii)


def _inside_manifold(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, batch_size: int) -> torch.Tensor:
    """For each point, whether it lies inside any ball (centre, radius)."""
    inside = [(torch.cdist(batch, centres) <= radii).any(1) for batch in points.split(batch_size)]
    return torch.cat(inside)


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3, batch_size: int = 1000) -> dict:
    """Improved precision and recall (Kynkaanniemi et al. 2019).

    Each set's manifold is the union of balls around its points reaching their k-th nearest
    neighbour. Precision: the fraction of fake points inside the real manifold (are samples
    realistic?). Recall: the fraction of real points inside the fake manifold (is all of the
    data covered?). A generator that drops modes keeps precision and loses recall.
    """
    real, fake = _check_features(real, fake, minimum=k + 1)
    real_radii = _kth_neighbour_radii(real, k, batch_size)
    fake_radii = _kth_neighbour_radii(fake, k, batch_size)
    precision = _inside_manifold(fake, real, real_radii, batch_size).double().mean().item()
    recall = _inside_manifold(real, fake, fake_radii, batch_size).double().mean().item()
    return {"precision": precision, "recall": recall, "k": k}


# -- what digits are drawn -----------------------------------------------------------------
def class_histogram(probabilities: torch.Tensor, min_fraction: float = 0.02) -> dict:
    """The classic "classify what the generator draws" check, from classifier probabilities (N, classes).

    coverage: how many classes receive at least `min_fraction` of the samples (10 of 10 for a
    generator that draws every digit; 5 if it only draws 0-4). entropy_bits: entropy of the
    predicted-class histogram (log2(10) = 3.32 when uniform). confidence: the mean top
    probability, low when samples look like no digit in particular.
    """
    if not isinstance(probabilities, torch.Tensor) or probabilities.dim() != 2 or len(probabilities) == 0:
        raise ValueError("probabilities must be a non-empty (N, num_classes) tensor")
    if not 0 < min_fraction < 1:
        raise ValueError(f"min_fraction must be in (0, 1), got {min_fraction}")
    num_classes = probabilities.shape[1]
    counts = torch.bincount(probabilities.argmax(1).cpu(), minlength=num_classes)
    fractions = counts.double() / counts.sum()
    nonzero = fractions[fractions > 0]
    return {
        "counts": counts.tolist(),
        "coverage": int((fractions >= min_fraction).sum()),
        "entropy_bits": float(-(nonzero * nonzero.log2()).sum()) + 0.0,  # + 0.0 turns -0.0 into 0.0
        "confidence": probabilities.max(1).values.double().mean().item(),
        "min_fraction": min_fraction,
    }


# -- network-free: sliced Wasserstein distance on Laplacian-pyramid patches ----------------
_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])


def _blur(images: torch.Tensor) -> torch.Tensor:
    kernel = torch.outer(_BINOMIAL, _BINOMIAL).to(images) / 256
    channels = images.shape[1]
    padded = F.pad(images, (2, 2, 2, 2), mode="reflect")
    return F.conv2d(padded, kernel.expand(channels, 1, 5, 5), groups=channels)


def laplacian_pyramid(images: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Band-pass images from fine to coarse; the last entry is the low-pass remainder."""
    pyramid = []
    current = images
    for _ in range(levels - 1):
        smaller = _blur(current)[:, :, ::2, ::2]
        upsampled = torch.zeros_like(current)
        upsampled[:, :, ::2, ::2] = smaller
        pyramid.append(current - 4 * _blur(upsampled))
        current = smaller
    pyramid.append(current)
    return pyramid


def pyramid_levels(side: int, patch: int = 7) -> int:
    """How many pyramid levels keep the image side at least twice the patch (28 -> 2, 64 -> 3)."""
    levels = 1
    while math.ceil(side / 2) >= 2 * patch:
        side = math.ceil(side / 2)
        levels += 1
    return levels


def _patch_descriptors(level: torch.Tensor, per_image: int, patch: int, generator: torch.Generator) -> torch.Tensor:
    """`per_image` random patch x patch neighbourhoods from each image, flattened, each channel
    normalized to zero mean and unit variance over the whole set (as in Karras et al.)."""
    n, channels, height, width = level.shape
    rows = torch.randint(height - patch + 1, (n, per_image), generator=generator).to(level.device)
    cols = torch.randint(width - patch + 1, (n, per_image), generator=generator).to(level.device)
    offsets = torch.arange(patch, device=level.device)
    r = rows[..., None, None] + offsets[:, None]  # (n, per_image, patch, 1)
    c = cols[..., None, None] + offsets[None, :]  # (n, per_image, 1, patch)
    image_index = torch.arange(n, device=level.device)[:, None, None, None]
    patches = level.permute(0, 2, 3, 1)[image_index, r, c]  # (n, per_image, patch, patch, C)
    patches = patches.reshape(-1, patch * patch, channels)
    patches = (patches - patches.mean((0, 1))) / patches.std((0, 1)).clamp(min=1e-8)
    return patches.flatten(1)


def _sliced_distance(a: torch.Tensor, b: torch.Tensor, directions: int, repeats: int, generator: torch.Generator) -> float:
    """Mean over random unit directions of the 1-D Wasserstein-1 distance between projections."""
    results = []
    for _ in range(repeats):
        units = torch.randn(a.shape[1], directions, generator=generator).to(a)
        units = units / units.norm(dim=0, keepdim=True)
        projected_a, _ = (a @ units).sort(0)
        projected_b, _ = (b @ units).sort(0)
        results.append((projected_a - projected_b).abs().mean())
    return torch.stack(results).mean().item()


def sliced_wasserstein(
    real: torch.Tensor,
    fake: torch.Tensor,
    patches_per_image: int = 64,
    patch: int = 7,
    directions: int = 64,
    repeats: int = 4,
    seed: int = 0,
) -> dict:
    """Multi-scale SWD (Karras et al. 2018): at each Laplacian-pyramid level, the sliced
    Wasserstein distance between random 7x7 patch descriptors of real and generated images.

    Network-free, so it works for any dataset (faces, SVHN). Values are x1000 as in the paper;
    `levels` lists them fine to coarse (fine: texture and edges; coarse: overall shape and
    colour), `mean` averages them. Both sets are cut to the smaller size so that the sorted
    projections pair up.
    """
    check_images(real, "real images")
    check_images(fake, "fake images")
    if real.shape[1:] != fake.shape[1:]:
        raise ValueError(f"real and fake images differ in shape: {tuple(real.shape[1:])} vs {tuple(fake.shape[1:])}")
    side = min(real.shape[2:])
    if side < 2 * patch:
        raise ValueError(f"images of side {side} are too small for {patch}x{patch} patches")
    count = min(len(real), len(fake))
    levels = pyramid_levels(side, patch)
    generator = torch.Generator().manual_seed(seed)
    device = fake.device
    real_pyramid = laplacian_pyramid(real[:count].to(device).float() * 2 - 1, levels)
    fake_pyramid = laplacian_pyramid(fake[:count].float() * 2 - 1, levels)
    distances = []
    for real_level, fake_level in zip(real_pyramid, fake_pyramid):
        a = _patch_descriptors(real_level, patches_per_image, patch, generator)
        b = _patch_descriptors(fake_level, patches_per_image, patch, generator)
        distances.append(1000 * _sliced_distance(a, b, directions, repeats, generator))
    return {
        "levels": distances,
        "mean": sum(distances) / len(distances),
        "resolutions": [tuple(level.shape[2:]) for level in real_pyramid],
        "images": count,
    }


# -- sharpness ------------------------------------------------------------------------------
_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def laplacian_variance(images: torch.Tensor) -> torch.Tensor:
    """Per-image sharpness: the variance of the 3x3 Laplacian of the grey image (0-255 scale).

    Blur removes the high frequencies the Laplacian responds to, so blurry images (a VAE's
    mean images) score lower than sharp ones; compare sets of the same size and content.
    """
    check_images(images)
    grey = images.float().mean(1, keepdim=True) * 255
    response = F.conv2d(grey, _LAPLACIAN.to(grey).view(1, 1, 3, 3))
    return response.flatten(1).var(1)


# -- memorisation --------------------------------------------------------------------------
@torch.no_grad()
def nearest_neighbours(queries: torch.Tensor, bank: torch.Tensor, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """For each query, the Euclidean distance to its nearest row of `bank` and that row's index
    (both flattened to vectors), computed in blocks."""
    bank = bank.flatten(1).float()
    distances, indices = [], []
    for block in queries.flatten(1).float().split(batch_size):
        nearest = torch.cdist(block.to(bank.device), bank).min(dim=1)
        distances.append(nearest.values.cpu())
        indices.append(nearest.indices.cpu())
    return torch.cat(distances), torch.cat(indices)


def memorisation(samples: torch.Tensor, train: torch.Tensor, held_out: torch.Tensor, features=None) -> dict:
    """Does a generator copy its training set? For each generated sample, the distance to the
    nearest training image; for each held-out real image (never trained on), the same distance,
    as the reference. A generator that copies puts its samples much closer to training images
    than new real images are: a ratio well below 1.

        ratio = median_s d(s, train) / median_h d(h, train)

    Also reported: the share of samples nearer to a training image than the 5% quantile of the
    held-out distances (about 0.05 for a generator that does not copy; near 1 for a copier).
    `features`, a function images -> (N, D), gives the same figures in that feature space.
    Images in [0, 1]. Returns {"pixel": {...}, "features": {...} (with `features`), "nearest": indices}.
    """
    for name, images in (("samples", samples), ("training images", train), ("held-out images", held_out)):
        check_images(images, name)

    def figures(query, reference, bank):
        generated, nearest = nearest_neighbours(query, bank)
        real, _ = nearest_neighbours(reference, bank)
        close = torch.quantile(real, 0.05)
        return {
            "generated_median": generated.median().item(),
            "held_out_median": real.median().item(),
            "ratio": (generated.median() / real.median()).item(),
            "share_closer_than_5pct_held_out": (generated < close).float().mean().item(),
        }, nearest

    result = {}
    result["pixel"], result["nearest"] = figures(samples, held_out, train)
    if features is not None:
        result["features"], _ = figures(features(samples), features(held_out), features(train))
    return result
