import numpy as np
import pytest
from PIL import Image

from showo_sdk.errors import InputError
from showo_sdk.imageio import load_image, preprocess, preprocess_mask, resize_center_crop, to_uint8


def test_preprocess_range_and_shape(tmp_path):
    arr = np.zeros((40, 60, 3), np.uint8)
    arr[:, :30] = 255
    Image.fromarray(arr).save(tmp_path / "a.png")
    x = preprocess(tmp_path / "a.png", 32)
    assert x.shape == (3, 32, 32) and x.dtype == np.float32 and x.min() >= -1 and x.max() <= 1
    assert x[:, :, 0].mean() > 0.9 and x[:, :, -1].mean() < -0.9


def test_center_crop_matches_torchvision_rounding():
    im = Image.new("RGB", (100, 50))
    out = resize_center_crop(im, 25)
    assert out.size == (25, 25)


def test_mask_converted_to_one_channel():
    m = np.zeros((16, 16, 3), np.uint8)
    m[:8] = 255
    x = preprocess_mask(m, 16)
    assert x.shape == (16, 16) and x[:8].min() == 1.0 and x[8:].max() == 0.0


def test_to_uint8_truncates_like_upstream():
    px = np.array([[[[-2.0, -1.0, 0.0, 0.999, 1.0, 5.0]]]], np.float32).repeat(3, 1)
    out = to_uint8(px)
    assert out.shape == (1, 1, 6, 3) and out[0, 0, :, 0].tolist() == [0, 0, 127, 254, 255, 255]


@pytest.mark.parametrize("bad", [np.zeros((4, 4, 5), np.uint8), np.zeros((4, 4), np.int32), 3, "missing.png",
                                 np.zeros((0, 4, 3), np.uint8)])
def test_bad_images(bad):
    with pytest.raises(InputError):
        load_image(bad)


def test_unreadable_file(tmp_path):
    (tmp_path / "x.png").write_bytes(b"garbage")
    with pytest.raises(InputError, match="cannot read image"):
        load_image(tmp_path / "x.png")


def test_extreme_aspect_is_refused():
    import numpy as _np
    import pytest as _pytest
    from PIL import Image as _Image

    from showo_sdk.errors import InputError as _InputError
    from showo_sdk.imageio import MAX_ASPECT, resize_center_crop as _rcc

    assert _rcc(_Image.fromarray(_np.zeros((1, MAX_ASPECT, 3), _np.uint8)), 16).size == (16, 16)
    with _pytest.raises(_InputError, match="elongated"):
        _rcc(_Image.fromarray(_np.zeros((1, 10**6, 3), _np.uint8)), 64)


def test_decompression_bomb_is_an_input_error(tmp_path, monkeypatch):
    import numpy as _np
    import pytest as _pytest
    from PIL import Image as _Image

    from showo_sdk.errors import InputError as _InputError
    from showo_sdk.imageio import load_image as _load

    path = tmp_path / "big.png"
    _Image.fromarray(_np.zeros((64, 64, 3), _np.uint8)).save(path)
    monkeypatch.setattr(_Image, "MAX_IMAGE_PIXELS", 100)  # 64*64 > 2 * 100: PIL raises DecompressionBombError
    with _pytest.raises(_InputError, match="decompression bomb"):
        _load(path)
