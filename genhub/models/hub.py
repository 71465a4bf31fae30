"""The base class every genhub model shares, and the Hub plumbing around it.

A genhub model is a `torch.nn.Module` whose constructor arguments are its config
(diffusers style): `save_pretrained` writes `model.safetensors`, `config.json` and a model
card rendered from `model_cards/<family>.md`; `from_pretrained` rebuilds the model from
the config and loads the weights strictly, from a local folder or the Hub (cache).

Every model maps a latent code to images in [0, 1] with `decode(z)` and draws from its
prior with `sample(n, seed)`.
"""

from __future__ import annotations

import inspect
import json
import math
import os
from pathlib import Path
from typing import ClassVar

import torch
from huggingface_hub import ModelCard, ModelCardData, PyTorchModelHubMixin
from huggingface_hub import constants as hub_constants

from genhub.assets import asset_dir
from genhub.images import grid_image, to_pil
from genhub.runtime import eval_mode

REPO_URL = "https://github.com/genhub/genhub"
CONFIG_NAME = hub_constants.CONFIG_NAME
WEIGHTS_NAME = hub_constants.SAFETENSORS_SINGLE_FILE
CLASS_KEY = "genhub_class"  # extra config.json key naming the class, for `load_model`


class ModelLoadError(OSError):
    """A model folder or Hub id that cannot be turned back into a model."""


class PushError(RuntimeError):
    """A push to the Hub that could not be done; the local save is untouched."""


def read_card_template(family: str) -> str:
    """The card template `model_cards/<family>.md`, from the installed package or the checkout."""
    path = asset_dir("model_cards") / f"{family}.md"
    if not path.exists():
        raise FileNotFoundError(f"model card template {family}.md not found in {path.parent}")
    return path.read_text(encoding="utf-8")


MODEL_CLASSES: dict[str, type[HubModel]] = {}


