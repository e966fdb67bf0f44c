"""Fréchet distance: closed forms, pytorch-fid's own function, streaming statistics, caching."""

import numpy as np
import pytest
import torch
from pytorch_fid.fid_score import calculate_frechet_distance

from mmgan.gan import metrics as fid


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
    assert ours == pytest.approx(calculate_frechet_distance(r1.mu, r1.sigma, r2.mu, r2.sigma), rel=1e-8)


@pytest.mark.parametrize(("dim", "samples"), [(64, 1000), (256, 300), (512, 2000)])
def test_the_eigenvalue_trace_matches_pytorch_fid_on_random_statistics(dim, samples):
    """Full-rank and rank-deficient (fewer samples than dimensions) covariances, correlated features."""
    rng = np.random.default_rng(dim)
    mix = rng.normal(size=(dim, dim)) / np.sqrt(dim)
    a = rng.normal(size=(samples, dim)) @ mix
    b = (rng.normal(size=(samples, dim)) * 1.3 + 0.2) @ mix
    stats = []
    for features in (a, b):
        running = fid.RunningStatistics(dim)
        running.update(features)
        stats.append(running.result())
    (m1, s1), (m2, s2) = ((s.mu, s.sigma) for s in stats)
    assert fid.frechet_distance(m1, s1, m2, s2) == pytest.approx(calculate_frechet_distance(m1, s1, m2, s2), rel=1e-6)


def test_the_eigenvalue_trace_matches_pytorch_fid_on_real_statistics():
    """The digits classifier's features of the digits against those of a generator-like blur of them."""
    from mmgan.gan.data import digits

    torch.set_default_dtype(torch.float32)  # the engine's dtype (conftest's default is float64)
    extractor = fid.DigitsExtractor(16, 1)
    images = digits(16, 1)
    real = fid.batch_statistics(extractor, iter(images.split(300)), "cpu")
    blurred = torch.nn.functional.avg_pool2d(images, 3, 1, 1)
    fake = fid.batch_statistics(extractor, iter(blurred.split(128)), "cpu", extract_batch=256)
    ours = fid.frechet_distance(real.mu, real.sigma, fake.mu, fake.sigma)
    assert ours == pytest.approx(calculate_frechet_distance(real.mu, real.sigma, fake.mu, fake.sigma), rel=1e-6)
    assert ours > 1.0


def test_singular_covariances_are_fine_and_a_non_covariance_is_refused():
    sigma = np.zeros((3, 3))
    assert fid.frechet_distance(np.zeros(3), sigma, np.ones(3), sigma) == pytest.approx(3.0)
    bad = np.array([[1.0, 2.0], [2.0, 1.0]])  # indefinite: not a covariance
    with pytest.raises(ValueError, match="sigma1 is not a covariance matrix"):
        fid.frechet_distance(np.zeros(2), bad, np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="sigma2 is not a covariance matrix"):
        fid.frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), bad)


def test_features_are_regrouped_for_the_extractor():
    batches = [torch.arange(n * 2.0).reshape(n, 2) + 100 * k for k, n in enumerate((3, 7, 1, 4))]
    regrouped = list(fid.rebatched(iter(batches), 5))
    assert [len(b) for b in regrouped] == [5, 5, 5]
    assert torch.equal(torch.cat(regrouped), torch.cat(batches))
    assert [len(b) for b in fid.rebatched(iter(batches), 100)] == [15]


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

    from mmgan.gan import metrics as fid

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


def test_the_slabbed_covariance_is_the_sample_covariance():
    """Upper-triangle slabs (the last one partial) and batches of any size give numpy's covariance."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(700, fid.SLAB + 44)) @ rng.normal(size=(fid.SLAB + 44, fid.SLAB + 44)) + 3.0
    running = fid.RunningStatistics(x.shape[1])
    for batch in np.array_split(x, [100, 101, 450]):
        running.update(batch)
    result = running.result()
    np.testing.assert_allclose(result.mu, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(result.sigma, np.cov(x, rowvar=False), rtol=1e-10, atol=1e-10)
    assert result.n == 700 and np.array_equal(result.sigma, result.sigma.T)


@pytest.mark.parametrize("offset", [1e4, 1e5])
def test_a_large_mean_offset_costs_no_digits(offset):
    """Features far from the origin (here 1e4 or 1e5 times their spread) give pytorch-fid's statistics and distance.

    A one-pass covariance, E[xxᵀ] − μμᵀ, cancels offset² against the spread: at 1e5 it was off by 2e-5 here
    (and by more on 2048-d features, where the distance refused the result as no covariance). Tolerances:
    absolute 1e-6 for μ and Σ (in units of the features' spread, whose entries are of order 1), relative 1e-6
    for the distance (about 15 here)."""
    rng = np.random.default_rng(0)
    mix = rng.normal(size=(64, 64)) / 8
    drawn = (rng.normal(size=(300, 64)) @ mix + offset, (rng.normal(size=(300, 64)) * 1.2 + 0.3) @ mix + offset)
    ours, theirs = [], []
    for features in drawn:
        running = fid.RunningStatistics(64)
        for batch in np.array_split(features, [100, 101]):
            running.update(batch)
        ours.append(running.result())
        theirs.append((np.mean(features, axis=0), np.cov(features, rowvar=False)))
    for stats, (mu, sigma) in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(stats.mu, mu, rtol=0, atol=1e-6)
        np.testing.assert_allclose(stats.sigma, sigma, rtol=0, atol=1e-6)
    (m1, s1), (m2, s2) = theirs
    expected = calculate_frechet_distance(m1, s1, m2, s2)
    distance = fid.frechet_distance(ours[0].mu, ours[0].sigma, ours[1].mu, ours[1].sigma)
    assert distance == pytest.approx(expected, rel=1e-6)
