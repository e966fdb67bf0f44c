import math

import pytest
import torch

from mmgan.table1.swiss_roll import STANDARDIZED, swiss_roll


@pytest.mark.parametrize("dim", [2, 3])
def test_shapes_labels_and_geometry(dim):
    x, y = swiss_roll(500, dim=dim, seed=3)
    assert x.shape == (1000, dim) and y.shape == (1000,)
    assert set(y.tolist()) == {1.0, -1.0} and (y[:500] == 1).all()
    planar = x[:, [0, -1]]
    radius = planar.norm(dim=1)
    lo, hi = 1.5 * math.pi, 4.5 * math.pi
    assert radius[:500].min() >= lo - 1e-9 and radius[:500].max() <= hi + 1e-9
    assert radius[500:].min() >= 1.5 * lo - 1e-9 and radius[500:].max() <= 1.5 * hi + 1e-9
    if dim == 3:
        assert 0 <= x[:500, 1].min() and x[:500, 1].max() <= 21
        assert x[500:, 1].max() > 21  # the whole roll is scaled, height included


def test_deterministic_and_scaled():
    a, _ = swiss_roll(50, seed=1)
    b, _ = swiss_roll(50, seed=1)
    c, _ = swiss_roll(50, scale=0.5, seed=1)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(c, 0.5 * a)
    assert not torch.equal(a, swiss_roll(50, seed=2)[0])


def test_standardized_has_unit_pooled_std():
    x, _ = swiss_roll(20_000, scale=STANDARDIZED, seed=7)
    assert x.std().item() == pytest.approx(1.0, rel=0.02)


def test_noise_moves_points():
    a, _ = swiss_roll(100, seed=0)
    b, _ = swiss_roll(100, seed=0, noise=0.5)
    assert 0.2 < (a - b).std().item() < 0.8


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(dim=4), "dim"), (dict(scale=-1.0), "scale"), (dict(scale="unit"), "scale"),
    (dict(noise=-0.1), "noise"), (dict(seed=1.5), "seed"),
])
def test_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        swiss_roll(10, **kwargs)
    with pytest.raises(ValueError, match="n"):
        swiss_roll(0)
