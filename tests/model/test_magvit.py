"""MAGVIT-v2 tokenizer: LFQ bit layout, encode/decode contracts, official architecture, bad inputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from showo_sdk.config import VQConfig
from showo_sdk.errors import ConfigError, InputError
from showo_sdk.model.magvit import LFQuantizer, MagvitV2, VQOutput

# Three levels with different block counts per level, so a wrong level order or block count shows.
TINY = VQConfig(base_channels=8, encoder_ch_mult=(1, 2, 2), encoder_num_res_blocks=(1, 2, 1),
                decoder_ch_mult=(1, 1, 2), decoder_num_res_blocks=(2, 1, 1), codebook_bits=6,
                resolution=32, norm_groups=4)


@pytest.fixture(scope="module")
def vq() -> MagvitV2:
    torch.manual_seed(0)
    return MagvitV2(TINY).eval()


@pytest.fixture(scope="module")
def pixels() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.rand(2, 3, 16, 24) * 2 - 1  # (B, 3, H, W), grid 4 x 6


# ---------------------------------------------------------------- LFQ

def test_lfq_13_bit_spec_codes() -> None:
    q = LFQuantizer(13)
    last_only = torch.full((1, 13, 1, 1), -0.5)
    last_only[0, 12] = 0.5
    first_only = torch.full((1, 13, 1, 1), -0.5)
    first_only[0, 0] = 0.5
    assert q.codes(last_only).tolist() == [[1]]
    assert q.codes(first_only).tolist() == [[4096]]
    assert q.embedding.shape == (8192, 13) and q.embedding.dtype == torch.float32
    assert q.embedding[1].tolist() == [-1.0] * 12 + [1.0]
    assert q.embedding[4096].tolist() == [1.0] + [-1.0] * 12
    assert q.embedding[0].tolist() == [-1.0] * 13 and q.embedding[8191].tolist() == [1.0] * 13
    assert q.power_vals.dtype == torch.int64
    assert q.power_vals.tolist() == [2 ** (12 - c) for c in range(13)]


@pytest.mark.parametrize("bits", [1, 6, 8])
def test_lfq_all_codes_round_trip(bits: int) -> None:
    q = LFQuantizer(bits)
    k = 2 ** bits
    want = [[1.0 if (code >> (bits - 1 - c)) & 1 else -1.0 for c in range(bits)] for code in range(k)]
    assert q.embedding.tolist() == want
    codes = torch.arange(k).view(1, 1, k)  # (B, h, w)
    latent = q.lookup(codes)  # (B, bits, h, w)
    assert latent.shape == (1, bits, 1, k)
    assert torch.equal(q.codes(latent), torch.arange(k).view(1, k))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-5, 5, allow_nan=False, width=32), min_size=6, max_size=6))
def test_lfq_code_is_weighted_bit_sum(values: list[float]) -> None:
    z = torch.tensor(values).view(1, 6, 1, 1)
    want = sum(2 ** (5 - c) for c, v in enumerate(values) if v > 0)  # zero counts as bit 0
    assert LFQuantizer(6).codes(z).tolist() == [[want]]


def test_lfq_codes_are_row_major() -> None:
    q = LFQuantizer(4)
    codes = torch.arange(12).view(1, 3, 4)  # (B, h, w): code = 4 * row + col
    assert q.codes(q.lookup(codes)).tolist() == [list(range(12))]


def test_quantize_losses_match_official_formulation() -> None:
    torch.manual_seed(2)
    z = torch.randn(2, 6, 3, 5, requires_grad=True)
    out = LFQuantizer(6).quantize(z)
    # The official LFQuantizer: per-bit Categorical over logits -(z-1)^2, -(z+1)^2.
    flat = z.detach().permute(0, 2, 3, 1).reshape(-1, 6)
    dist = torch.distributions.Categorical(logits=torch.stack([-(flat - 1) ** 2, -(flat + 1) ** 2], -1))
    codebook = torch.distributions.Categorical(probs=dist.probs.mean(0))
    want_entropy = dist.entropy().mean() - codebook.entropy().mean()
    hard = torch.where(z.detach() > 0, 1.0, -1.0)
    want_commit = 1.25 * ((hard - z.detach()) ** 2).mean()
    torch.testing.assert_close(out.entropy_loss, want_entropy, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.commit_loss, want_commit, rtol=1e-5, atol=1e-6)
    assert torch.equal(out.z_q.detach(), hard)
    assert torch.equal(out.codes, LFQuantizer(6).codes(z.detach()))
    # Straight-through: d(sum(w * z_q))/dz == w.
    w = torch.randn_like(z)
    (grad,) = torch.autograd.grad((out.z_q * w).sum(), z)
    assert torch.equal(grad, w)


def test_quantize_recovers_codes_of_codebook_latents(vq: MagvitV2) -> None:
    codes = torch.randint(0, TINY.codebook_size, (3, 4, 5))  # (B, h, w)
    latent = vq.quantize.lookup(codes) * 0.7  # any positive scale keeps the signs
    assert torch.equal(vq.quantize.quantize(latent).codes, codes.flatten(1))
    assert torch.equal(vq.quantize.codes(latent), codes.flatten(1))


# ---------------------------------------------------------------- encode / decode

def test_encode_codes_shape_dtype_range(vq: MagvitV2, pixels: torch.Tensor) -> None:
    with torch.no_grad():
        codes = vq.encode(pixels)
    assert codes.shape == (2, 4 * 6) and codes.dtype == torch.int64
    assert 0 <= int(codes.min()) and int(codes.max()) < TINY.codebook_size
    assert len(codes.unique()) > 1


def test_decode_shape_and_determinism(vq: MagvitV2, pixels: torch.Tensor) -> None:
    with torch.no_grad():
        codes = vq.encode(pixels)
        a = vq.decode(codes, grid=(4, 6))
        b = vq.decode(vq.encode(pixels), grid=(4, 6))
    assert a.shape == (2, 3, 16, 24) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert torch.isfinite(a).all()


def test_decode_square_grid_by_default(vq: MagvitV2) -> None:
    codes = torch.randint(0, TINY.codebook_size, (1, 9))
    with torch.no_grad():
        assert torch.equal(vq.decode(codes), vq.decode(codes, grid=(3, 3)))
        assert vq.decode(codes).shape == (1, 3, 12, 12)


def test_forward_returns_reconstruction_and_trainable_losses(vq: MagvitV2, pixels: torch.Tensor) -> None:
    model = MagvitV2(TINY)
    model.load_state_dict(vq.state_dict())
    out = model(pixels)
    assert isinstance(out, VQOutput)
    assert out.reconstruction.shape == pixels.shape
    assert torch.equal(out.codes, vq.encode(pixels))
    (out.reconstruction.square().mean() + out.commit_loss + out.entropy_loss).backward()
    assert model.encoder.conv_in.weight.grad is not None
    assert model.encoder.conv_in.weight.grad.abs().sum() > 0  # reaches the encoder through the STE


# ------------------------------------------------- independent functional reference of the forward

def _gn(x, sd, p):
    return F.group_norm(x, TINY.norm_groups, sd[p + ".weight"], sd[p + ".bias"], eps=1e-6)


def _conv(x, sd, p, stride=1, padding=1):
    return F.conv2d(x, sd[p + ".weight"], sd[p + ".bias"], stride=stride, padding=padding)


def _res(x, sd, p):
    h = _conv(F.silu(_gn(x, sd, p + ".norm1")), sd, p + ".conv1")
    h = _conv(F.silu(_gn(h, sd, p + ".norm2")), sd, p + ".conv2")
    skip = _conv(x, sd, p + ".nin_shortcut", padding=0) if p + ".nin_shortcut.weight" in sd else x
    return skip + h


def _attn(x, sd, p):
    b, c, hh, ww = x.shape
    y = _gn(x, sd, p + ".norm")
    q, k, v = (_conv(y, sd, f"{p}.{n}", padding=0).flatten(2).transpose(1, 2)[:, None] for n in "qkv")
    out = F.scaled_dot_product_attention(q, k, v)[:, 0].transpose(1, 2).reshape(b, c, hh, ww)
    return x + _conv(out, sd, p + ".proj_out", padding=0)


def _mid(x, sd, p):
    return _res(_attn(_res(x, sd, p + ".block_1"), sd, p + ".attn_1"), sd, p + ".block_2")


def _ref_encode(x, sd):
    h = _conv(x, sd, "encoder.conv_in")
    levels = len(TINY.encoder_ch_mult)
    for i in range(levels):
        for j in range(TINY.encoder_num_res_blocks[i]):
            h = _res(h, sd, f"encoder.down.{i}.block.{j}")
        if i != levels - 1:
            h = _conv(F.pad(h, (0, 1, 0, 1)), sd, f"encoder.down.{i}.downsample.conv", stride=2, padding=0)
    h = _mid(h, sd, "encoder.mid")
    h = _conv(F.silu(_gn(h, sd, "encoder.norm_out")), sd, "encoder.conv_out")
    return _conv(h, sd, "encoder.quant_conv", padding=0)


def _ref_decode(codes, sd):
    bits = TINY.codebook_bits
    shifts = torch.arange(bits - 1, -1, -1)
    z = (((codes[..., None] >> shifts) & 1) * 2 - 1).float().permute(0, 3, 1, 2)  # (B, bits, h, w)
    h = _conv(_conv(z, sd, "decoder.post_quant_conv", padding=0), sd, "decoder.conv_in")
    h = _mid(h, sd, "decoder.mid")
    for i in reversed(range(len(TINY.decoder_ch_mult))):
        for j in range(TINY.decoder_num_res_blocks[i]):
            h = _res(h, sd, f"decoder.up.{i}.block.{j}")
        if i != 0:
            h = _conv(F.interpolate(h, scale_factor=2.0, mode="nearest"), sd, f"decoder.up.{i}.upsample.conv")
    return _conv(F.silu(_gn(h, sd, "decoder.norm_out")), sd, "decoder.conv_out")


def test_matches_functional_reference(vq: MagvitV2, pixels: torch.Tensor) -> None:
    sd = vq.state_dict()
    with torch.no_grad():
        z = vq.encode_latents(pixels)
        torch.testing.assert_close(z, _ref_encode(pixels, sd), rtol=1e-4, atol=1e-5)
        codes = vq.encode(pixels)
        weights = torch.tensor([2 ** (5 - c) for c in range(6)]).view(1, 6, 1, 1)
        assert torch.equal(codes, ((z > 0).long() * weights).sum(1).flatten(1))
        out = vq.decode(codes, grid=(4, 6))
        torch.testing.assert_close(out, _ref_decode(codes.view(2, 4, 6), sd), rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- official architecture

OFFICIAL_KEYS = {
    "encoder.conv_in.weight": (128, 3, 3, 3),
    "encoder.down.0.block.3.norm1.weight": (128,),
    "encoder.down.1.block.0.nin_shortcut.weight": (256, 128, 1, 1),
    "encoder.down.3.block.0.nin_shortcut.weight": (512, 256, 1, 1),
    "encoder.down.3.downsample.conv.weight": (512, 512, 3, 3),
    "encoder.down.4.block.3.conv2.weight": (512, 512, 3, 3),
    "encoder.mid.block_1.conv1.weight": (512, 512, 3, 3),
    "encoder.mid.attn_1.q.weight": (512, 512, 1, 1),
    "encoder.mid.attn_1.proj_out.bias": (512,),
    "encoder.mid.block_2.norm2.bias": (512,),
    "encoder.norm_out.weight": (512,),
    "encoder.conv_out.weight": (13, 512, 3, 3),
    "encoder.quant_conv.weight": (13, 13, 1, 1),
    "decoder.post_quant_conv.weight": (13, 13, 1, 1),
    "decoder.conv_in.weight": (512, 13, 3, 3),
    "decoder.mid.attn_1.k.weight": (512, 512, 1, 1),
    "decoder.up.4.block.2.conv2.weight": (512, 512, 3, 3),
    "decoder.up.4.upsample.conv.weight": (512, 512, 3, 3),
    "decoder.up.3.block.0.nin_shortcut.weight": (256, 512, 1, 1),
    "decoder.up.1.block.0.nin_shortcut.weight": (128, 256, 1, 1),
    "decoder.up.1.upsample.conv.weight": (128, 128, 3, 3),
    "decoder.up.0.block.3.conv1.weight": (128, 128, 3, 3),
    "decoder.norm_out.bias": (128,),
    "decoder.conv_out.weight": (3, 128, 3, 3),
    "quantize.embedding": (8192, 13),
    "quantize.power_vals": (13,),
}
ABSENT = ["encoder.down.4.downsample.conv.weight", "decoder.up.0.upsample.conv.weight",
          "encoder.down.0.block.0.nin_shortcut.weight", "decoder.up.0.block.0.nin_shortcut.weight",
          "encoder.down.4.block.4.conv1.weight", "decoder.up.4.block.3.conv1.weight",
          "encoder.down.0.block.0.temb_proj.weight", "encoder.down.0.attn.0.q.weight"]


def test_official_default_architecture_on_meta() -> None:
    with torch.device("meta"):
        model = MagvitV2(VQConfig())
    n = sum(p.numel() for p in model.parameters())
    assert n == 95_387_004 and f"{n / 1e6:.2f}" == "95.39"
    sd = model.state_dict()
    assert len(sd) == 382
    assert all(k.split(".")[0] in ("encoder", "decoder", "quantize") for k in sd)
    for key, shape in OFFICIAL_KEYS.items():
        assert tuple(sd[key].shape) == shape, key
    for key in ABSENT:
        assert key not in sd
    attn = sorted({k.rsplit(".", 2)[0] for k in sd if ".attn" in k})
    assert attn == ["decoder.mid.attn_1", "encoder.mid.attn_1"]
    def blocks(prefix: str) -> list[int]:
        return [len({k.split(".")[4] for k in sd if k.startswith(f"{prefix}.{i}.block.")}) for i in range(5)]

    assert blocks("encoder.down") == [4, 3, 4, 3, 4] and blocks("decoder.up") == [4, 4, 3, 4, 3]
    assert model.factor == 16


def test_config_refuses_mismatched_levels_and_groups() -> None:
    with pytest.raises(ConfigError, match="levels"):
        MagvitV2(VQConfig(base_channels=8, encoder_ch_mult=(1, 2), encoder_num_res_blocks=(1, 1),
                          decoder_ch_mult=(1,), decoder_num_res_blocks=(1,), norm_groups=4, resolution=32))
    with pytest.raises(ConfigError, match="norm_groups"):
        VQConfig(base_channels=8)  # 8 channels cannot form 32 groups


# ---------------------------------------------------------------- bad inputs

@pytest.mark.parametrize("shape", [(3, 16, 24), (1, 1, 3, 16, 24), (1, 4, 16, 24), (1, 1, 16, 24),
                                   (1, 3, 18, 24), (1, 3, 16, 26), (0, 3, 16, 24), (1, 3, 0, 24),
                                   (1, 3, 16, 0)])
def test_encode_rejects_bad_shapes(vq: MagvitV2, shape: tuple[int, ...]) -> None:
    with pytest.raises(InputError):
        vq.encode(torch.zeros(shape))


def test_encode_rejects_integer_pixels(vq: MagvitV2) -> None:
    with pytest.raises(InputError, match="float"):
        vq.encode(torch.zeros(1, 3, 16, 24, dtype=torch.uint8))


@pytest.mark.parametrize("codes, grid, match", [
    (torch.tensor([[0, 1, 64, 2]]), (2, 2), r"\[0, 64\)"),
    (torch.tensor([[0, -1, 3, 2]]), (2, 2), r"\[0, 64\)"),
    (torch.zeros(1, 6, dtype=torch.int64), (2, 2), "grid"),
    (torch.zeros(1, 6, dtype=torch.int64), None, "square"),
    (torch.zeros(1, 4), (2, 2), "int64"),
    (torch.zeros(4, dtype=torch.int64), (2, 2), "shape"),
    (torch.zeros(1, 2, 2, dtype=torch.int64), (2, 2), "shape"),
    (torch.zeros(0, 4, dtype=torch.int64), (2, 2), "shape"),
])
def test_decode_rejects_bad_codes(vq: MagvitV2, codes: torch.Tensor, grid, match: str) -> None:
    with pytest.raises(InputError, match=match):
        vq.decode(codes, grid=grid)
