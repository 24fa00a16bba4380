import numpy as np

from showo_sdk.config import TokenLayout
from showo_sdk.masks import additive_mask, lm_attention_mask, mmu_attention_mask, t2i_attention_mask

LAY = TokenLayout()
PAD, T2I, BOS, SOI, EOI, IMG = LAY.pad_id, LAY.t2i_id, LAY.bos_id, LAY.soi_id, LAY.eoi_id, LAY.mask_id

SPEC_ROWS = """1000000000 1100000000 0010000000 0011000000 0011100000
0011110000 0011111111 0011111111 0011111111 0011111111""".split()


def test_t2i_mask_matches_spec_example():
    ids = np.array([[PAD, PAD, T2I, BOS, 7, BOS, SOI, IMG, IMG, EOI]])
    m = t2i_attention_mask(ids, LAY)
    want = np.array([[c == "1" for c in row] for row in SPEC_ROWS])
    assert m.shape == (1, 10, 10) and m.dtype == bool
    np.testing.assert_array_equal(m[0], want)


def test_t2i_mask_batched_rows_independent():
    a = [PAD, PAD, T2I, BOS, 7, BOS, SOI, IMG, IMG, EOI]
    b = [PAD, T2I, BOS, 7, 8, BOS, SOI, IMG, IMG, EOI]
    m = t2i_attention_mask(np.array([a, b]), LAY)
    np.testing.assert_array_equal(m[0], t2i_attention_mask(np.array([a]), LAY)[0])
    assert m[1, 6].tolist() == [False] + [True] * 9  # image row: all but the one PAD
    assert m.any(axis=2).all()  # no empty row


def test_mmu_mask():
    ids = np.array([[LAY.mmu_id, SOI, 1, 2, EOI, BOS, 5, 6]])
    m = mmu_attention_mask(ids, LAY)[0]
    assert m[:, :5].all()  # everyone sees the image prefix
    assert m[5].tolist() == [True] * 6 + [False] * 2
    assert m[7].all()
    assert not m[1, 5]


def test_lm_and_additive():
    m = lm_attention_mask(np.zeros((2, 4), dtype=np.int64))
    assert (m[0] == np.tril(np.ones((4, 4), bool))).all()
    add = additive_mask(m)
    assert add.dtype == np.float32 and add[0, 0, 1] == np.float32(np.iinfo(np.int64).min) and add[0, 1, 0] == 0
