"""Fréchet distance: closed forms, pytorch-fid's own function, streaming statistics, caching."""

import numpy as np
import pytest
import torch
from pytorch_fid.fid_score import calculate_frechet_distance

from mmgan import fid


def test_equal_covariances_give_squared_mean_distance():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 6))
    sigma = a @ a.T + np.eye(6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    assert fid.frechet_distance(mu1, sigma, mu2, sigma) == pytest.approx(np.sum((mu1 - mu2) ** 2), rel=1e-8)


def test_diagonal_gaussians_closed_form():
    s1, s2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    expected = np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2) + 3.0  # means differ by (1, 1, 1)
    assert fid.frechet_distance(np.zeros(3), np.diag(s1), np.ones(3), np.diag(s2)) == pytest.approx(expected)


def test_matches_pytorch_fid_on_the_same_features():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(400, 16)), rng.normal(size=(300, 16)) * 1.2 + 0.3
    s1, s2 = fid.RunningStatistics(16), fid.RunningStatistics(16)
    for chunk in np.array_split(a, 7):
        s1.update(chunk)
    s2.update(b)
    r1, r2 = s1.result(), s2.result()
    np.testing.assert_allclose(r1.mu, a.mean(0))
    np.testing.assert_allclose(r1.sigma, np.cov(a, rowvar=False), atol=1e-10)
    ours = fid.frechet_distance(r1.mu, r1.sigma, r2.mu, r2.sigma)
    assert ours == pytest.approx(calculate_frechet_distance(r1.mu, r1.sigma, r2.mu, r2.sigma), rel=1e-10)


def test_singular_covariance_falls_back_and_complex_residue_raises():
    sigma = np.zeros((3, 3))
    assert np.isfinite(fid.frechet_distance(np.zeros(3), sigma, np.ones(3), sigma))
    bad = np.array([[1.0, 2.0], [2.0, 1.0]])  # indefinite: the square root has a large imaginary part
    with pytest.raises(ValueError, match="imaginary component"):
        fid.frechet_distance(np.zeros(2), bad, np.zeros(2), np.eye(2))


def test_statistics_warn_below_recommended_samples_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MMGAN_CACHE", str(tmp_path))

    class Identity(fid.Extractor):
        name, dim, recommended_samples = "identity", 4, 50

        def forward(self, x):
            return x.flatten(1)[:, :4]

    images = torch.randn(20, 1, 2, 2)
    with pytest.warns(UserWarning, match="below the 50 recommended"):
        first = fid.dataset_statistics(Identity(), images, "toy")
    assert list((tmp_path / "stats").glob("toy-identity-*.npz"))
    second = fid.dataset_statistics(Identity(), images, "toy")  # read back from the cache, no warning
    np.testing.assert_array_equal(first.sigma, second.sigma)


def test_generator_statistics_stream_in_batches():
    class Mean(fid.Extractor):
        name, dim, recommended_samples = "mean", 2, 2

        def forward(self, x):
            return x[:, :2]

    stats = fid.generator_statistics(lambda z: z, Mean(), n=1000, z_dim=3, batch_size=64, seed=0)
    assert stats.n == 1000
    np.testing.assert_allclose(stats.mu, 0, atol=0.1)
    np.testing.assert_allclose(stats.sigma, np.eye(2), atol=0.15)


def test_the_digits_classifier_is_a_function_of_its_seed_alone(tmp_path, monkeypatch):
    import torch

    from mmgan import fid

    trained = []
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)  # the engine's dtype
    try:
        for k, folder in enumerate(("a", "b")):
            monkeypatch.setenv("MMGAN_CACHE", str(tmp_path / folder))
            torch.manual_seed(100 + k)  # a different global random state before each training
            torch.rand(k + 1)
            model, accuracy = fid.train_digits_classifier(8, 1, epochs=1)
            trained.append((model.state_dict(), accuracy))
    finally:
        torch.set_default_dtype(default)
    (first, accuracy_a), (second, accuracy_b) = trained
    assert accuracy_a == accuracy_b and all(torch.equal(first[k], second[k]) for k in first)