class HubModel(
    torch.nn.Module,
    PyTorchModelHubMixin,
    library_name="genhub",
    tags=["genhub"],
    license="mit",
    repo_url=REPO_URL,
):
    """What every genhub network on the Hub shares: config = constructor arguments, a card
    rendered from `model_cards/<card_family>.md`, strict loading with clear errors."""

    card_family: ClassVar[str] = "generic"
    legacy_config_keys: ClassVar[dict[str, str]] = {}  # config.json keys of older releases -> today's argument

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        MODEL_CLASSES[cls.__name__] = cls

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def save_pretrained(self, save_directory, *, config: dict | None = None, model_card_kwargs: dict | None = None, **kwargs):
        """Write weights, config and a fresh model card (an older card in the folder is replaced).

        The files are written into a temporary folder beside them and renamed into place: a crash
        never leaves half a model, and a symlink at a file's name is replaced, its target untouched."""
        import tempfile

        target = Path(save_directory)
        target.mkdir(parents=True, exist_ok=True)
        config = dict(config or self._hub_mixin_config or {})
        config[CLASS_KEY] = type(self).__name__
        with tempfile.TemporaryDirectory(dir=target, prefix=".saving-") as staging:
            super().save_pretrained(staging, config=config, model_card_kwargs=model_card_kwargs, **kwargs)
            for item in sorted(Path(staging).iterdir()):
                os.replace(item, target / item.name)

    def generate_model_card(self, *args, **context) -> ModelCard:
        """Render `model_cards/<family>.md`; `context` fills its placeholders (dataset, metrics, ...)."""
        data = ModelCardData(**self._hub_mixin_info.model_card_data.to_dict())
        if context.get("dataset_id"):
            data.datasets = [context["dataset_id"]]
        if context.get("eval_results"):
            data.eval_results = context["eval_results"]
            data.model_name = context.get("model_name", type(self).__name__)
        return ModelCard.from_template(
            card_data=data,
            template_str=read_card_template(self.card_family),
            repo_url=self._hub_mixin_info.repo_url,
            class_name=type(self).__name__,
            config=self._hub_mixin_config or {},
            num_parameters=self.num_parameters(),
            **context,
        )

    @classmethod
    def _load_as_safetensor(cls, model, model_file: str, map_location: str, strict: bool):
        """Strict loading checks more than names and shapes: every tensor in the file has the
        dtype kind the model expects (no integer weights cast silently into float ones), and every
        float value is finite (no NaN or inf weights)."""
        from safetensors import safe_open

        expected = model.state_dict()
        with safe_open(model_file, framework="pt") as weights:
            for key in weights.keys():
                if key not in expected:
                    continue  # a missing or unexpected key is reported by the strict load below
                tensor = weights.get_tensor(key)
                if tensor.is_floating_point() != expected[key].is_floating_point():
                    raise ModelLoadError(
                        f"{model_file}: tensor {key!r} is stored as {tensor.dtype}, but the model holds {expected[key].dtype} there"
                    )
                if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                    bad = int((~torch.isfinite(tensor)).sum())
                    raise ModelLoadError(f"{model_file}: tensor {key!r} holds {bad} NaN or infinite value(s); the weights are corrupt")
        return super()._load_as_safetensor(model, model_file, map_location, strict)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *, strict: bool = True, **kwargs):
        """Load from a local folder or a Hub id; weights must match the config exactly (strict).

        Errors name the file at fault: a missing or corrupt config.json, missing or corrupt
        weights, weights of another shape, or a Hub that cannot be reached.
        """
        source = str(pretrained_model_name_or_path)
        if os.path.isdir(source):
            _check_local_folder(Path(source))
        elif os.path.exists(source):
            raise ModelLoadError(f"{source} is a file; pass the folder that holds config.json and {WEIGHTS_NAME}.")
        max_parameters = kwargs.pop("max_parameters", None) or int(os.environ.get("GENHUB_MAX_PARAMETERS", DEFAULT_MAX_PARAMETERS))
        config = read_config(source, **{k: v for k, v in kwargs.items() if k in HUB_DOWNLOAD_KWARGS})
        for old, new in cls.legacy_config_keys.items():
            if old in config and new not in config and new not in kwargs:
                kwargs[new] = config[old]
        check_size(cls, source, {**config, **kwargs}, max_parameters)
        try:
            return super().from_pretrained(source, strict=strict, **kwargs)
        except ModelLoadError:
            raise
        except Exception as error:
            raise ModelLoadError(_explain_load_error(cls, source, error)) from error


