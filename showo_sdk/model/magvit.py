"""MAGVIT-v2 image tokenizer (showlab/magvitv2): taming-style conv encoder/decoder + LFQ quantizer.

Module and buffer names mirror the official ``MAGVITv2`` so its state dict loads unchanged
(``encoder.*``, ``decoder.*``, ``quantize.embedding``, ``quantize.power_vals``). The encode/decode
cores have no data-dependent Python control flow, so they trace and export; argument checks live
in the public wrappers and are skipped while torch is compiling or exporting.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import VQConfig
from ..errors import ConfigError, InputError

#: Loss multipliers of the official LFQuantizer (``commit_loss_multiplier``, ``entropy_multiplier``).
OFFICIAL_COMMIT_WEIGHT = 0.1
OFFICIAL_ENTROPY_WEIGHT = 0.1
#: Weight of the codebook-side term inside the official commitment loss.
OFFICIAL_COMMIT_BETA = 0.25


def swish(x: Tensor) -> Tensor:
    """x * sigmoid(x), written out as the official code does (F.silu differs in the last bit)."""
    return x * torch.sigmoid(x)


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(groups, channels, eps=1e-6, affine=True)


def _conv3(cin: int, cout: int, stride: int = 1, padding: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=padding)


def _conv1(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=1)


class ResnetBlock(nn.Module):
    """GN, swish, conv3, GN, swish, conv3 plus a skip (1x1 ``nin_shortcut`` when widths differ)."""

    def __init__(self, cin: int, cout: int, groups: int) -> None:
        super().__init__()
        self.norm1 = _norm(cin, groups)
        self.conv1 = _conv3(cin, cout)
        self.norm2 = _norm(cout, groups)
        self.conv2 = _conv3(cout, cout)
        self.nin_shortcut = _conv1(cin, cout) if cin != cout else None

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(swish(self.norm1(x)))
        h = self.conv2(swish(self.norm2(h)))
        skip = x if self.nin_shortcut is None else self.nin_shortcut(x)
        return skip + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all positions, 1x1 convs for q/k/v/out, residual."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.norm = _norm(channels, groups)
        self.q = _conv1(channels, channels)
        self.k = _conv1(channels, channels)
        self.v = _conv1(channels, channels)
        self.proj_out = _conv1(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        y = self.norm(x)
        q = self.q(y).flatten(2).transpose(1, 2)  # (B, HW, C)
        k = self.k(y).flatten(2)  # (B, C, HW)
        v = self.v(y).flatten(2)  # (B, C, HW)
        att = torch.softmax(torch.bmm(q, k) * c ** -0.5, dim=-1)  # (B, HW query, HW key)
        out = torch.bmm(v, att.transpose(1, 2)).reshape(b, c, h, w)  # (B, C, H, W)
        return x + self.proj_out(out)


class Downsample(nn.Module):
    """Halve H and W: zero-pad right/bottom by one, then a stride-2 conv3 (taming's asymmetric pad)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = _conv3(channels, channels, stride=2, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Double H and W: nearest-neighbour x2, then conv3."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = _conv3(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class MidBlock(nn.Module):
    """ResnetBlock, AttnBlock, ResnetBlock at the lowest resolution (the only attention)."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels, groups)
        self.attn_1 = AttnBlock(channels, groups)
        self.block_2 = ResnetBlock(channels, channels, groups)

    def forward(self, x: Tensor) -> Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


def _blocks(cin: int, cout: int, num_blocks: int, groups: int) -> nn.ModuleList:
    """``num_blocks`` ResnetBlocks, the first one changing the width from ``cin`` to ``cout``."""
    return nn.ModuleList(ResnetBlock(cin if j == 0 else cout, cout, groups) for j in range(num_blocks))


class DownLevel(nn.Module):
    """Encoder level ``down.{i}``: ResnetBlocks ``block.{j}``, then ``downsample`` except at the last."""

    def __init__(self, cin: int, cout: int, num_blocks: int, groups: int, downsample: bool) -> None:
        super().__init__()
        self.block = _blocks(cin, cout, num_blocks, groups)
        self.downsample = Downsample(cout) if downsample else None

    def forward(self, x: Tensor) -> Tensor:
        for block in self.block:
            x = block(x)
        return x if self.downsample is None else self.downsample(x)


class UpLevel(nn.Module):
    """Decoder level ``up.{i}``: ResnetBlocks ``block.{j}``, then ``upsample`` except at level 0."""

    def __init__(self, cin: int, cout: int, num_blocks: int, groups: int, upsample: bool) -> None:
        super().__init__()
        self.block = _blocks(cin, cout, num_blocks, groups)
        self.upsample = Upsample(cout) if upsample else None

    def forward(self, x: Tensor) -> Tensor:
        for block in self.block:
            x = block(x)
        return x if self.upsample is None else self.upsample(x)


class Encoder(nn.Module):
    """Pixels (B, in, H, W) -> latents (B, bits, H/f, W/f) before quantization (incl. ``quant_conv``)."""

    def __init__(self, cfg: VQConfig) -> None:
        super().__init__()
        ch, g = cfg.base_channels, cfg.norm_groups
        widths = [ch * m for m in cfg.encoder_ch_mult]
        last = len(widths) - 1
        self.conv_in = _conv3(cfg.in_channels, ch)
        self.down = nn.ModuleList()
        cin = ch
        for i, (cout, n) in enumerate(zip(widths, cfg.encoder_num_res_blocks)):
            self.down.append(DownLevel(cin, cout, n, g, downsample=i != last))
            cin = cout
        self.mid = MidBlock(cin, g)
        self.norm_out = _norm(cin, g)
        self.conv_out = _conv3(cin, cfg.codebook_bits)
        self.quant_conv = _conv1(cfg.codebook_bits, cfg.codebook_bits)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_in(x)  # (B, ch, H, W)
        for level in self.down:
            h = level(h)
        h = self.mid(h)  # (B, C, H/f, W/f)
        return self.quant_conv(self.conv_out(swish(self.norm_out(h))))  # (B, bits, H/f, W/f)


class Decoder(nn.Module):
    """Quantized latents (B, bits, h, w) -> pixels (B, out, h*f, w*f), unbounded (incl. ``post_quant_conv``).

    ``up.{i}`` is level i of ``decoder_ch_mult``; they run from the last (lowest resolution) to 0.
    """

    def __init__(self, cfg: VQConfig) -> None:
        super().__init__()
        ch, g = cfg.base_channels, cfg.norm_groups
        widths = [ch * m for m in cfg.decoder_ch_mult]
        self.post_quant_conv = _conv1(cfg.codebook_bits, cfg.codebook_bits)
        cin = widths[-1]
        self.conv_in = _conv3(cfg.codebook_bits, cin)
        self.mid = MidBlock(cin, g)
        levels: list[UpLevel] = []
        for i in reversed(range(len(widths))):
            levels.append(UpLevel(cin, widths[i], cfg.decoder_num_res_blocks[i], g, upsample=i != 0))
            cin = widths[i]
        self.up = nn.ModuleList(reversed(levels))
        self.norm_out = _norm(cin, g)
        self.conv_out = _conv3(cin, cfg.out_channels)

    def forward(self, z: Tensor) -> Tensor:
        h = self.mid(self.conv_in(self.post_quant_conv(z)))  # (B, C, h, w)
        for level in reversed(self.up):
            h = level(h)
        return self.conv_out(swish(self.norm_out(h)))  # (B, out, h*f, w*f)


def lfq_buffers(bits: int) -> tuple[Tensor, Tensor]:
    """The LFQ constants: (2^bits, bits) float32 +/-1 codebook and (bits,) int64 weights 2^(bits-1-c)."""
    powers = 2 ** torch.arange(bits - 1, -1, -1, dtype=torch.int64)  # (bits,) MSB first
    codes = torch.arange(2 ** bits, dtype=torch.int64)
    table = torch.div(codes[:, None], powers, rounding_mode="floor") % 2  # (K, bits) in {0, 1}
    return table.float() * 2 - 1, powers


@dataclass
class LFQOutput:
    """Result of :meth:`LFQuantizer.quantize` (training path)."""

    z_q: Tensor  # (B, bits, h, w) +/-1 values, straight-through gradient to z
    codes: Tensor  # (B, h*w) int64, row-major
    commit_loss: Tensor  # scalar: mse(sg[z_q], z) + beta * mse(z_q, sg[z]), unweighted
    entropy_loss: Tensor  # scalar: mean per-sample bit entropy - codebook bit entropy, unweighted


class LFQuantizer(nn.Module):
    """Lookup-free quantizer: each latent channel is one bit, z > 0 -> +1 (bit 1), else -1 (bit 0).

    Code = sum_c bit_c * 2^(bits-1-c): channel 0 is the most significant bit. ``embedding`` holds the
    +/-1 vector of every code (row k = bits of k), ``power_vals`` the int64 bit weights.
    """

    def __init__(self, bits: int, beta: float = OFFICIAL_COMMIT_BETA) -> None:
        super().__init__()
        self.bits = bits
        self.beta = beta
        embedding, power_vals = lfq_buffers(bits)
        self.register_buffer("embedding", embedding)
        self.register_buffer("power_vals", power_vals)

    @property
    def codebook_size(self) -> int:
        return 2 ** self.bits

    def codes(self, z: Tensor) -> Tensor:
        """(B, bits, h, w) latents -> (B, h*w) int64 codes in row-major order."""
        bits_on = (z > 0).to(torch.int64)  # (B, bits, h, w)
        codes = (bits_on * self.power_vals.view(1, -1, 1, 1)).sum(dim=1)  # (B, h, w)
        return codes.flatten(1)  # (B, h*w)

    def lookup(self, codes: Tensor) -> Tensor:
        """(B, h, w) int64 codes -> (B, bits, h, w) +/-1 latents (embedding gather)."""
        return F.embedding(codes, self.embedding).permute(0, 3, 1, 2).contiguous()  # (B, bits, h, w)

    def quantize(self, z: Tensor) -> LFQOutput:
        """Training path: straight-through quantization, codes, commitment and entropy losses."""
        hard = torch.where(z > 0, 1.0, -1.0).to(z.dtype)  # (B, bits, h, w)
        z_q = z + (hard - z).detach()
        commit = F.mse_loss(z_q.detach(), z) + self.beta * F.mse_loss(z_q, z.detach())
        # Per-bit two-way distribution with logits -(z - 1)^2 and -(z + 1)^2, as the official code.
        flat = z.permute(0, 2, 3, 1).reshape(-1, self.bits)  # (BHW, bits)
        logits = torch.stack([-(flat - 1).pow(2), -(flat + 1).pow(2)], dim=-1)  # (BHW, bits, 2)
        logp = torch.log_softmax(logits, dim=-1)
        p = logp.exp()
        sample_entropy = -(p * logp).sum(-1).mean()
        eps = torch.finfo(p.dtype).eps
        mean_p = p.mean(0)  # (bits, 2)
        codebook_entropy = -(mean_p * mean_p.clamp(eps, 1 - eps).log()).sum(-1).mean()
        return LFQOutput(z_q=z_q, codes=self.codes(z), commit_loss=commit,
                         entropy_loss=sample_entropy - codebook_entropy)


@dataclass
class VQOutput:
    """Result of :meth:`MagvitV2.forward` (training path); losses are unweighted, see LFQOutput."""

    reconstruction: Tensor  # (B, out, H, W) unbounded
    codes: Tensor  # (B, h*w) int64
    commit_loss: Tensor
    entropy_loss: Tensor


def _checking() -> bool:
    """Argument checks run eagerly only: they are data-dependent and must not enter a traced graph."""
    return not (torch.compiler.is_compiling() or torch.jit.is_tracing())


class MagvitV2(nn.Module):
    """The whole tokenizer: ``encode`` pixels to codes, ``decode`` codes to pixels, ``forward`` to train."""

    def __init__(self, cfg: VQConfig | None = None) -> None:
        super().__init__()
        cfg = cfg if cfg is not None else VQConfig()
        if len(cfg.decoder_ch_mult) != len(cfg.encoder_ch_mult):
            raise ConfigError(
                f"decoder has {len(cfg.decoder_ch_mult)} levels but the encoder {len(cfg.encoder_ch_mult)}; "
                "they must match so decode inverts encode's downsampling")
        self.config = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.quantize = LFQuantizer(cfg.codebook_bits)

    @property
    def factor(self) -> int:
        """Pixels per token side (16 officially)."""
        return self.config.downsample_factor

    def encode_latents(self, pixels: Tensor) -> Tensor:
        """(B, in, H, W) in [-1, 1] -> continuous (B, bits, H/f, W/f) latents, before quantization."""
        if _checking():
            self._check_pixels(pixels)
        return self.encoder(pixels)

    def encode(self, pixels: Tensor) -> Tensor:
        """(B, in, H, W) in [-1, 1] -> (B, (H/f)*(W/f)) int64 codes, row-major raster order."""
        return self.quantize.codes(self.encode_latents(pixels))

    def decode_latents(self, z_q: Tensor) -> Tensor:
        """(B, bits, h, w) quantized latents -> (B, out, h*f, w*f) pixels, unbounded."""
        return self.decoder(z_q)

    def decode_grid(self, codes: Tensor) -> Tensor:
        """(B, h, w) int64 codes -> (B, out, h*f, w*f) pixels; no checks (the exported decode core)."""
        return self.decoder(self.quantize.lookup(codes))

    def decode(self, codes: Tensor, grid: tuple[int, int] | None = None) -> Tensor:
        """(B, h*w) int64 codes -> (B, out, h*f, w*f) pixels, unbounded. ``grid`` = (h, w); square if None."""
        if _checking():
            grid = self._check_codes(codes, grid)
        elif grid is None:
            raise InputError("decode needs an explicit grid=(h, w) while tracing")
        h, w = grid
        return self.decode_grid(codes.reshape(codes.shape[0], h, w))

    def forward(self, pixels: Tensor) -> VQOutput:
        """Training step body: encode, straight-through quantize, decode; returns reconstruction + losses."""
        q = self.quantize.quantize(self.encode_latents(pixels))
        return VQOutput(reconstruction=self.decoder(q.z_q), codes=q.codes,
                        commit_loss=q.commit_loss, entropy_loss=q.entropy_loss)

    def save_pretrained(self, path: str | os.PathLike, overwrite: bool = False) -> None:
        """Write ``config.json`` + ``model.safetensors`` atomically; ``load_magvit(path)`` reads it back."""
        from .magvit_io import save_pretrained

        save_pretrained(self, path, overwrite=overwrite)

    def _check_pixels(self, pixels: Tensor) -> None:
        if not isinstance(pixels, Tensor) or not pixels.is_floating_point():
            raise InputError(f"pixels must be a float tensor, got {getattr(pixels, 'dtype', type(pixels))}")
        if pixels.ndim != 4 or pixels.shape[1] != self.config.in_channels:
            raise InputError(
                f"pixels must have shape (B, {self.config.in_channels}, H, W), got {tuple(pixels.shape)}")
        f, (b, _, h, w) = self.factor, pixels.shape
        if b < 1 or h < f or w < f or h % f or w % f:
            raise InputError(
                f"H and W must be positive multiples of {f} and B >= 1, got shape {tuple(pixels.shape)}")

    def _check_codes(self, codes: Tensor, grid: tuple[int, int] | None) -> tuple[int, int]:
        if not isinstance(codes, Tensor) or codes.dtype not in (torch.int64, torch.int32):
            got = getattr(codes, "dtype", type(codes))
            raise InputError(f"codes must be an int64 (or int32) tensor, got {got}")
        if codes.ndim != 2 or codes.shape[0] < 1 or codes.shape[1] < 1:
            raise InputError(f"codes must have shape (B, h*w) with B, h*w >= 1, got {tuple(codes.shape)}")
        n = codes.shape[1]
        if grid is None:
            side = math.isqrt(n)
            if side * side != n:
                raise InputError(f"{n} codes do not form a square grid; pass grid=(h, w)")
            grid = (side, side)
        if len(grid) != 2 or min(grid) < 1 or grid[0] * grid[1] != n:
            raise InputError(f"grid {tuple(grid)} does not hold the {n} codes given (need h * w == {n})")
        k = self.quantize.codebook_size
        lo, hi = int(codes.min()), int(codes.max())
        if lo < 0 or hi >= k:
            raise InputError(f"codes must be in [0, {k}), got values in [{lo}, {hi}]")
        return int(grid[0]), int(grid[1])
