import os

# Before anything imports huggingface_hub or datasets, which read these once at import.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path:
    return Path(os.environ.get("GENHUB_DATA_DIR", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    folder = shared_data_dir()
    if not (folder / "mnist").is_dir():
        pytest.skip(f"real data not found at {folder}; set GENHUB_DATA_DIR to the shared data folder")
    return folder


@pytest.fixture(autouse=True)
def _offline_and_isolated(monkeypatch, tmp_path_factory):
    """Tests never reach the network, and write caches to a temporary folder."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("GENHUB_CACHE", str(tmp_path_factory.getbasetemp() / "genhub-cache"))
    torch.manual_seed(0)


def script(name: str):
    """train/<name>.py as a namespace of its functions (runpy: run as a file, as users run it,
    never imported as a module), so a test can call its `main(argv)` and `parse_args(argv)`."""
    import runpy
    from types import SimpleNamespace

    return SimpleNamespace(**runpy.run_path(str(REPO / "train" / f"{name}.py"), run_name=f"train_{name}"))


def bad_image_file(path: Path, kind: str) -> Path:
    """A file a careless or hostile user uploads: "text", "truncated" (half a PNG of noise), or
    "too many pixels" (a valid 20-megapixel PNG)."""
    import io

    import numpy as np
    from PIL import Image

    if kind == "text":
        path.write_text("this is not an image")
    elif kind == "truncated":
        buffer = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, "PNG")
        path.write_bytes(buffer.getvalue()[:300])
    elif kind == "too many pixels":
        Image.new("L", (5000, 4000)).save(path)
    else:
        raise ValueError(kind)
    return path
