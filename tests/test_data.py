import numpy as np
import pytest
import torch
from PIL import Image

from genhub import DatasetError, load_images
from genhub.data import prepare_image


def test_mnist_by_name_resolves_through_data_dir(data_dir, monkeypatch):
    monkeypatch.setenv("GENHUB_DATA_DIR", str(data_dir))
    data = load_images("mnist", split="test", limit=100)
    assert data.images.shape == (100, 1, 28, 28) and data.images.dtype == torch.uint8
    assert data.labels.tolist()[:5] == [7, 2, 1, 0, 4]  # the official t10k order


def test_local_folder_resize_and_channels(data_dir):
    faces = load_images(data_dir / "anime_faces", limit=8, image_size=32, channels=1)
    assert faces.images.shape == (8, 1, 32, 32)
    assert faces.labels is None
    rgb_digits = load_images(data_dir / "mnist", split="test", limit=4, channels=3)
    assert rgb_digits.images.shape == (4, 3, 28, 28)
    assert torch.equal(rgb_digits.images[:, 0], rgb_digits.images[:, 1])  # grey copied to every channel


def test_binarization(data_dir):
    digits = load_images(data_dir / "mnist", split="test", limit=50, binarize=True)
    assert set(digits.images.unique().tolist()) == {0, 255}
    binarized = load_images("binarized-mnist", split="validation", limit=50)  # binarized by default
    assert set(binarized.images.unique().tolist()) <= {0, 255}


def test_image_folder_with_rgba_and_odd_sizes(tmp_path):
    Image.new("RGBA", (40, 20), (255, 0, 0, 0)).save(tmp_path / "transparent.png")
    Image.new("RGB", (20, 40), (0, 0, 255)).save(tmp_path / "tall.png")
    data = load_images(tmp_path, image_size=16, channels=3)
    assert data.images.shape == (2, 3, 16, 16)
    colours = {tuple(image[:, 8, 8].tolist()) for image in data.images}
    assert colours == {(255, 255, 255), (0, 0, 255)}  # transparency composited on white


def test_cache_returns_the_same_tensor(data_dir, tmp_path):
    first = load_images(data_dir / "svhn_sample", limit=20, cache_dir=tmp_path)
    assert list((tmp_path / "images").glob("*.pt"))
    second = load_images(data_dir / "svhn_sample", limit=20, cache_dir=tmp_path)
    assert torch.equal(first.images, second.images)


def test_two_processes_filling_the_same_cache_at_once_both_succeed(data_dir, tmp_path, monkeypatch):
    # Benchmark workers load the same data at once. Replay the race in one process: while this
    # load writes its temporary file, "another process" (another pid) saves and publishes the
    # same cache entry; each must have used a temporary file of its own.
    import genhub.data

    real_save, real_getpid = torch.save, genhub.data.os.getpid
    other_process_done = []

    def save_then_let_the_other_process_finish(obj, path):
        real_save(obj, path)
        if not other_process_done:
            other_process_done.append(True)
            monkeypatch.setattr(genhub.data.os, "getpid", lambda: real_getpid() + 1)
            load_images(data_dir / "svhn_sample", limit=20, cache_dir=tmp_path)
            monkeypatch.setattr(genhub.data.os, "getpid", real_getpid)

    monkeypatch.setattr(genhub.data.torch, "save", save_then_let_the_other_process_finish)
    data = load_images(data_dir / "svhn_sample", limit=20, cache_dir=tmp_path)
    assert other_process_done and data.images.shape[0] == 20
    assert [path.suffix for path in (tmp_path / "images").iterdir()] == [".pt"]  # no temporary file left behind


def test_prepare_image_center_crops_before_resizing():
    array = np.zeros((10, 30), dtype=np.uint8)
    array[:, 10:20] = 255  # a white square in the middle of a wide image
    image = prepare_image(Image.fromarray(array), 10, 1)
    assert np.asarray(image).min() == 255


def test_unknown_name_lists_what_is_accepted():
    with pytest.raises(DatasetError, match="Accepted dataset names") as error:
        load_images("mnsit")
    assert "binarized-mnist" in str(error.value) and "anime-faces" in str(error.value)


def test_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="holds no parquet"):
        load_images(tmp_path)


def test_unreadable_image_is_a_clear_error(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"not an image")
    with pytest.raises(DatasetError):
        load_images(tmp_path)


def test_missing_split_names_the_splits(data_dir):
    with pytest.raises(DatasetError, match="has no split 'validation'"):
        load_images(data_dir / "mnist", split="validation")


def test_hub_id_offline_fails_with_a_hint():
    with pytest.raises(DatasetError, match="could not be reached"):
        load_images("someone/no-such-dataset")


def test_bad_options():
    with pytest.raises(DatasetError, match="channels"):
        load_images("mnist", channels=2)
