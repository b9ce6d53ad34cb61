import numpy as np
import pytest
import tifffile
from PIL import Image
from scipy.io import savemat

from seglab.config import load_config
from seglab.data.prepare import prepare_data
from seglab.data.readers import clear_cache, load_samples
from seglab.errors import SeglabError


@pytest.fixture(autouse=True)
def _no_cache():
    clear_cache()
    yield
    clear_cache()


def test_mask_pattern_matches_suffixed_masks(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for i in range(3):
        Image.fromarray(np.full((20, 20), 40 * i, np.uint8)).save(tmp_path / "images" / f"a{i}.jpg")
        mask = np.zeros((20, 20), np.uint8)
        mask[:5] = 255
        Image.fromarray(mask).save(tmp_path / "masks" / f"a{i}_mask.png")
    cfg = load_config(
        None, ["data.source=folder", f"data.root={tmp_path}", "data.mask_pattern={stem}_mask"]
    )
    samples = load_samples(cfg.data)
    assert [s.name for s in samples] == ["a0", "a1", "a2"]
    assert samples[0].mask.sum() == 100
    assert [(s.group, s.index) for s in samples] == [("a", 0), ("a", 1), ("a", 2)]


def test_tiff_stack_gives_one_sample_per_slice(tmp_path):
    images = np.random.default_rng(0).integers(0, 255, (5, 24, 20), dtype=np.uint8)
    masks = np.zeros((5, 24, 20), np.uint8)
    masks[:, 4:10] = 255
    tifffile.imwrite(tmp_path / "vol.tif", images)
    tifffile.imwrite(tmp_path / "vol_gt.tif", masks)
    cfg = load_config(
        None,
        [
            "data.source=tiff_stack",
            f"data.root={tmp_path}",
            "data.image_stack=vol.tif",
            "data.mask_stack=vol_gt.tif",
        ],
    )
    samples = load_samples(cfg.data)
    assert len(samples) == 5 and samples[3].index == 3 and samples[3].group == "vol"
    assert samples[2].image.shape == (1, 24, 20)
    np.testing.assert_allclose(samples[2].image[0], images[2] / 255.0, atol=1e-6)
    assert samples[0].mask.sum() == 6 * 20


def _cube(h, w, bands, seed):
    rng = np.random.default_rng(seed)
    labels = np.zeros((h, w), np.uint8)
    labels[2:6, 3:7] = 1
    return rng.integers(-100, 3000, (h, w, bands)).astype(np.int16), labels


def test_mat_and_npz_cubes_with_keys_bands_and_tiles(tmp_path):
    data, labels = _cube(16, 16, 7, 0)
    savemat(tmp_path / "s1.mat", {"data": data, "map": labels})
    data2, labels2 = _cube(16, 16, 8, 1)
    np.savez(tmp_path / "s2.npz", data=data2, map=labels2)
    base = ["data.source=cube", f"data.root={tmp_path}", "data.cube_glob=s*"]
    with pytest.raises(SeglabError, match="model.in_channels"):
        prepare_data(load_config(None, [*base, "data.tile_size=8"]))  # 7 and 8 bands
    cfg = load_config(None, [*base, "data.cube_bands=7", "data.tile_size=8", "model.in_channels=7"])
    samples = load_samples(cfg.data)
    assert len(samples) == 8 and samples[0].name == "s1_r0c0" and samples[0].group == "s1"
    assert samples[0].image.shape == (7, 8, 8)
    np.testing.assert_array_equal(samples[0].image[:, 0, 0], data[0, 0, :7])
    assert sum(int(s.mask.sum()) for s in samples if s.group == "s1") == 16
    data_check = prepare_data(cfg)
    assert len(data_check.normalization["mean"]) == 7


def test_cube_with_a_wrong_key_names_the_keys(tmp_path):
    data, labels = _cube(8, 8, 3, 0)
    np.savez(tmp_path / "c.npz", cube=data, labels=labels)
    cfg = load_config(None, ["data.source=cube", f"data.root={tmp_path}", "data.cube_glob=*.npz"])
    with pytest.raises(SeglabError, match=r"no array 'data' \(it has: cube, labels\)"):
        load_samples(cfg.data)
