"""Base class of the four transformer graphs: the model, its config, the precision and the shared axes."""

from __future__ import annotations

import numpy as np
import torch

from showo_sdk.config import ShowoConfig
from showo_sdk.model.transformer import ShowoTransformer

from .common import MAX_BATCH, Dim, Graph, TensorSpec, kv_specs
from .forward import cast_model

TORCH_DTYPES = {"fp32": torch.float32, "fp16": torch.float16}
_KV_DTYPES = {"fp32": "float32", "fp16": "float16"}


class TransformerGraph(Graph):
    """Shared state of t2i_prefix, t2i_step, mmu_prefill and decode_step."""

    def __init__(self, model: ShowoTransformer, config: ShowoConfig, precision: str = "fp32",
                 max_batch: int = MAX_BATCH, seed: int = 0, cast: ShowoTransformer | None = None):
        """``model`` is the fp32 reference; ``cast`` the same model already in ``precision`` (saves a copy per graph)."""
        self.precision = precision
        self.torch_dtype = TORCH_DTYPES[precision]
        self.reference_model = model  # fp32: what validation compares against
        self.model = cast if cast is not None else cast_model(model, self.torch_dtype)
        self.config = config
        self.max_batch = max_batch
        self.seed = seed
        tc = config.transformer
        self.num_layers, self.num_heads, self.head_dim = tc.num_layers, tc.num_heads, tc.head_dim

    @property
    def kv_dtype(self) -> str:
        return _KV_DTYPES[self.precision]

    def batch_dim(self, opt: int = 2) -> Dim:
        return Dim("batch", 1, min(opt, self.max_batch), self.max_batch)

    def text_dim(self) -> Dim:
        """The T2I text-block columns a prefix/step call carries: the block's tail from its first non-PAD column."""
        t = self.config.text_block_len
        return Dim("text", 1, min(t, 32), t)

    def kv(self, prefix: str, length: int | str) -> tuple[TensorSpec, ...]:
        return kv_specs(prefix, self.num_layers, self.kv_dtype, ("batch", self.num_heads, length, self.head_dim))

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)

    def cast_floats(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Float arrays in the graph's KV dtype (fp16 graphs take fp16 caches)."""
        dt = np.float16 if self.precision == "fp16" else np.float32
        return {k: (v.astype(dt) if v.dtype.kind == "f" else v) for k, v in inputs.items()}
