"""``vq_decoder``: codes (B, h*w) int64 + ``grid`` = [h, w] -> pixels (B, 3, f*h, f*w), unbounded.

One graph for every grid, square or not (extrapolation canvases such as 16x24): the torch decoder
is traced on (B, h, w) codes with h and w dynamic, then a Reshape from ``codes`` and ``grid`` is
put in front of it in the ONNX. Codes are clamped to [0, K-1] in-graph, as the official decode does.
"""

from __future__ import annotations

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper
from torch import nn

from showo_sdk.model.magvit import MagvitV2

from .common import Dim, GraphSpec, TensorSpec
from .vq_graph import MAX_GRID, VQGraph

_GRID_CODES = "showo_codes_grid"  # internal name of the (B, h, w) codes after the Reshape


class _Decode(nn.Module):
    def __init__(self, vq: MagvitV2):
        super().__init__()
        self.vq = vq

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        codes = codes.clamp(0, self.vq.quantize.codebook_size - 1)  # (B, h, w)
        return self.vq.decode_grid(codes)  # (B, 3, f*h, f*w)


class VQDecoder(VQGraph):
    name = "vq_decoder"

    def _pixels_spec(self) -> TensorSpec:
        return TensorSpec("pixels", "float32", ("batch", self.cfg.out_channels, "height", "width"))

    def spec(self) -> GraphSpec:
        g = self.cfg.grid
        return GraphSpec(
            self.name,
            inputs=(TensorSpec("codes", "int64", ("batch", "num_tokens")),
                    TensorSpec("grid", "int64", (2,), values=((1, 1), (g, g), (MAX_GRID, MAX_GRID)))),
            outputs=(self._pixels_spec(),),
            dims=(self.batch_dim(), Dim("num_tokens", 1, g * g, MAX_GRID * MAX_GRID)),
            notes={"grid": "[h, w] with h * w == num_tokens; any h, w (non-square for extrapolation)",
                   "pixels": "unbounded; the image is clamp((x + 1) / 2, 0, 1) * 255, truncated to uint8"})

    def trace_spec(self) -> GraphSpec:
        return GraphSpec(
            self.name,
            inputs=(TensorSpec("codes", "int64", ("batch", "grid_h", "grid_w")),),
            outputs=(self._pixels_spec(),),
            dims=(self.batch_dim(), Dim("grid_h", 1, self.cfg.grid, MAX_GRID), Dim("grid_w", 1, self.cfg.grid, MAX_GRID)))

    def module(self) -> nn.Module:
        return _Decode(self.vq)

    def postprocess(self, model: onnx.ModelProto) -> onnx.ModelProto:
        """Replace the (B, h, w) ``codes`` input by ``codes`` (B, h*w) + ``grid`` (2,) and a Reshape."""
        graph = model.graph
        for node in graph.node:
            node.input[:] = [_GRID_CODES if name == "codes" else name for name in node.input]
        for info in graph.value_info:
            if info.name == "codes":
                info.name = _GRID_CODES
        del graph.input[:]
        graph.input.extend([
            helper.make_tensor_value_info("codes", TensorProto.INT64, ["batch", "num_tokens"]),
            helper.make_tensor_value_info("grid", TensorProto.INT64, [2]),
        ])
        head = [
            helper.make_node("Constant", [], ["showo_batch_axis"],
                             value=helper.make_tensor("showo_batch_axis_value", TensorProto.INT64, [1], [-1])),
            helper.make_node("Concat", ["showo_batch_axis", "grid"], ["showo_grid_shape"], axis=0),
            helper.make_node("Reshape", ["codes", "showo_grid_shape"], [_GRID_CODES]),
        ]
        nodes = head + list(graph.node)
        del graph.node[:]
        graph.node.extend(nodes)
        return model

    def _codes(self, batch: int, grid: tuple[int, int]) -> np.ndarray:
        return self.rng().integers(0, self.cfg.codebook_size, size=(batch, grid[0] * grid[1]), dtype=np.int64)

    def example_inputs(self) -> dict[str, np.ndarray]:
        return {"codes": self._codes(2, (2, 3)).reshape(2, 2, 3)}

    def validation_cases(self) -> list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
        cases = []
        for batch, grid in zip((1, 3), self.grids()):
            codes = self._codes(batch, grid)
            with torch.no_grad():
                pixels = self.vq.decode(torch.from_numpy(codes), grid=grid).numpy()
            cases.append(({"codes": codes, "grid": np.array(grid, dtype=np.int64)}, {"pixels": pixels}))
        return cases
