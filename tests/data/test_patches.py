import numpy as np
import pytest

from seglab.config import NormalizeConfig
from seglab.data.datasets import PatchDataset
from seglab.data.normalize import fit_normalization, normalize
from seglab.data.samples import Sample


def sparse_samples(n=4, side=200):
    """Images with 1% foreground: one 20 x 20 square in a 200 x 200 image."""
    out = []
    for i in range(n):
        mask = np.zeros((side, side), np.int64)
        mask[30 + 20 * i : 50 + 20 * i, 100:120] = 1
        image = np.random.default_rng(i).random((1, side, side), dtype=np.float32)
        out.append(Sample(f"s{i}", image, mask))
    return out


@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.5])
def test_foreground_oversampling_gives_the_requested_fraction(fraction):
    samples = sparse_samples()
    assert all(abs(s.foreground_fraction - 0.01) < 1e-9 for s in samples)
    stats = fit_normalization(samples)
    ds = PatchDataset(samples, stats, 32, 400, seed=0, foreground_oversample=fraction)
    centred = 0
    with_fg = 0
    for i in range(len(ds)):
        _, mask = ds[i]
        with_fg += int(mask.any())
        centred += int(mask[16, 16] == 1)
    # patches centred on foreground: exactly the requested share (random crops rarely hit)
    assert centred / len(ds) >= fraction
    assert centred / len(ds) <= fraction + 0.05
    assert with_fg / len(ds) >= fraction


def test_patch_schedule_is_fixed_by_seed_and_epoch():
    samples = sparse_samples(2)
    stats = fit_normalization(samples)
    a = PatchDataset(samples, stats, 32, 10, seed=3, foreground_oversample=0.5)
    b = PatchDataset(samples, stats, 32, 10, seed=3, foreground_oversample=0.5)
    assert all((a[i][0] == b[i][0]).all() for i in range(10))
    b.set_epoch(1)
    assert not all((a[i][0] == b[i][0]).all() for i in range(10))


@pytest.mark.parametrize("method", ["zscore", "minmax", "percentile", "none"])
def test_normalisation_methods_use_training_statistics(method):
    rng = np.random.default_rng(0)
    image = np.stack([rng.normal(10, 2, (30, 30)), rng.normal(-5, 0.5, (30, 30))])
    train = [Sample("a", image.astype(np.float32), np.zeros((30, 30), np.int64))]
    stats = fit_normalization(train, NormalizeConfig(method=method))
    out = normalize(train[0].image, stats)
    assert out.dtype == np.float32 and out.shape == image.shape
    if method == "zscore":
        np.testing.assert_allclose(out.mean(axis=(1, 2)), 0, atol=1e-4)
        np.testing.assert_allclose(out.std(axis=(1, 2)), 1, atol=1e-3)
    elif method == "minmax":
        np.testing.assert_allclose(out.min(axis=(1, 2)), 0, atol=1e-5)
        np.testing.assert_allclose(out.max(axis=(1, 2)), 1, atol=1e-5)
    elif method == "percentile":
        assert out.min() == 0 and out.max() == 1
        assert 0.005 < (out == 0).mean() < 0.03  # ~1% clipped at each end
    else:
        np.testing.assert_array_equal(out, image.astype(np.float32))


def test_global_normalisation_shares_one_statistic():
    image = np.stack([np.zeros((4, 4)), np.ones((4, 4)) * 2]).astype(np.float32)
    stats = fit_normalization(
        [Sample("a", image, np.zeros((4, 4), np.int64))], NormalizeConfig(per_channel=False)
    )
    assert len(stats["mean"]) == 1 and stats["mean"][0] == pytest.approx(1.0)
