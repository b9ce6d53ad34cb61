import numpy as np
import pytest
from PIL import Image

from seglab.config import load_config
from seglab.data.prepare import prepare_data
from seglab.data.readers import read_folder
from seglab.data.split import split_names
from seglab.errors import SeglabError


def folder_config(root, *extra):
    return load_config(None, ["data.source=folder", f"data.root={root}", *extra])


def test_folder_reader_matches_masks_by_stem(folder_dataset):
    cfg = folder_config(folder_dataset)
    samples = read_folder(cfg.data)
    assert [s.name for s in samples] == ["img0", "img1", "img2", "img3"]
    s = samples[0]
    assert s.image.shape == (1, 40, 32) and s.image.dtype == np.float32
    assert 0.0 <= s.image.min() and s.image.max() <= 1.0
    assert s.mask.dtype == np.int64 and set(np.unique(s.mask)) == {0, 1}
    assert s.mask.sum() == 10 * 15


def test_rgb_images_have_three_channels(folder_dataset):
    path = folder_dataset / "images" / "img0.png"
    Image.fromarray(np.zeros((40, 32, 3), dtype=np.uint8)).save(path)
    samples = read_folder(folder_config(folder_dataset).data)
    assert samples[0].image.shape == (3, 40, 32)
    with pytest.raises(SeglabError, match=r"images have \[1, 3\] channel"):
        prepare_data(folder_config(folder_dataset))


def test_missing_mask_names_the_image(folder_dataset):
    (folder_dataset / "masks" / "img2.png").unlink()
    with pytest.raises(SeglabError, match="no mask for image img2.png"):
        read_folder(folder_config(folder_dataset).data)


def test_mask_of_the_wrong_size_names_both_files(folder_dataset):
    Image.fromarray(np.zeros((10, 10), dtype=np.uint8)).save(folder_dataset / "masks" / "img1.png")
    with pytest.raises(SeglabError, match="mask img1.png is 10x10 but image img1.png is 32x40"):
        read_folder(folder_config(folder_dataset).data)


def test_unreadable_image_is_named(folder_dataset):
    (folder_dataset / "images" / "img3.png").write_bytes(b"not a png")
    with pytest.raises(SeglabError, match="cannot read image .*img3.png"):
        read_folder(folder_config(folder_dataset).data)


def test_missing_folders_are_named(tmp_path):
    with pytest.raises(SeglabError, match="data.root: folder not found"):
        read_folder(folder_config(tmp_path / "nowhere").data)
    (tmp_path / "images").mkdir()
    with pytest.raises(SeglabError, match="data.masks_dir: folder not found"):
        read_folder(folder_config(tmp_path).data)


def test_split_is_seeded_disjoint_and_complete():
    names = [f"n{i}" for i in range(20)]
    cfg = load_config()
    a = split_names(names, cfg.data.split, seed=1)
    assert a == split_names(names, cfg.data.split, seed=1)
    assert a != split_names(names, cfg.data.split, seed=2)
    assert sorted(a["train"] + a["val"] + a["test"]) == sorted(names)
    assert (len(a["train"]), len(a["val"]), len(a["test"])) == (14, 3, 3)
    small = split_names(names[:3], cfg.data.split, seed=0)
    assert all(len(v) == 1 for v in small.values())


def test_normalization_comes_from_the_training_split_only(tiny_config):
    data = prepare_data(tiny_config)
    train_mean = np.mean([s.image.mean() for s in data.train])
    assert data.normalization["mean"][0] == pytest.approx(train_mean, rel=1e-5)