class GenModel(HubModel, tags=["image-generation"], pipeline_tag="unconditional-image-generation"):
    """Shared interface of the generative models: `latent_dim`, `image_shape`, `decode(z)`,
    `sample(n, seed)`."""

    latent_dim: int
    image_shape: tuple[int, int, int]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent codes (N, latent_dim) -> images (N, C, H, W) in [0, 1]."""
        raise NotImplementedError

    def sample_latent(self, n: int, seed: int | None = None, truncation: float | None = None) -> torch.Tensor:
        """n draws from the prior N(0, I); the same seed always gives the same codes.
        With `truncation` t, from N(0, I) truncated to [-t, t] in every coordinate (see `standard_normal`)."""
        check_count(n)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        return standard_normal((n, self.latent_dim), generator, truncation).to(self.device)

    @torch.no_grad()
    def sample(self, n: int, seed: int | None = None, truncation: float | None = None) -> torch.Tensor:
        """n images in [0, 1], shape (n, C, H, W). `truncation` t > 0 draws the noise from a normal
        truncated to [-t, t]: the truncation trick, fewer malformed samples for less variety."""
        with eval_mode(self):
            return self.decode(self.sample_latent(n, seed, truncation))

    to_pil = staticmethod(to_pil)

    @staticmethod
    def grid(images: torch.Tensor, nrow: int | None = None, scale: int = 1):
        """A PIL image tiling a batch of images."""
        return grid_image(images, nrow=nrow, scale=scale)


def _check_local_folder(folder: Path) -> None:
    config = folder / CONFIG_NAME
    if not config.exists():
        raise ModelLoadError(f"{folder} has no {CONFIG_NAME}; it is not a saved genhub model.")
    _read_config_file(config)
    if not (folder / WEIGHTS_NAME).exists():
        raise ModelLoadError(f"{folder} has {CONFIG_NAME} but no weights file {WEIGHTS_NAME}.")


def _explain_load_error(cls, source: str, error: Exception) -> str:
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled, RepositoryNotFoundError

    name = type(error).__name__
    if isinstance(error, (LocalEntryNotFoundError, OfflineModeIsEnabled)):
        return (
            f"{source!r} is neither a local folder nor in the Hub cache, and the Hub cannot be reached "
            f"({name}). Download it once with network access, or pass a local folder."
        )
    if name == "HFValidationError":  # neither an existing folder nor something shaped like user/name
        return f"No model folder at {source!r}, and it is not a Hub id (user/name) either."
    if isinstance(error, RepositoryNotFoundError):
        return f"No model {source!r} on the Hub (or it is private and no token was given)."
    if isinstance(error, TypeError):
        return f"{CONFIG_NAME} of {source!r} does not fit {cls.__name__}: {error}"
    if isinstance(error, RuntimeError) and ("size mismatch" in str(error) or "Missing key" in str(error) or "Unexpected key" in str(error)):
        return f"The weights of {source!r} do not match its {CONFIG_NAME} for {cls.__name__}: {error}"
    if "safetensor" in name.lower() or "header" in str(error).lower():
        return f"The weights file of {source!r} is corrupt: {error}"
    return f"Could not load {cls.__name__} from {source!r}: {name}: {error}"


DEFAULT_MAX_PARAMETERS = 200_000_000  # GENHUB_MAX_PARAMETERS overrides; the Space passes its own, smaller bound


def check_size(cls, source: str, config: dict, max_parameters: int) -> None:
    """Count the parameters a config would build, on the meta device (nothing is allocated), and
    refuse a model over `max_parameters` before any memory is taken for it."""
    import inspect

    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    arguments = {key: value for key, value in config.items() if key in accepted}
    try:
        with torch.device("meta"):
            count = sum(p.numel() for p in cls(**arguments).parameters())
    except Exception:  # a config that cannot build at all is reported by the load itself, with the file named
        return
    if count > max_parameters:
        raise ModelLoadError(
            f"{source!r}: its {CONFIG_NAME} describes a {cls.__name__} of {count:,} parameters, over the limit of "
            f"{max_parameters:,}; refusing to build it (set GENHUB_MAX_PARAMETERS to allow larger models)."
        )


HUB_DOWNLOAD_KWARGS = ("cache_dir", "revision", "token", "local_files_only", "force_download")


def read_config(source, **hub_kwargs) -> dict:
    """config.json of a local model folder or a Hub id (through the Hub cache), as a dict;
    `hub_kwargs` are hf_hub_download's (cache_dir, revision, token, ...)."""
    source = str(source)
    if os.path.isdir(source):
        _check_local_folder(Path(source))
        path = Path(source) / CONFIG_NAME
    else:
        from huggingface_hub import hf_hub_download

        try:
            path = Path(hf_hub_download(source, CONFIG_NAME, **hub_kwargs))
        except Exception as error:
            raise ModelLoadError(_explain_load_error(HubModel, source, error)) from error
    return _read_config_file(path)


def _read_config_file(path: Path) -> dict:
    """A config.json as a dict; ModelLoadError naming the file when it is not a JSON object."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelLoadError(f"{path} is corrupt (not valid JSON: {error}).") from error
    if not isinstance(config, dict):
        raise ModelLoadError(f"{path} is not a JSON object of constructor arguments (it holds a {type(config).__name__}).")
    return config


def init_defaults(cls) -> dict:
    """The default of every constructor argument of `cls` that has one: what a config saved before
    an argument existed stands for."""
    parameters = inspect.signature(cls.__init__).parameters.values()
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


def config_changes(wanted: dict, found: dict, ignore: tuple[str, ...] = ()) -> list[str]:
    """The fields where a found config differs from the wanted one, each as "key found (the flags
    build wanted)", tuples and lists alike; `genhub_class` and the `ignore` keys aside."""

    def comparable(config: dict) -> dict:
        skip = (CLASS_KEY, *ignore)
        return {key: list(value) if isinstance(value, tuple) else value for key, value in config.items() if key not in skip}

    wanted, found = comparable(wanted), comparable(found)
    return [f"{key} {found.get(key)!r} (the flags build {wanted.get(key)!r})" for key in sorted(wanted.keys() | found.keys())
            if wanted.get(key) != found.get(key)]  # fmt: skip


