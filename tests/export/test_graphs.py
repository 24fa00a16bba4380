"""Each exported graph against the PyTorch reference, at shapes other than the trace example."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from showo_sdk.export.common import OPSET
from showo_sdk.export.decode_step import DecodeStep
from showo_sdk.export.mmu_prefill import MMUPrefill, mmu_mask
from showo_sdk.export.samples import kv_arrays, mmu_reference, mmu_sequences, t2i_reference, t2i_sequences
from showo_sdk.export.t2i_prefix import T2IPrefix, prefix_mask
from showo_sdk.export.t2i_step import T2IStep
from showo_sdk.export.validate import check_graph
from showo_sdk.export.vq_decoder import VQDecoder
from showo_sdk.export.vq_encoder import VQEncoder
from showo_sdk.masks import mmu_attention_mask, t2i_attention_mask
from showo_sdk.prompting import Prompting
from showo_sdk.runtime.backends import Graphs

TOL = 1e-4
GRAPHS = ("vq_encoder", "vq_decoder", "t2i_prefix", "t2i_step", "mmu_prefill", "decode_step")


def run(path, feed):
    return Graphs.from_paths({path.stem: path})[path.stem].run(feed)


def max_diff(got: dict, want: dict) -> float:
    return max(float(np.abs(got[k].astype(np.float64) - np.asarray(want[k], dtype=np.float64)).max()) for k in want)


def test_prefix_mask_equals_reference_text_block(tiny):
    config = tiny.config
    rng = np.random.default_rng(1)
    t = config.text_block_len
    ids = t2i_sequences(config, rng, [0, 3, config.max_text_len - 2, config.max_text_len + 5])
    want = t2i_attention_mask(ids, config.layout)[:, :t, :t]
    got = prefix_mask(torch.from_numpy(ids[:, :t]), config.layout.pad_id)[:, 0].numpy()
    np.testing.assert_array_equal(got, want)


def test_mmu_mask_equals_reference(tiny):
    config = tiny.config
    ids = mmu_sequences(config, np.random.default_rng(2), 3, 5)
    got = mmu_mask(torch.from_numpy(ids), config.layout.eoi_id)[:, 0].numpy()
    np.testing.assert_array_equal(got, mmu_attention_mask(ids, config.layout))


@pytest.mark.parametrize("name", GRAPHS)
def test_graph_file_passes_full_check_and_matches_manifest(bundle_fp32, name):
    manifest = json.loads((bundle_fp32 / "manifest.json").read_text())
    entry = manifest["graphs"][name]
    path = bundle_fp32 / entry["file"]
    onnx.checker.check_model(str(path), full_check=True)
    model = onnx.load(str(path))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= OPSET
    for kind, values in (("inputs", model.graph.input), ("outputs", model.graph.output)):
        declared = [(t["name"], [d if isinstance(d, int) else str(d) for d in t["shape"]]) for t in entry[kind]]
        found = [(v.name, [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]) for v in values]
        assert found == declared
    assert entry["exporter"] == "dynamo"


@pytest.mark.parametrize("name", GRAPHS)
def test_graph_has_no_infinite_or_int64_min_mask_constants(bundle_fp32, name):
    model = onnx.load(str(bundle_fp32 / f"{name}.onnx"))
    tensors = list(model.graph.initializer) + [
        a.t for n in model.graph.node if n.op_type == "Constant" for a in n.attribute if a.name == "value"]
    for t in tensors:
        values = onnx.numpy_helper.to_array(t)
        if values.dtype.kind == "f":
            assert np.isfinite(values).all(), t.name
            assert (values > -1e18).all(), t.name  # masks use -1e9: no int64-min (-9.2e18), no float-min
        elif values.dtype == np.int64:
            assert (values != np.iinfo(np.int64).min).all(), t.name


@pytest.mark.parametrize("cls", [VQEncoder, VQDecoder])
def test_vq_graphs_match_reference(bundle_fp32, tiny, cls):
    vq = tiny.vq
    check = check_graph(cls(vq, seed=7), bundle_fp32 / f"{cls.name}.onnx", "fp32")
    assert check.passed, check
    if cls is VQEncoder:
        assert check.outputs["codes"] == 0.0
    assert sorted(next(iter(s.values()))[0] for s in check.shapes) == [1, 3]


def test_vq_decoder_non_square_grid(bundle_fp32, tiny):
    vq = tiny.vq
    for grid in [(2, 6), (5, 3), (1, 1)]:
        codes = np.random.default_rng(3).integers(0, vq.config.codebook_size, size=(2, grid[0] * grid[1]))
        got = run(bundle_fp32 / "vq_decoder.onnx", {"codes": codes, "grid": np.array(grid, dtype=np.int64)})
        with torch.no_grad():
            want = vq.decode(torch.from_numpy(codes), grid=grid).numpy()
        assert got["pixels"].shape == (2, 3, 16 * grid[0], 16 * grid[1])
        assert max_diff(got, {"pixels": want}) < 1e-3


@pytest.mark.parametrize("text_lens", [[4], [0, 9, 14], [20]])
def test_t2i_prefix_and_step_other_prompts(bundle_fp32, tiny, text_lens):
    """Batch 1 and 3, the null prompt, a full and a truncated prompt; the step fed by the *graph's* prefix."""
    model, config = tiny.model, tiny.config
    lay, t, n = config.layout, config.text_block_len, config.num_image_tokens
    ids = t2i_sequences(config, np.random.default_rng(len(text_lens)), text_lens, mask_fraction=0.7)
    _, logits, presents = t2i_reference(model, config, ids)
    prefix = run(bundle_fp32 / "t2i_prefix.onnx", {"input_ids": ids[:, :t]})
    assert max_diff(prefix, kv_arrays(presents, "present", slice(0, t))) <= TOL
    feed = {k.replace("present.", "past_key_values."): v for k, v in prefix.items()}
    feed.update(input_ids=ids[:, t:], attention_mask=(ids[:, :t] != lay.pad_id).astype(np.int64))
    step = run(bundle_fp32 / "t2i_step.onnx", feed)
    want = logits[:, t + 1:t + 1 + n, lay.codebook_offset:lay.codebook_offset + lay.codebook_size].numpy()
    assert step["logits"].shape == (len(text_lens), n, lay.codebook_size)
    assert max_diff(step, {"logits": want}) <= TOL


