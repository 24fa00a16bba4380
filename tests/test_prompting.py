import numpy as np
import pytest

from showo_sdk.config import ShowoConfig
from showo_sdk.errors import InputError
from showo_sdk.prompting import IGNORE_INDEX, Prompting


def test_t2i_official_lengths():
    cfg = ShowoConfig()
    p = Prompting(cfg)
    ids = p.t2i_ids([[10, 11, 12]])
    assert ids.shape == (1, 387)
    lay = cfg.layout
    assert ids[0, :123].tolist() == [lay.pad_id] * 123
    assert ids[0, 123:129].tolist() == [lay.t2i_id, 50256, 10, 11, 12, 50256]
    assert ids[0, 129] == lay.soi_id and ids[0, -1] == lay.eoi_id
    assert (ids[0, 130:-1] == lay.mask_id).all()


def test_t2i_block_exact():
    cfg = ShowoConfig()
    p = Prompting(cfg)
    block = p.t2i_text_block([7, 8])
    assert len(block) == 129
    assert block[-5:] == [cfg.layout.t2i_id, 50256, 7, 8, 50256]


def test_null_prompt():
    cfg = ShowoConfig()
    ids = Prompting(cfg).t2i_null_ids(2)
    assert ids[0, :129].tolist() == [50295] * 126 + [50300, 50256, 50256]
    assert (ids[0] == ids[1]).all()


def test_truncation_and_bos_not_doubled():
    cfg = ShowoConfig()
    p = Prompting(cfg)
    long = list(range(1, 300))
    block = p.t2i_text_block(long)
    assert len(block) == 129 and block[0] == cfg.layout.t2i_id and block[1] == 50256
    assert block[-1] == 50256 and block[2:-1] == long[:126]
    assert p.t2i_text_block([50256, 5])[-3:] == [50256, 5, 50256]


def test_image_part_and_known_codes():
    cfg = ShowoConfig()
    p = Prompting(cfg)
    codes = np.full((1, 256), 8192)
    codes[0, :3] = [0, 1, 8191]
    ids = p.t2i_ids([[1]], codes)
    assert ids[0, 130:133].tolist() == [50305, 50306, 58496] and ids[0, 133] == 58497
    with pytest.raises(InputError):
        p.t2i_ids([[1]], np.full((1, 256), 8193))
    with pytest.raises(InputError):
        p.t2i_ids([[1]], np.zeros((1, 255), dtype=np.int64))


def test_mmu_layout():
    cfg = ShowoConfig()
    p = Prompting(cfg)
    codes = np.arange(256)[None] % 8192
    ids = p.mmu_ids(codes, [5, 6, 7])
    assert ids.shape == (1, 2 + 256 + 2 + 3)
    assert ids[0, :2].tolist() == [50301, 50296] and ids[0, 258:260].tolist() == [50297, 50256]
    assert ids[0, 2] == 50305 and ids[0, -3:].tolist() == [5, 6, 7]
    assert p.mmu_ids(np.stack([codes[0], codes[0]]), [[1, 2], [3, 4]]).shape == (2, 262)


def test_mmu_train_and_lm_labels():
    cfg = ShowoConfig()
    p = Prompting(cfg)
    ids, labels = p.mmu_train_ids(np.zeros((1, 256), dtype=np.int64), [[9, 10]])
    assert ids.shape == (1, 2 + 256 + 1 + 128)
    text = ids[0, 259:]
    assert text[:4].tolist() == [50256, 9, 10, 50256] and (text[4:] == 50295).all()
    assert (labels[0, :259] == IGNORE_INDEX).all() and labels[0, 259:263].tolist() == [50256, 9, 10, 50256]
    assert (labels[0, 263:] == IGNORE_INDEX).all()
    lm, lm_labels = p.lm_ids([[4, 5]], 6)
    assert lm.tolist() == [[50256, 4, 5, 50256, 50295, 50295]]
    assert lm_labels.tolist() == [[50256, 4, 5, 50256, IGNORE_INDEX, IGNORE_INDEX]]


def test_t2i_train_labels():
    cfg = ShowoConfig()
    p = Prompting(cfg)
    target = np.arange(256)[None]
    canvas = target.copy()
    canvas[0, ::2] = 8192
    ids = p.t2i_ids([[3]], canvas)
    labels = p.t2i_train_labels(ids, target)
    assert (labels[0, :129] == IGNORE_INDEX).all()
    assert labels[0, 129] == 50296 and labels[0, -1] == 50297
    assert labels[0, 130] == 50305 and labels[0, 131] == IGNORE_INDEX


def test_bad_text_ids():
    p = Prompting(ShowoConfig())
    with pytest.raises(InputError, match="outside the text vocabulary"):
        p.t2i_ids([[50300]])
    with pytest.raises(InputError, match="tokenizer"):
        p.t2i(["hello"])


def test_mmu_qa_rows_label_only_the_answer():
    cfg = ShowoConfig()
    p = Prompting(cfg)
    ids, labels = p.mmu_train_ids(np.zeros((1, 256), dtype=np.int64), [[40, 41]], prompt_ids=[[30, 31, 32]])
    text = ids[0, 259:]
    assert text[:7].tolist() == [50256, 30, 31, 32, 40, 41, 50256] and (text[7:] == 50295).all()
    lab = labels[0, 259:]
    assert lab[:4].tolist() == [IGNORE_INDEX] * 4 and lab[4:7].tolist() == [40, 41, 50256]
    assert (lab[7:] == IGNORE_INDEX).all()
    with pytest.raises(InputError, match="one text"):
        p.mmu_train_ids(np.zeros((2, 256), dtype=np.int64), [[1]])


def test_t2i_block_start_is_the_first_column_any_row_needs():
    cfg = ShowoConfig()
    p = Prompting(cfg)
    cond, null = p.t2i_ids([[10, 11, 12]]), p.t2i_null_ids(1)
    t = cfg.text_block_len
    assert p.t2i_block_start(cond[:, :t]) == 123  # [t2i, bos, 10, 11, 12, eos]
    assert p.t2i_block_start(null[:, :t]) == 126  # [t2i, bos, eos]
    both = np.concatenate([cond, null])[:, :t]
    assert p.t2i_block_start(both) == 123
    assert (both[:, :123] == cfg.layout.pad_id).all()
    full = p.t2i_ids([list(range(200))])[:, :t]  # truncated: no PAD at all
    assert p.t2i_block_start(full) == 0
    all_pad = np.full((2, t), cfg.layout.pad_id)
    assert p.t2i_block_start(all_pad) == t - 1  # at least one column stays