def load_model(source, **kwargs) -> HubModel:
    """Load any genhub model, picking its class from config.json's `genhub_class`."""
    source = str(source)
    config = read_config(source, **{k: v for k, v in kwargs.items() if k in HUB_DOWNLOAD_KWARGS})
    class_name = config.get(CLASS_KEY)
    if class_name not in MODEL_CLASSES:
        raise ModelLoadError(f"{source!r}: config.json names no known genhub class ({class_name!r}); known: {sorted(MODEL_CLASSES)}")
    return MODEL_CLASSES[class_name].from_pretrained(source, **kwargs)


def load_hub_model(repo_id: str, **kwargs) -> HubModel:
    """Load a genhub model from the Hub (or the Hub cache offline), never from a local folder of
    the same name: what a public app's "load from the Hub" box needs."""
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(repo_id, allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, "README.md"],
                                   **{k: v for k, v in kwargs.items() if k in HUB_DOWNLOAD_KWARGS})  # fmt: skip
    except Exception as error:
        raise ModelLoadError(_explain_load_error(HubModel, repo_id, error)) from error
    model = load_model(folder, **{k: v for k, v in kwargs.items() if k not in HUB_DOWNLOAD_KWARGS})
    model.source_folder = Path(folder)  # where its card is, for the Space's comparison
    return model


def push_folder(folder, repo_id: str, *, private: bool = False, token: str | None = None) -> str:
    """Upload a saved model folder (weights, config, card, sample images) to `repo_id`.

    Raises PushError with what to do when there is no token or no network; the folder
    itself is never touched.
    """
    from huggingface_hub import HfApi, get_token

    token = token or get_token()
    if hub_constants.is_offline_mode():
        raise PushError(f"HF_HUB_OFFLINE is set, so nothing was pushed. The model is saved in {folder}.")
    if not token:
        raise PushError(f"No Hugging Face token: run `hf auth login` or set HF_TOKEN, then push again. The model is saved in {folder}.")
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message="Upload genhub model")
    except Exception as error:  # network errors come in many types (requests, httpx, HfHubHTTPError)
        raise PushError(f"Push to {repo_id} failed ({type(error).__name__}: {error}). The model is saved in {folder}.") from error
    return str(getattr(commit, "commit_url", repo_id))


def check_truncation(truncation) -> float | None:
    """None (no truncation) or a finite threshold t > 0."""
    if truncation is None:
        return None
    if isinstance(truncation, bool) or not isinstance(truncation, (int, float)) or not math.isfinite(truncation) or truncation <= 0:
        raise ValueError(f"truncation must be a positive number (the threshold t of |z| <= t) or None, got {truncation!r}")
    return float(truncation)


def standard_normal(shape, generator: torch.Generator | None = None, truncation: float | None = None) -> torch.Tensor:
    """Standard normal noise of `shape`, on the CPU, drawn from `generator`.

    With `truncation` t, every entry is drawn from N(0, 1) conditioned on |z| <= t (the truncation
    trick of BigGAN, Brock et al. 2019) by inverting the CDF: z = Phi^-1(u) with
    u ~ U(Phi(-t), Phi(t)). One uniform per entry, so no rejection loop, however small t is.
    The truncated normal has mean 0 and variance 1 - 2 t phi(t) / (2 Phi(t) - 1).
    """
    truncation = check_truncation(truncation)
    if truncation is None:
        return torch.randn(shape, generator=generator)
    low = torch.special.ndtr(torch.tensor(-truncation, dtype=torch.float64))
    u = low + (1 - 2 * low) * torch.rand(shape, generator=generator, dtype=torch.float64)
    return torch.special.ndtri(u).clamp(-truncation, truncation).float()


def check_count(n) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of samples must be a positive integer, got {n!r}")
