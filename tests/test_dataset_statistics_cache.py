"""The cache of dataset statistics is keyed by the images' content and the extractor's weights."""

import copy

import numpy as np
import pytest
import torch

from mmgan.gan import metrics as fid


class Counting(fid.Extractor):
    """A linear feature map that counts the images it is asked for."""

    name, dim, recommended_samples = "counting", 3, 2

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 3)
        with torch.no_grad():
            gen = torch.Generator().manual_seed(seed)
            self.linear.weight.copy_(torch.randn(3, 4, generator=gen))
            self.linear.bias.copy_(torch.randn(3, generator=gen))
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.linear(x.flatten(1).to(self.linear.weight.dtype))


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MMGAN_CACHE", str(tmp_path))


def _images(seed: int) -> torch.Tensor:
    return torch.randn(60, 1, 2, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)


def test_different_images_of_the_same_shape_and_key_get_their_own_statistics(tmp_path):
    extractor = Counting()
    first = fid.dataset_statistics(extractor, _images(0), "digits-8px-1ch", batch_size=25)
    second = fid.dataset_statistics(extractor, _images(1) * 2 + 1, "digits-8px-1ch", batch_size=25)
    assert not np.allclose(first.mu, second.mu)
    assert not np.allclose(first.sigma, second.sigma)
    fresh = fid.batch_statistics(extractor, iter((_images(1) * 2 + 1).split(25)), "cpu")
    np.testing.assert_allclose(second.mu, fresh.mu)
    np.testing.assert_allclose(second.sigma, fresh.sigma)
    names = sorted(path.name for path in (tmp_path / "stats").glob("*.npz"))
    assert len(names) == 2 and all(name.startswith("digits-8px-1ch-counting-") for name in names), names


def test_same_images_hit_the_cache_and_one_changed_pixel_misses():
    extractor = Counting()
    images = _images(0)
    first = fid.dataset_statistics(extractor, images, "toy", batch_size=25)
    assert extractor.calls == 3
    again = fid.dataset_statistics(extractor, images.clone(), "toy", batch_size=25)  # same content, new tensor
    assert extractor.calls == 3
    np.testing.assert_array_equal(first.sigma, again.sigma)
    as_view = images.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)  # same values, other memory layout
    fid.dataset_statistics(extractor, as_view, "toy", batch_size=25)
    assert extractor.calls == 3
    changed = images.clone()
    changed[41, 0, 1, 0] += 0.5  # one pixel of one image
    moved = fid.dataset_statistics(extractor, changed, "toy", batch_size=25)
    assert extractor.calls == 6
    assert not np.array_equal(first.mu, moved.mu)


def test_changed_extractor_weights_miss_the_cache():
    extractor = Counting()
    images = _images(0)
    first = fid.dataset_statistics(extractor, images, "toy", batch_size=30)
    twin = copy.deepcopy(extractor)  # equal weights in other tensors: a hit
    fid.dataset_statistics(twin, images, "toy", batch_size=30)
    assert twin.calls == extractor.calls == 2
    with torch.no_grad():
        extractor.linear.weight.mul_(2.0)  # changed in place
    doubled = fid.dataset_statistics(extractor, images, "toy", batch_size=30)
    assert extractor.calls == 4
    np.testing.assert_allclose(doubled.mu - 2 * first.mu, -extractor.linear.bias.detach().numpy(), rtol=1e-5,
                               atol=1e-5)
    other = Counting(seed=1)  # other weights, same name and architecture
    fid.dataset_statistics(other, images, "toy", batch_size=30)
    assert other.calls == 2
    other.load_state_dict(twin.state_dict())  # now equal to the first weights: a hit again
    fid.dataset_statistics(other, images, "toy", batch_size=30)
    assert other.calls == 2


def test_fingerprints_see_every_value_but_not_the_memory_layout():
    images = _images(0)
    digest = fid.images_fingerprint(images)
    assert fid.images_fingerprint(images.clone()) == digest
    assert fid.images_fingerprint(images, chunk_bytes=16) == digest  # chunking does not matter
    for index in (0, 137, images.numel() - 1):
        changed = images.clone().reshape(-1)
        changed[index] = changed[index] + 1e-3
        assert fid.images_fingerprint(changed.reshape(images.shape)) != digest
    assert fid.images_fingerprint(images.reshape(60, 4)) != digest  # the shape is part of it
    extractor = Counting()
    weights = fid.extractor_fingerprint(extractor)
    assert fid.extractor_fingerprint(copy.deepcopy(extractor)) == weights
    with torch.no_grad():
        extractor.linear.bias[0] += 1
    assert fid.extractor_fingerprint(extractor) != weights
