import pytest

from showo_sdk.config import ShowoConfig, TokenLayout, TransformerConfig, VQConfig
from showo_sdk.errors import ConfigError


def test_official_layout_ids():
    lay = TokenLayout()
    assert (lay.pad_id, lay.soi_id, lay.eoi_id, lay.t2i_id, lay.mmu_id) == (50295, 50296, 50297, 50300, 50301)
    assert (lay.codebook_offset, lay.mask_id, lay.vocab_size) == (50305, 58497, 58498)
    assert lay.bos_id == lay.eos_id == 50256


def test_layout_derived_not_hardcoded():
    lay = TokenLayout(text_vocab_size=100, codebook_size=16, bos_id=3)
    assert lay.codebook_offset == 110 and lay.mask_id == 126 and lay.vocab_size == 127


def test_official_sizes():
    cfg = ShowoConfig()
    assert cfg.text_block_len == 129 and cfg.t2i_seq_len == 387 and cfg.num_image_tokens == 256
    assert cfg.transformer.head_dim == 64 and cfg.transformer.rotary_dim == 32
    assert VQConfig().grid == 16 and VQConfig().codebook_size == 8192


@pytest.mark.parametrize("cfg", [ShowoConfig(), TokenLayout(7, 4, 1), TransformerConfig(), VQConfig()])
def test_json_round_trip(cfg, tmp_path):
    assert type(cfg).from_json(cfg.to_json()) == cfg
    cfg.save(tmp_path / "c.json")
    assert type(cfg).load(tmp_path / "c.json") == cfg


def test_bad_configs():
    with pytest.raises(ConfigError, match="unknown keys"):
        TokenLayout.from_dict({"nope": 1})
    with pytest.raises(ConfigError, match="vocab_size"):
        ShowoConfig(transformer=TransformerConfig(vocab_size=10))
    with pytest.raises(ConfigError, match="divisible"):
        TransformerConfig(hidden_size=30, num_heads=4)
    with pytest.raises(ConfigError, match="invalid JSON"):
        ShowoConfig.from_json("{")
