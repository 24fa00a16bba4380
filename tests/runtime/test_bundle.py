"""The bundle reader on its own (no torch, no onnx): a well-formed bundle loads, every defect is refused.

The bundle here is written by the test from the reader's own contract (``expected_io``,
``model_summary``); its graph files are opaque bytes, which is all the reader looks at. The
exporter's real bundles are read back in tests/export/test_bundle_files.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from showo_sdk.config import ShowoConfig, TokenLayout, TransformerConfig, VQConfig
from showo_sdk.errors import BundleError
from showo_sdk.runtime.bundle import (
    FORMAT, FORMAT_VERSION, GRAPHS, KV_CACHE, TRANSFORMER_GRAPHS, expected_io, load_bundle, model_summary,
    seal_manifest)

LAYOUT = TokenLayout(text_vocab_size=40, codebook_size=16, bos_id=0)
CONFIG = ShowoConfig(layout=LAYOUT, transformer=TransformerConfig(
    vocab_size=LAYOUT.vocab_size, hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32,
    max_position_embeddings=64), max_text_len=6, image_grid=(2, 2))
VQ = VQConfig(base_channels=4, encoder_ch_mult=(1, 1), encoder_num_res_blocks=(1, 1), decoder_ch_mult=(1, 1),
              decoder_num_res_blocks=(1, 1), codebook_bits=4, resolution=4, norm_groups=2)


def _entry(root: Path, name: str, file: str, precision: str) -> dict:
    kv = "float16" if precision == "fp16" else "float32"
    inputs, outputs = expected_io(name, CONFIG, kv)

    def tensors(items):
        return [{"name": n, "dtype": d, "shape": [("dyn" if s is None else s) for s in shape]} for n, d, shape in items]

    data = f"graph {name}".encode()
    (root / file).write_bytes(data)
    entry = {"file": file, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "precision": precision,
             "exporter": "dynamo", "inputs": tensors(inputs), "outputs": tensors(outputs)}
    if name == "decode_step":
        entry["notes"] = {"kv_cache": KV_CACHE}
    return entry


def write_bundle(root: Path, precision: str = "fp32") -> Path:
    root.mkdir()
    graphs = {}
    for name in GRAPHS:
        p = precision if name in TRANSFORMER_GRAPHS else "fp32"
        graphs[name] = _entry(root, name, f"{name}.onnx" if p == "fp32" else f"{name}.{p}.onnx", p)
    (root / "tokenizer.json").write_text("{}")
    files = {p.name: {"sha256": hashlib.sha256(p.read_bytes()).hexdigest(), "bytes": p.stat().st_size}
             for p in sorted(root.iterdir())}
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "sdk_version": "0.1.0", "precision": precision,
                "model": {"config": CONFIG.to_dict(), "vq_config": VQ.to_dict(), **model_summary(CONFIG, VQ)},
                "tokenizer": {"file": "tokenizer.json", "text_vocab_size": LAYOUT.text_vocab_size},
                "graphs": graphs, "files": files}
    write_manifest(root, manifest)
    return root


def read_manifest(root: Path) -> dict:
    return json.loads((root / "manifest.json").read_text())


def write_manifest(root: Path, manifest: dict) -> None:
    """Write ``manifest`` sealed (a fresh manifest_sha256), so each test reaches the check it is about."""
    (root / "manifest.json").write_text(json.dumps(seal_manifest(manifest)))


@pytest.fixture
def bundle(tmp_path) -> Path:
    return write_bundle(tmp_path / "engine.plan")


def test_valid_bundle_loads(bundle):
    b = load_bundle(bundle)
    assert b.config == CONFIG and b.vq_config == VQ and b.precision == "fp32"
    assert b.graph_path("t2i_step") == bundle / "t2i_step.onnx"
    assert b.graphs["decode_step"].inputs[2].name == "attention_mask"
    assert b.tokenizer_path == bundle / "tokenizer.json"
    assert b.engines("t2i_step") == ()
    with pytest.raises(BundleError, match="int8"):
        b.graph_path("t2i_step", "int8")


def test_fp16_bundle_loads(tmp_path):
    b = load_bundle(write_bundle(tmp_path / "b", "fp16"))
    assert b.graphs["decode_step"].inputs[3].dtype == "float16"
    assert b.graph_path("t2i_step", "fp16").name == "t2i_step.fp16.onnx"
    assert b.graphs["vq_decoder"].precision == "fp32"


def test_not_a_directory(tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        load_bundle(tmp_path / "missing")


def test_bad_json(bundle):
    (bundle / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="unreadable JSON"):
        load_bundle(bundle)


def test_wrong_format(bundle):
    m = read_manifest(bundle)
    m["format"] = "something-else"
    write_manifest(bundle, m)
    with pytest.raises(BundleError, match="format is 'something-else'"):
        load_bundle(bundle)


@pytest.mark.parametrize("rel", ["../escape.onnx", "/etc/passwd", "a/../../b", "", "sub\\x.onnx"])
def test_path_traversal_refused(bundle, rel):
    m = read_manifest(bundle)
    m["files"][rel] = {"sha256": "0" * 64, "bytes": 1}
    write_manifest(bundle, m)
    with pytest.raises(BundleError, match="path|file names"):
        load_bundle(bundle)


def test_symlink_outside_refused(bundle, tmp_path):
    outside = tmp_path / "outside.onnx"
    outside.write_bytes((bundle / "t2i_step.onnx").read_bytes())
    (bundle / "t2i_step.onnx").unlink()
    os.symlink(outside, bundle / "t2i_step.onnx")
    with pytest.raises(BundleError, match="outside the bundle"):
        load_bundle(bundle)


def test_unlisted_symlinked_directory_refused(bundle, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", bundle / "linked")
    with pytest.raises(BundleError, match="unexpected files.*linked"):
        load_bundle(bundle)


def test_tampered_same_size_needs_checksums(bundle):
    path = bundle / "mmu_prefill.onnx"
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"mmu_prefill\.onnx: sha256 does not match"):
        load_bundle(bundle)
    assert load_bundle(bundle, verify_checksums=False).precision == "fp32"  # sizes and layout still verified


def test_graph_sha_must_match_files(bundle):
    m = read_manifest(bundle)
    m["graphs"]["t2i_prefix"]["sha256"] = "f" * 64
    write_manifest(bundle, m)
    with pytest.raises(BundleError, match="t2i_prefix.*differs between 'graphs' and 'files'"):
        load_bundle(bundle)


def test_missing_graph_refused(bundle):
    m = read_manifest(bundle)
    del m["graphs"]["vq_decoder"]
    write_manifest(bundle, m)
    with pytest.raises(BundleError, match=r"graphs missing \['vq_decoder'\]"):
        load_bundle(bundle)


def test_io_name_mismatch_refused(bundle):
    m = read_manifest(bundle)
    m["graphs"]["decode_step"]["inputs"][0]["name"] = "ids"
    write_manifest(bundle, m)
    with pytest.raises(BundleError, match="graph decode_step.*inputs are"):
        load_bundle(bundle)


def test_shape_mismatch_refused(bundle):
    m = read_manifest(bundle)
    m["graphs"]["t2i_step"]["outputs"][0]["shape"] = ["batch", 4, 99]
    write_manifest(bundle, m)
    with pytest.raises(BundleError, match="output logits is float32 \\['batch', 4, 99\\], expected float32"):
        load_bundle(bundle)


def test_dtype_mismatch_refused(bundle):
    m = read_manifest(bundle)
    m["graphs"]["t2i_prefix"]["outputs"][0]["dtype"] = "float16"
    write_manifest(bundle, m)
    with pytest.raises(BundleError, match="present.0.key is float16"):
        load_bundle(bundle)


def test_inconsistent_ids_refused(bundle):
    m = read_manifest(bundle)
    m["model"]["ids"]["mask"] += 1
    write_manifest(bundle, m)
    with pytest.raises(BundleError, match=r"\['ids'\] disagree with the model config"):
        load_bundle(bundle)


def test_vq_graph_must_be_fp32(bundle):
    m = read_manifest(bundle)
    m["graphs"]["vq_encoder"]["precision"] = "int8"
    write_manifest(bundle, m)
    with pytest.raises(BundleError, match="vq_encoder: precision 'int8', expected 'fp32'"):
        load_bundle(bundle)


def test_tokenizer_vocab_mismatch_refused(bundle):
    m = read_manifest(bundle)
    m["tokenizer"]["text_vocab_size"] = 41
    write_manifest(bundle, m)
    with pytest.raises(BundleError, match="text vocabulary 41"):
        load_bundle(bundle)


def test_kv_cache_convention_checked(bundle):
    m = read_manifest(bundle)
    m["graphs"]["decode_step"]["notes"]["kv_cache"] = "concat"
    write_manifest(bundle, m)
    with pytest.raises(BundleError, match="kv_cache"):
        load_bundle(bundle)


def test_reader_imports_no_torch_or_onnx():
    code = ("import sys, showo_sdk.runtime.bundle; "
            "bad = [m for m in ('torch', 'onnx', 'onnxruntime') if m in sys.modules]; "
            "assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_format_1_bundle_with_whole_block_graphs_loads(tmp_path):
    """Bundles of format 1 (T2I graphs over the whole text block) stay readable; format 2 graphs take its tail."""
    root = write_bundle(tmp_path / "v1")
    m = read_manifest(root)
    t = CONFIG.text_block_len
    for name in ("t2i_prefix", "t2i_step"):
        inputs, outputs = expected_io(name, CONFIG, "float32", format_version=1)
        for kind, items in (("inputs", inputs), ("outputs", outputs)):
            m["graphs"][name][kind] = [{"name": n, "dtype": d, "shape": [("dyn" if s is None else s) for s in shape]}
                                       for n, d, shape in items]
    assert m["graphs"]["t2i_prefix"]["inputs"][0]["shape"] == ["dyn", t]
    m["format_version"] = 1
    write_manifest(root, m)
    b = load_bundle(root)
    assert b.graphs["t2i_step"].inputs[1].shape == ("dyn", t)
    m["format_version"] = FORMAT_VERSION  # whole-block graphs under format 2: refused, naming the graph
    write_manifest(root, m)
    with pytest.raises(BundleError, match="graph t2i_prefix"):
        load_bundle(root)
