"""Discovered directions (SeFa, GANSpace, classifier-guided), GAN inversion and the comparison's
card metrics, on small models with hand-checkable properties."""

import torch

from genhub import GenDCGAN, GenVAE, GenWGAN, load_evaluator
from genhub.space.compare import card_metrics, metrics_table
from genhub.space.directions import classifier_direction, classifier_path, first_linear, ganspace, move, sefa
from genhub.space.inversion import invert


def test_sefa_directions_are_the_top_singular_vectors_of_the_first_layer():
    torch.manual_seed(0)
    model = GenDCGAN(latent_dim=12, width=4)
    directions = sefa(model, k=5)
    assert directions.shape == (5, 12)
    assert torch.allclose(directions @ directions.T, torch.eye(5), atol=1e-5)  # orthonormal
    weight = first_linear(model).weight.detach()
    gains = (weight @ directions.T).norm(dim=0)
    singular = torch.linalg.svdvals(weight)[:5]
    assert torch.allclose(gains, singular, rtol=1e-4)  # ||A n_k|| is the k-th singular value, strongest first
    random = torch.nn.functional.normalize(torch.randn(100, 12), dim=1)
    assert gains[0] >= (weight @ random.T).norm(dim=0).max()


def test_ganspace_directions_follow_the_activations_main_axis():
    torch.manual_seed(0)
    model = GenWGAN(latent_dim=8, architecture="mlp", hidden_dims=(32,))
    directions = ganspace(model, k=3, samples=3000)
    assert directions.shape == (3, 8) and torch.allclose(directions.norm(dim=1), torch.ones(3), atol=1e-5)
    layer = first_linear(model)
    z = model.sample_latent(500, seed=1)

    def spread(direction):  # how far the activations move along a unit step in z
        before = torch.relu(layer(z))
        after = torch.relu(layer(z + direction))
        return (after - before).norm(dim=1).mean()

    with torch.no_grad():
        assert spread(directions[0]) > spread(torch.nn.functional.normalize(torch.randn(8), dim=0)) * 0.9
    assert sefa(model, 3).shape == (3, 8) and ganspace(model, 3, samples=500, seed=0).shape == (3, 8)


def test_classifier_direction_raises_the_chosen_digit():
    classifier = load_evaluator("mnist")
    torch.manual_seed(0)
    model = GenDCGAN(latent_dim=16, width=8)
    z = model.sample_latent(1, seed=3)[0]
    direction = classifier_direction(model, classifier, z, digit=3)
    assert direction.shape == (16,) and abs(direction.norm().item() - 1) < 1e-5
    with torch.no_grad():
        codes = move(z, direction, [0, 0.05])
        scores = classifier(model.eval().decode(codes).clamp(0, 1)).log_softmax(-1)[:, 3]
    assert scores[1] > scores[0]


def test_classifier_path_climbs_towards_the_digit():
    classifier = load_evaluator("mnist")
    torch.manual_seed(0)
    model = GenDCGAN(latent_dim=16, width=8)
    z = model.sample_latent(1, seed=3)[0]
    path = classifier_path(model, classifier, z, digit=3, length=1.0, step=0.25)
    assert path.shape == (9, 16) and torch.equal(path[4], z)
    assert torch.allclose((path[5] - path[4]).norm(), torch.tensor(0.25), atol=1e-5)
    with torch.no_grad():
        scores = classifier(model.eval().decode(path).clamp(0, 1)).log_softmax(-1)[:, 3]
    assert scores[-1] > scores[4] > scores[0]  # towards 3 one way, away from it the other


def test_inversion_finds_a_code_that_redraws_a_generated_image():
    torch.manual_seed(0)
    model = GenDCGAN(latent_dim=8, width=8).eval()
    target = model.sample(1, seed=5)[0]
    far = ((model.sample(1, seed=6)[0] - target) ** 2).mean().item()
    result = invert(model, target, starts=4, steps=300, max_seconds=20, lr=0.05)
    assert result.pixel_error < 0.3 * far and result.image.shape == target.shape and result.z.shape == (8,)
    quick = invert(model, target, starts=2, steps=10_000, max_seconds=0.3)
    assert quick.seconds < 1.5 and quick.steps < 10_000  # bounded in time


def test_a_vae_starts_inversion_from_its_encoder():
    torch.manual_seed(0)
    vae = GenVAE(latent_dim=4, hidden_dims=(32,))
    image = torch.rand(1, 28, 28)
    result = invert(vae, image, starts=1, steps=1, max_seconds=5)
    with torch.no_grad():
        encoded = vae.decode(vae.encode(image.unsqueeze(0))[0]).clamp(0, 1)
    assert abs(result.pixel_error - ((encoded - image) ** 2).mean().item()) < 0.05


def test_compare_reads_the_metrics_cards_already_carry(tmp_path):
    from pathlib import Path

    weights = Path(__file__).resolve().parent.parent / "weights"
    a, b = card_metrics(weights / "dcgan-mnist"), card_metrics(weights / "wgan-gp-mnist")
    assert any("Fréchet" in label for label in a) and any("Fréchet" in label for label in b)
    rows = metrics_table(a, b)
    assert rows[0][0] in a and all(len(row) == 3 for row in rows)
    assert card_metrics(tmp_path) == {}
