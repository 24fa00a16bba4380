import json
import os

import pytest
import torch

from showo_sdk.errors import CheckpointError
from showo_sdk.model.showo_io import load_showo, read_config, save_pretrained


def _official_dir(tmp_path, model, cfg, fmt="safetensors"):
    ckpt, phi = tmp_path / "show-o", tmp_path / "phi"
    ckpt.mkdir()
    phi.mkdir()
    t, lay = cfg.transformer, cfg.layout
    (ckpt / "config.json").write_text(json.dumps({
        "_class_name": "Showo", "_diffusers_version": "0.30.1", "codebook_size": lay.codebook_size,
        "llm_model_path": "microsoft/phi-1_5", "llm_vocab_size": lay.text_vocab_size, "load_from_showo": False,
        "mask_token_id": lay.mask_id, "num_vq_tokens": cfg.num_image_tokens, "vocab_size": lay.vocab_size,
        "w_clip_vit": False}))
    (phi / "config.json").write_text(json.dumps({
        "model_type": "phi", "hidden_size": t.hidden_size, "num_hidden_layers": t.num_layers,
        "num_attention_heads": t.num_heads, "intermediate_size": t.intermediate_size,
        "partial_rotary_factor": t.partial_rotary_factor, "rope_theta": t.rope_theta,
        "layer_norm_eps": t.layer_norm_eps, "max_position_embeddings": t.max_position_embeddings,
        "qk_layernorm": True, "hidden_act": "gelu_new", "vocab_size": 51200, "bos_token_id": lay.bos_id}))
    state = model.state_dict()
    if fmt == "bin":
        torch.save(state, ckpt / "pytorch_model.bin")
    else:
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in state.items()}, str(ckpt / "pytorch_model.safetensors"))
    return ckpt, phi


def _same(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_round_trip_bit_exact(tmp_path, tiny_model, tiny_cfg):
    save_pretrained(tiny_model, tmp_path / "ours", tiny_cfg)
    loaded = load_showo(tmp_path / "ours")
    assert _same(loaded, tiny_model) and loaded.showo_config == tiny_cfg and loaded.checkpoint_layout == "showo-sdk"
    ids = torch.randint(0, tiny_cfg.layout.vocab_size, (1, 7))
    with torch.no_grad():
        assert torch.equal(loaded(ids), tiny_model(ids))
    assert not loaded.training


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_official_layout_loads(tmp_path, tiny_model, tiny_cfg, fmt):
    ckpt, phi = _official_dir(tmp_path, tiny_model, tiny_cfg, fmt)
    loaded = load_showo(ckpt, llm_config=phi)
    assert loaded.checkpoint_layout == "official" and _same(loaded, tiny_model)
    cfg = loaded.showo_config
    assert cfg.layout == tiny_cfg.layout and cfg.transformer == tiny_cfg.transformer
    assert cfg.image_grid == tiny_cfg.image_grid


def test_official_without_phi_config_warns_and_checks_shapes(tmp_path, tiny_model, tiny_cfg):
    ckpt, _ = _official_dir(tmp_path, tiny_model, tiny_cfg)
    with pytest.warns(UserWarning, match="phi-1.5 sizes"):
        with pytest.raises(CheckpointError, match="bos_id|shape mismatches|missing keys"):
            load_showo(ckpt)


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_pickle_payload_never_runs(tmp_path, tiny_model, tiny_cfg):
    ckpt, phi = _official_dir(tmp_path, tiny_model, tiny_cfg, "bin")
    marker = tmp_path / "pwned"
    payload = _Payload()
    payload.path = marker
    state = dict(tiny_model.state_dict())
    state["evil"] = payload
    torch.save(state, ckpt / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="refused"):
        load_showo(ckpt, llm_config=phi)
    assert not marker.exists()


def test_missing_unexpected_and_shape_errors(tmp_path, tiny_model, tiny_cfg):
    from safetensors.torch import save_file

    save_pretrained(tiny_model, tmp_path / "c", tiny_cfg)
    state = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    del state["showo.lm_head.bias"]
    state["extra.weight"] = torch.zeros(1)
    state["showo.model.final_layernorm.weight"] = torch.zeros(3)
    save_file(state, str(tmp_path / "c" / "model.safetensors"))
    with pytest.raises(CheckpointError) as err:
        load_showo(tmp_path / "c")
    msg = str(err.value)
    assert "showo.lm_head.bias" in msg and "extra.weight" in msg and "final_layernorm.weight" in msg


def test_layout_errors(tmp_path, tiny_model, tiny_cfg):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_showo(tmp_path / "nope")
    (tmp_path / "x").mkdir()
    with pytest.raises(CheckpointError, match="missing"):
        load_showo(tmp_path / "x")
    (tmp_path / "x" / "config.json").write_text('{"hello": 1}')
    with pytest.raises(CheckpointError, match="neither"):
        read_config(tmp_path / "x")
    save_pretrained(tiny_model, tmp_path / "y", tiny_cfg)
    (tmp_path / "y" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no weights"):
        load_showo(tmp_path / "y")
    ckpt, phi = _official_dir(tmp_path, tiny_model, tiny_cfg)
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["vocab_size"] += 1
    (ckpt / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="vocab_size"):
        load_showo(ckpt, llm_config=phi)


def test_save_is_atomic_over_existing(tmp_path, tiny_model, tiny_cfg):
    save_pretrained(tiny_model, tmp_path / "c", tiny_cfg)
    before = (tmp_path / "c" / "model.safetensors").read_bytes()

    class Boom(Exception):
        pass

    class BadTok:
        def save(self, path):
            raise Boom()

    with pytest.raises(Boom):
        save_pretrained(tiny_model, tmp_path / "c", tiny_cfg, tokenizer=BadTok())
    assert (tmp_path / "c" / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]
