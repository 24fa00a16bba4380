"""The exported bundle as the runtime reads it: contents, and refusal of tampered, truncated, missing files."""

from __future__ import annotations

import json
import shutil

import pytest

from showo_sdk.errors import BundleError
from showo_sdk.export.tensorrt import unavailable_reason
from showo_sdk.runtime.bundle import GRAPHS, load_bundle


@pytest.fixture
def copy(bundle_fp32, tmp_path):
    dst = tmp_path / "engine.plan"
    shutil.copytree(bundle_fp32, dst)
    return dst


def test_bundle_contents(bundle_fp32, tiny):
    bundle = load_bundle(bundle_fp32)
    assert bundle.config == tiny.config and bundle.vq_config == tiny.vq.config
    engines = sorted(e.path.name for g in GRAPHS for e in bundle.engines(g))
    assert sorted(p.name for p in bundle_fp32.iterdir()) == sorted(
        [f"{g}.onnx" for g in GRAPHS] + ["manifest.json", "tokenizer.json", "transformer.data"] + engines)
    beside = sorted(p.name for p in bundle_fp32.parent.iterdir() if p != tiny.checkpoint)
    assert beside == ["engine.plan"]  # no temp dirs left
    m = bundle.manifest
    assert m["format_version"] == 2 and m["sdk_version"] and m["created"]["utc"].endswith("+00:00")
    model = m["model"]
    lay = tiny.config.layout
    assert model["ids"]["mask"] == lay.mask_id and model["ids"]["codebook_offset"] == lay.codebook_offset
    assert (model["num_image_tokens"], model["text_block_len"], model["codebook_size"]) == (16, 17, 32)
    assert model["kv_cache"] == "fixed_capacity_new_only"
    assert bundle.graphs["decode_step"].entry["notes"]["kv_cache"] == "fixed_capacity_new_only"
    step = bundle.graphs["t2i_step"]
    assert [t.name for t in step.inputs][:4] == ["input_ids", "attention_mask", "past_key_values.0.key",
                                                  "past_key_values.0.value"]
    assert step.outputs[0].shape == ("batch", 16, 32)
    for name, check in bundle.validation["graphs"].items():
        assert check["passed"] is True and check["max_abs_diff"] <= 1e-3, name
    assert bundle.tokenizer_path.is_file()


def test_transformer_weights_are_stored_once(bundle_fp32):
    """The four transformer graphs point into one transformer.data; shared layers are stored there once."""
    import onnx

    from showo_sdk.runtime.bundle import TRANSFORMER_GRAPHS

    bundle = load_bundle(bundle_fp32)
    weights = bundle.manifest["weights"]
    data = bundle_fp32 / "transformer.data"
    assert weights["file"] == "transformer.data" and weights["stored_bytes"] <= data.stat().st_size
    assert weights["referenced_bytes"] > 2.5 * weights["stored_bytes"]  # 4 graphs, same layers
    for name in TRANSFORMER_GRAPHS:
        assert bundle.graphs[name].entry["external_data"]["file"] == "transformer.data"
        model = onnx.load(str(bundle.graphs[name].path), load_external_data=False)
        external = [t for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
        assert external and {e.value for t in external for e in t.external_data if e.key == "location"} == {
            "transformer.data"}
    # every layer weight of the prefix graph is the very region decode_step reads: nothing stored twice
    def regions(name):
        model = onnx.load(str(bundle.graphs[name].path), load_external_data=False)
        return {(d["offset"], d["length"]) for t in model.graph.initializer
                if t.data_location == onnx.TensorProto.EXTERNAL for d in [{e.key: e.value for e in t.external_data}]}

    prefix, decode = regions("t2i_prefix"), regions("decode_step")
    assert len(prefix) >= 5 and prefix <= decode


def test_shared_weights_file_tampered_is_refused(copy):
    data = copy / "transformer.data"
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    data.write_bytes(bytes(raw))
    with pytest.raises(BundleError, match="transformer.data"):
        load_bundle(copy)


def test_tensorrt_auto_report(bundle_fp32):
    """--tensorrt-auto: engines where TensorRT and a GPU exist, else the reason, said plainly, and no engines."""
    bundle = load_bundle(bundle_fp32)
    report = bundle.manifest["tensorrt"]
    reason = unavailable_reason()
    assert report["requested"] == "auto" and report["built"] is (reason is None)
    if reason is None:
        assert all(len(bundle.engines(g)) == 1 for g in GRAPHS)
    else:
        assert report["reason"] == reason
        assert not any(bundle.engines(g) for g in GRAPHS)


def test_tampered_file_refused(copy):
    path = copy / "t2i_step.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"t2i_step\.onnx.*sha256.*re-export it with `showo-export"):
        load_bundle(copy)


def test_truncated_file_refused(copy):
    path = copy / "decode_step.onnx"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(BundleError, match=r"decode_step\.onnx.*truncated"):
        load_bundle(copy)


def test_missing_file_refused(copy):
    (copy / "tokenizer.json").unlink()
    with pytest.raises(BundleError, match=r"tokenizer\.json: the file is missing"):
        load_bundle(copy)


def test_missing_manifest_refused(copy):
    (copy / "manifest.json").unlink()
    with pytest.raises(BundleError, match="manifest.json is missing"):
        load_bundle(copy)


def test_newer_format_version_refused(copy):
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["format_version"] = 3
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="format_version 3, newer than this SDK reads.*upgrade showo-sdk"):
        load_bundle(copy)


def test_unexpected_file_refused(copy):
    (copy / "stray.onnx").write_bytes(b"x")
    with pytest.raises(BundleError, match="unexpected files.*stray.onnx"):
        load_bundle(copy)
