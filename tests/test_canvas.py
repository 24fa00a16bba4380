import numpy as np
import pytest

from showo_sdk.canvas import bicubic_resize, extrapolate_canvas, inpaint_canvas, mask_to_grid, merge_extrapolation
from showo_sdk.errors import InputError

K = 100


def test_bicubic_matches_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).random((2, 64, 48), dtype=np.float32)
    for size in ((16, 16), (4, 12), (80, 50)):
        want = torch.nn.functional.interpolate(torch.from_numpy(x)[:, None], size=size, mode="bicubic")[:, 0]
        assert np.abs(bicubic_resize(x, size) - want.numpy()).max() < 1e-5


def test_mask_to_grid_and_inpaint():
    m = np.zeros((64, 64), np.float32)
    m[:, 32:] = 1.0
    grid = mask_to_grid(m, (4, 4))
    assert grid[:, 2:].all() and not grid[:, :2].any()
    codes = np.arange(32).reshape(2, 16)
    canvas = inpaint_canvas(codes, grid, K)
    assert (canvas[:, grid.ravel()] == K).all() and (canvas[:, ~grid.ravel()] == codes[:, ~grid.ravel()]).all()
    with pytest.raises(InputError):
        inpaint_canvas(codes, np.zeros((3, 3), bool), K)
    with pytest.raises(InputError):
        mask_to_grid(np.zeros((4, 4, 3)), (2, 2))


@pytest.mark.parametrize("direction", ["left", "right", "up", "down"])
@pytest.mark.parametrize("offset", [0, 2])
def test_extrapolation_layout(direction, offset):
    h = w = 8
    codes = np.arange(64).reshape(1, 64)
    img = codes.reshape(8, 8)
    keep = w // 2 - offset
    canvas = extrapolate_canvas(codes, (h, w), direction, offset, K).reshape(8, 8)
    assert (canvas == K).sum() == 8 * (8 - keep)
    gen = np.where(canvas == K, 99, canvas)  # pretend the model filled MASK with 99
    out = merge_extrapolation(gen.reshape(1, -1), codes, (h, w), direction, offset)[0]
    grow = 8 - keep
    if direction in ("left", "right"):
        assert out.shape == (8, 8 + grow)
        part = out[:, grow:] if direction == "left" else out[:, :8]
    else:
        assert out.shape == (8 + grow, 8)
        part = out[grow:] if direction == "up" else out[:8]
    np.testing.assert_array_equal(part, img)  # the original survives intact, in place
    assert (out == 99).sum() == 8 * grow


def test_extrapolation_bad_args():
    with pytest.raises(InputError, match="direction"):
        extrapolate_canvas(np.zeros((1, 64), np.int64), (8, 8), "sideways", 0, K)
    with pytest.raises(InputError, match="offset"):
        extrapolate_canvas(np.zeros((1, 64), np.int64), (8, 8), "left", 4, K)