@pytest.mark.parametrize("text_lens", [[4], [0, 9], [3, 0, 20]])
def test_t2i_prefix_tail_gives_the_reference_keys_and_logits(bundle_fp32, tiny, text_lens):
    """The prefix over the block's tail (leading PAD columns dropped): the same keys/values on every non-PAD
    row, and the step over those columns the same logits, as the reference over whole sequences."""
    model, config = tiny.model, tiny.config
    lay, t, n = config.layout, config.text_block_len, config.num_image_tokens
    ids = t2i_sequences(config, np.random.default_rng(5), text_lens, mask_fraction=0.6)
    start = Prompting(config).t2i_block_start(ids[:, :t])
    assert (start > 0) == (max(text_lens) + 3 < t)
    _, logits, presents = t2i_reference(model, config, ids)
    prefix = run(bundle_fp32 / "t2i_prefix.onnx", {"input_ids": ids[:, start:t]})
    real = (ids[:, start:t] != lay.pad_id)[:, None, :, None]  # (B, 1, S, 1): the rows anyone reads
    want = kv_arrays(presents, "present", slice(start, t))
    assert prefix["present.0.key"].shape[2] == t - start
    assert max(float(np.abs(np.where(real, prefix[k] - want[k], 0)).max()) for k in want) <= TOL
    feed = {k.replace("present.", "past_key_values."): v for k, v in prefix.items()}
    feed.update(input_ids=ids[:, t:], attention_mask=(ids[:, start:t] != lay.pad_id).astype(np.int64))
    step = run(bundle_fp32 / "t2i_step.onnx", feed)
    expected = logits[:, t + 1:t + 1 + n, lay.codebook_offset:lay.codebook_offset + lay.codebook_size].numpy()
    assert max_diff(step, {"logits": expected}) <= TOL


@pytest.mark.parametrize("batch,question_len", [(1, 1), (3, 12), (2, 30)])
def test_mmu_prefill_other_lengths(bundle_fp32, tiny, batch, question_len):
    model, config = tiny.model, tiny.config
    ids = mmu_sequences(config, np.random.default_rng(question_len), batch, question_len)
    _, logits, presents = mmu_reference(model, config, ids)
    got = run(bundle_fp32 / "mmu_prefill.onnx", {"input_ids": ids})
    assert got["logits"].shape == (batch, 1, config.layout.vocab_size)
    assert max_diff(got, {"logits": logits[:, -1:].numpy(), **kv_arrays(presents, "present", slice(None))}) <= TOL


@pytest.mark.parametrize("cls", [T2IPrefix, T2IStep, MMUPrefill, DecodeStep])
def test_transformer_graph_validation_cases(bundle_fp32, tiny, cls):
    """The exporter's own cases with another seed: decode_step includes garbage cache columns masked out."""
    model, config = tiny.model, tiny.config
    check = check_graph(cls(model, config, seed=11), bundle_fp32 / f"{cls.name}.onnx", "fp32")
    assert check.passed and check.max_abs_diff <= TOL, check
    assert sorted({s["input_ids"][0] for s in check.shapes}) == [1, 3]


def test_external_data_graph(tiny, tmp_path):
    """The layout used above 2 GB: weights in one {graph}.data file, listed with its own sha256."""
    from showo_sdk.export.bundle_writer import graph_entry
    from showo_sdk.export.common import export_graph, graph_files

    model, config = tiny.model, tiny.config
    graph = T2IStep(model, config, seed=2)
    path = tmp_path / "t2i_step.onnx"
    export_graph(graph, path, external=True)
    assert [p.name for p in graph_files(path)] == ["t2i_step.onnx", "t2i_step.onnx.data"]
    inline = sum(len(t.raw_data) for t in onnx.load(str(path), load_external_data=False).graph.initializer)
    assert inline < 0.05 * (tmp_path / "t2i_step.onnx.data").stat().st_size  # the weights live in the .data file
    entry = graph_entry(graph.spec(), path, "fp32", "dynamo")
    assert entry["external_data"]["file"] == "t2i_step.onnx.data" and len(entry["external_data"]["sha256"]) == 64
    check = check_graph(graph, path, "fp32")
    assert check.passed, check
