"""The Space's memorisation view: neighbour indexes (genhub.space.neighbours) and the
`neighbours` action, on the real shared data and the shipped indexes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from genhub.images import to_unit_range
from genhub.space import app_logic as logic
from genhub.space import neighbours

WEIGHTS = Path(__file__).resolve().parents[1] / "weights"


@pytest.fixture(scope="module")
def svhn_index():
    return neighbours.build_index("svhn", (3, 32, 32), size=200, reference_size=50)


def test_an_indexed_training_image_is_its_own_nearest_neighbour(svhn_index):
    train, held_out, split = neighbours.training_split("svhn", (3, 32, 32))
    assert len(train) + len(held_out) == 1083 and "held-out" in split  # svhn has no test split: 10% held out
    assert len(svhn_index.features) == 200 and len(svhn_index.reference) == 50
    position = int(svhn_index.positions[17])
    query = neighbours.feature_function((3, 32, 32))(to_unit_range(train[position : position + 1]))
    distances, positions = svhn_index.nearest(query[0], k=3)
    assert int(positions[0]) == position and float(distances[0]) < 1e-3
    assert float(distances[1]) > 0.5 * float(svhn_index.reference.median())  # a different image is far


def test_index_round_trip_and_a_corrupt_file_names_itself(svhn_index, tmp_path):
    path = svhn_index.save(tmp_path / "svhn.safetensors")
    loaded = neighbours.load_index(path)
    assert loaded.dataset == "svhn" and loaded.image_shape == (3, 32, 32) and loaded.total == svhn_index.total
    torch.testing.assert_close(loaded.features, svhn_index.features, atol=1e-2, rtol=1e-3)  # stored in float16
    assert torch.equal(loaded.positions, svhn_index.positions)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="svhn.safetensors is not a genhub neighbour index"):
        neighbours.load_index(path)


def test_every_bundled_model_has_a_shipped_index():
    registry = logic.ModelRegistry.from_environment(WEIGHTS, hub_ids="")
    assert registry.models
    for key in registry.models:
        index = logic.model_index(registry, key)
        assert index is not None, key
        assert tuple(index.image_shape) == tuple(registry.get(key).image_shape)


def test_neighbours_of_a_bundled_digit_model():
    registry = logic.ModelRegistry.from_environment(WEIGHTS, hub_ids="")
    picture, rows, message = logic.neighbours(registry, "bundled:dcgan-mnist", 0, 5)
    assert [row[0] for row in rows] == [1, 2, 3, 4, 5]
    distances = [row[2] for row in rows]
    assert distances == sorted(distances) and distances[0] > 0
    assert picture.width > 5 * picture.height  # the sample and its five neighbours in a row (the data loads here)
    assert "held-out real image" in message and "the median distance" in message
    with pytest.raises(logic.AppInputError, match="Neighbours must be a whole number"):
        logic.neighbours(registry, "bundled:dcgan-mnist", 0, 99)
