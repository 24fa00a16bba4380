"""Base class of the two VQ graphs: the MAGVIT-v2 tokenizer, its config and the shared axes."""

from __future__ import annotations

import numpy as np

from showo_sdk.model.magvit import MagvitV2

from .common import MAX_BATCH, Dim, Graph

#: Largest grid side the VQ graphs are declared for (1024 px at 16 px per token).
MAX_GRID = 64


class VQGraph(Graph):
    """Shared state of vq_encoder and vq_decoder (always fp32: convolutions are cheap next to the transformer)."""

    def __init__(self, vq: MagvitV2, max_batch: int = MAX_BATCH, seed: int = 0):
        self.vq = vq.eval()
        self.cfg = vq.config
        self.factor = vq.config.downsample_factor
        self.max_batch = max_batch
        self.seed = seed

    def batch_dim(self) -> Dim:
        return Dim("batch", 1, 1, self.max_batch)

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)

    def grids(self) -> list[tuple[int, int]]:
        """Validation grids: the configured square one, and a non-square one (extrapolation canvases)."""
        g = self.cfg.grid
        return [(g, g), (max(1, g // 2), g + 2)]
