"""``vq_encoder``: pixels (B, 3, H, W) in [-1, 1] -> codes (B, h*w) int64, LFQ inside the graph.

H and W are any multiples of the downsample factor (16 for MAGVIT-v2); codes come out in
row-major raster order, channel 0 the most significant bit (SHOWO_SPEC.md §7).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from showo_sdk.model.magvit import MagvitV2

from .common import Dim, GraphSpec, TensorSpec
from .vq_graph import MAX_GRID, VQGraph


class _Encode(nn.Module):
    def __init__(self, vq: MagvitV2):
        super().__init__()
        self.vq = vq

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.vq.quantize.codes(self.vq.encoder(pixels))  # (B, h*w) int64


class VQEncoder(VQGraph):
    name = "vq_encoder"

    def spec(self) -> GraphSpec:
        f, res = self.factor, self.cfg.resolution
        return GraphSpec(
            self.name,
            inputs=(TensorSpec("pixels", "float32", ("batch", self.cfg.in_channels, "height", "width")),),
            outputs=(TensorSpec("codes", "int64", ("batch", "num_tokens")),),
            dims=(self.batch_dim(), Dim("height", f, res, f * MAX_GRID, f), Dim("width", f, res, f * MAX_GRID, f)),
            notes={"pixels": "RGB in [-1, 1]; height and width multiples of the downsample factor",
                   "codes": "row-major, num_tokens = (height / f) * (width / f), codebook space"})

    def module(self) -> nn.Module:
        return _Encode(self.vq)

    def _pixels(self, batch: int, grid: tuple[int, int]) -> np.ndarray:
        shape = (batch, self.cfg.in_channels, grid[0] * self.factor, grid[1] * self.factor)
        return self.rng().uniform(-1, 1, size=shape).astype(np.float32)

    def example_inputs(self) -> dict[str, np.ndarray]:
        return {"pixels": self._pixels(2, (2, 3))}

    def validation_cases(self) -> list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
        cases = []
        for batch, grid in zip((1, 3), self.grids()):
            pixels = self._pixels(batch, grid)
            with torch.no_grad():
                codes = self.vq.encode(torch.from_numpy(pixels)).numpy()
            cases.append(({"pixels": pixels}, {"codes": codes}))
        return cases
