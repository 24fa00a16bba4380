"""showo_sdk.export: checkpoint -> engine bundle (ONNX graphs, int8/fp16 variants, TensorRT engines).

One module per graph (``vq_encoder``, ``vq_decoder``, ``t2i_prefix``, ``t2i_step``, ``mmu_prefill``,
``decode_step``) declares its inputs, outputs and dynamic axes; ``exporter`` runs the pipeline and
``cli`` is the ``showo-export`` command. Needs torch and onnx (the runtime side does not).
"""

from __future__ import annotations

from .exporter import ExportOptions, ExportResult, export_bundle, export_checkpoint

__all__ = ["ExportOptions", "ExportResult", "export_bundle", "export_checkpoint"]
