import numpy as np
import pytest
from PIL import Image

from seglab.config import DataConfig
from seglab.data.files import read_array
from seglab.data.labels import to_class_map


def cfg(**kw):
    return DataConfig(**kw)


def test_8bit_mask_is_thresholded_at_127():
    mask = np.array([[0, 127, 128, 255]], dtype=np.uint8)
    assert to_class_map(mask, cfg()).tolist() == [[0, 0, 1, 1]]


def test_16bit_mask_threshold_scales_with_the_bit_depth(tmp_path):
    mask = np.array([[0, 200, 30000, 40000, 65535]], dtype=np.uint16)
    Image.fromarray(mask).save(tmp_path / "m.png")
    read = read_array(tmp_path / "m.png")
    assert read.dtype == np.uint16
    assert to_class_map(read, cfg()).tolist() == [[0, 0, 0, 1, 1]]


def test_1bit_and_zero_one_masks_are_taken_as_they_are(tmp_path):
    Image.fromarray(np.array([[0, 1, 1, 0]], dtype=bool)).save(tmp_path / "b.png")
    read = read_array(tmp_path / "b.png")
    assert read.dtype == bool
    assert to_class_map(read, cfg()).tolist() == [[0, 1, 1, 0]]
    assert to_class_map(np.array([[0, 1]], dtype=np.uint8), cfg()).tolist() == [[0, 1]]


def test_jpeg_mask_grey_levels_are_thresholded(tmp_path):
    yy, xx = np.mgrid[:32, :32]
    mask = (((yy - 15.5) ** 2 + (xx - 13.3) ** 2) < 81).astype(np.uint8) * 255
    Image.fromarray(mask).save(tmp_path / "m.jpg", quality=60)
    read = read_array(tmp_path / "m.jpg")
    assert len(np.unique(read)) > 2  # lossy: grey levels appear
    labels = to_class_map(read, cfg())
    assert set(np.unique(labels)) == {0, 1}
    assert abs(int(labels.sum()) - int(mask.sum() // 255)) < 12


def test_class_values_map_and_unknown_values_become_ignore():
    mask = np.array([[0, 255, 7]], dtype=np.uint8)
    out = to_class_map(mask, cfg(class_values={0: 1, 255: 0}, ignore_index=99))
    assert out.tolist() == [[1, 0, 99]]


def test_palette_maps_colours_to_classes():
    rgb = np.zeros((1, 3, 3), dtype=np.uint8)
    rgb[0, 1] = (255, 0, 0)
    rgb[0, 2] = (0, 0, 255)
    out = to_class_map(rgb, cfg(palette=[[0, 0, 0], [255, 0, 0], [0, 255, 0]]))
    assert out.tolist() == [[0, 1, 255]]


def test_background_as_ignore_shifts_classes_down():
    labels = np.array([[0, 1, 2, 3]], dtype=np.uint8)
    out = to_class_map(labels, cfg(mask_mode="index", background_as_ignore=True))
    assert out.tolist() == [[255, 0, 1, 2]]


def test_palette_and_class_values_together_are_rejected():
    with pytest.raises(ValueError, match="not both"):
        cfg(class_values={0: 0}, palette=[[0, 0, 0]])
