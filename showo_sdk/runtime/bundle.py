"""Read and verify an engine bundle (``engine.plan/``) written by ``showo-export``. No torch, no onnx.

A bundle is a directory: ``manifest.json``, the ONNX graphs (+ external ``.data`` files for large
models), ``tokenizer.json`` and optional TensorRT ``.plan`` engines. :func:`load_bundle` refuses,
with a BundleError naming the file and the fix, any bundle whose format version is newer than
this SDK, whose files are missing, truncated, tampered with (sha256), unexpected, or outside the
directory, or whose graphs' names, dtypes and shapes do not match the model configuration.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..config import ShowoConfig, VQConfig
from ..errors import BundleError, ConfigError

FORMAT = "showo-sdk-bundle"
#: 2: the T2I graphs take the text block's tail (a dynamic "text" axis, leading PAD columns skipped);
#: 1: the whole block. This SDK reads both.
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
#: The manifest's own checksum: sha256 of :func:`canonical_manifest` (the manifest without this key).
MANIFEST_SHA = "manifest_sha256"
#: A manifest is a few hundred KiB at most; anything larger is refused unread.
MAX_MANIFEST_BYTES = 16 << 20
GRAPHS = ("vq_encoder", "vq_decoder", "t2i_prefix", "t2i_step", "mmu_prefill", "decode_step")
TRANSFORMER_GRAPHS = ("t2i_prefix", "t2i_step", "mmu_prefill", "decode_step")
PRECISIONS = ("fp32", "fp16", "int8")
KV_CACHE = "fixed_capacity_new_only"
_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def canonical_manifest(manifest: dict[str, Any]) -> bytes:
    """The bytes ``manifest_sha256`` covers: the manifest without that key, as sorted compact UTF-8 JSON."""
    body = {k: v for k, v in manifest.items() if k != MANIFEST_SHA}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def manifest_digest(manifest: dict[str, Any]) -> str:
    """Hex sha256 of :func:`canonical_manifest`."""
    return hashlib.sha256(canonical_manifest(manifest)).hexdigest()


def seal_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """``manifest`` with ``manifest_sha256`` set (recomputed): call it last, after every other edit."""
    body = {k: v for k, v in manifest.items() if k != MANIFEST_SHA}
    return {**body, MANIFEST_SHA: manifest_digest(body)}


@dataclass(frozen=True)
class TensorInfo:
    """A graph input or output: name, dtype ("float32", "float16", "int64"), shape (ints static, strs dynamic)."""

    name: str
    dtype: str
    shape: tuple[int | str, ...]


@dataclass(frozen=True)
class EngineInfo:
    """A TensorRT engine built from one graph, valid only for its TensorRT version and GPU compute capability."""

    graph: str
    path: Path
    trt_version: str
    compute_capability: str
    profile: dict[str, Any]


@dataclass(frozen=True)
class GraphInfo:
    """One exported graph of the bundle."""

    name: str
    precision: str
    path: Path
    exporter: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    entry: dict[str, Any]  # the manifest entry as written ("dims" with min/opt/max, "notes" such as kv_cache)
    engines: tuple[EngineInfo, ...] = ()


@dataclass(frozen=True)
class Bundle:
    """A verified bundle: its root, manifest, model config, graphs, engines and tokenizer."""

    root: Path
    manifest: dict[str, Any]
    config: ShowoConfig
    vq_config: VQConfig
    precision: str  # precision of the transformer graphs ("fp32", "fp16", "int8"); VQ graphs are fp32
    graphs: dict[str, GraphInfo]
    tokenizer_path: Path
    validation: dict[str, Any] = field(default_factory=dict)

    def graph_path(self, name: str, precision: str | None = None) -> Path:
        """Path of graph ``name``; ``precision`` (if given) must be the one the bundle holds."""
        if name not in self.graphs:
            raise BundleError(f"{self.root}: no graph {name!r}; the bundle has {sorted(self.graphs)}")
        info = self.graphs[name]
        if precision is not None and precision != info.precision:
            raise BundleError(
                f"{self.root}: graph {name} is {info.precision}, not {precision}; export a {precision} bundle with "
                f"`showo-export CKPT_DIR --out DIR --precision {precision}`")
        return info.path

    def engines(self, name: str) -> tuple[EngineInfo, ...]:
        """TensorRT engines of graph ``name`` (empty when none were built)."""
        return self.graphs[name].engines if name in self.graphs else ()


def _fix(root: Path) -> str:
    return f"re-export it with `showo-export CKPT_DIR --out {root} --force`"


def _fail(root: Path, what: str, problem: str) -> BundleError:
    return BundleError(f"bundle {root}: {what}: {problem}; {_fix(root)}")


def _safe_path(root: Path, rel: Any) -> Path:
    """The file ``rel`` names inside ``root``; refuses absolute paths, '..', odd names and links leading outside."""
    if not isinstance(rel, str) or not rel or "\\" in rel or "\x00" in rel:
        raise _fail(root, repr(rel), "file names must be non-empty relative POSIX paths")
    pure = PurePosixPath(rel)
    if pure.is_absolute() or any(part in ("", ".", "..") for part in rel.split("/")):
        raise _fail(root, rel, "the path is absolute or escapes the bundle directory")
    path = root / pure
    resolved = path.resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise _fail(root, rel, f"it resolves to {resolved}, outside the bundle (a symlink?)")
    return path


def _read_manifest(root: Path) -> dict[str, Any]:
    if not root.is_dir():
        raise BundleError(f"bundle {root} does not exist or is not a directory; create it with "
                          f"`showo-export CKPT_DIR --out {root}`")
    path = root / MANIFEST
    if path.is_symlink():
        raise _fail(root, MANIFEST, f"it is a symlink (to {os.readlink(path)}); the manifest must be a regular file "
                                    f"inside the bundle")
    if not path.is_file():
        raise BundleError(f"bundle {root}: {MANIFEST} is missing, so this is not a bundle (or a half-written one); "
                          f"{_fix(root)}")
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise _fail(root, MANIFEST, f"unreadable ({exc})") from None
    if len(data) > MAX_MANIFEST_BYTES:
        raise _fail(root, MANIFEST, f"larger than {MAX_MANIFEST_BYTES >> 20} MiB, far beyond any real manifest")
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(root, MANIFEST, f"unreadable JSON ({exc})") from None
    except RecursionError:
        raise _fail(root, MANIFEST, "unreadable JSON (nested too deeply)") from None
    if not isinstance(manifest, dict):
        raise _fail(root, MANIFEST, "must hold a JSON object")
    if manifest.get("format") != FORMAT:
        raise _fail(root, MANIFEST, f"format is {manifest.get('format')!r}, expected {FORMAT!r}")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _fail(root, MANIFEST, f"format_version {version!r} is not a positive integer")
    if version > FORMAT_VERSION:
        raise BundleError(
            f"bundle {root}: {MANIFEST} has format_version {version}, newer than this SDK reads "
            f"({FORMAT_VERSION}, showo-sdk {manifest.get('sdk_version', '?')} wrote it); upgrade showo-sdk, or "
            f"{_fix(root)} with this version")
    for key, kind in (("files", dict), ("graphs", dict), ("model", dict), ("tokenizer", dict), ("precision", str)):
        if not isinstance(manifest.get(key), kind):
            raise _fail(root, MANIFEST, f"'{key}' is missing or not a {kind.__name__}")
    return manifest


def _verify_files(root: Path, files: dict[str, Any], verify_checksums: bool) -> None:
    for rel, meta in files.items():
        path = _safe_path(root, rel)
        if not isinstance(meta, dict) or not isinstance(meta.get("sha256"), str) or not isinstance(meta.get("bytes"), int):
            raise _fail(root, MANIFEST, f"the entry of {rel} needs 'sha256' (str) and 'bytes' (int)")
        if not path.is_file():
            raise _fail(root, rel, "the file is missing")
        size = path.stat().st_size
        if size != meta["bytes"]:
            raise _fail(root, rel, f"{size} bytes where the manifest lists {meta['bytes']} (truncated or modified)")
        if verify_checksums and sha256_file(path) != meta["sha256"]:
            raise _fail(root, rel, "sha256 does not match the manifest (the file was modified or corrupted)")
    listed = set(files) | {MANIFEST}
    extra = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + [d for d in dirnames if (Path(dirpath) / d).is_symlink()]:
            rel = (Path(dirpath) / name).relative_to(root).as_posix()
            if rel not in listed:
                extra.append(rel)
    if extra:
        raise BundleError(
            f"bundle {root}: unexpected files {sorted(extra)[:10]} not listed in {MANIFEST}; remove them, or "
            f"{_fix(root)}")


def _expected_ids(config: ShowoConfig) -> dict[str, int]:
    lay = config.layout
    return {"pad": lay.pad_id, "soi": lay.soi_id, "eoi": lay.eoi_id, "t2i": lay.t2i_id, "mmu": lay.mmu_id,
            "bos": lay.bos_id, "eos": lay.eos_id, "mask": lay.mask_id, "codebook_offset": lay.codebook_offset}


def model_summary(config: ShowoConfig, vq: VQConfig) -> dict[str, Any]:
    """The derived numbers the manifest's "model" section records next to the configs (ids, N, T, K, V...)."""
    tc = config.transformer
    f = vq.downsample_factor
    return {
        "ids": _expected_ids(config),
        "num_image_tokens": config.num_image_tokens, "image_grid": list(config.image_grid),
        "text_block_len": config.text_block_len, "max_text_len": config.max_text_len,
        "t2i_seq_len": config.t2i_seq_len, "codebook_size": config.layout.codebook_size,
        "vocab_size": config.layout.vocab_size, "text_vocab_size": config.layout.text_vocab_size,
        "num_layers": tc.num_layers, "num_heads": tc.num_heads, "head_dim": tc.head_dim,
        "hidden_size": tc.hidden_size, "max_position_embeddings": tc.max_position_embeddings,
        "vq_downsample": f, "vq_resolution": vq.resolution,
        "image_size": [config.image_grid[0] * f, config.image_grid[1] * f], "kv_cache": KV_CACHE,
    }


def _read_configs(root: Path, model: dict[str, Any]) -> tuple[ShowoConfig, VQConfig]:
    try:
        config = ShowoConfig.from_dict(model.get("config"))
        vq = VQConfig.from_dict(model.get("vq_config"))
    except ConfigError as exc:
        raise _fail(root, f"{MANIFEST} model section", str(exc)) from None
    expected = model_summary(config, vq)
    wrong = [k for k, v in expected.items() if model.get(k) != v]
    if wrong:
        raise _fail(root, f"{MANIFEST} model section",
                    f"{wrong} disagree with the model config (expected {[expected[k] for k in wrong]})")
    if vq.codebook_size != config.layout.codebook_size:
        raise _fail(root, f"{MANIFEST} model section",
                    f"VQ codebook {vq.codebook_size} != transformer codebook {config.layout.codebook_size}")
    return config, vq


def expected_io(name: str, config: ShowoConfig, kv_dtype: str, format_version: int = FORMAT_VERSION,
                ) -> tuple[list[tuple], list[tuple]]:
    """The graph contract: [(name, dtype, shape)] of inputs and outputs, shape entries int (static) or None (dynamic).

    Format 1 bundles' T2I graphs take the whole text block (static T); later ones any tail of it.
    """
    tc, lay = config.transformer, config.layout
    h, d, n, k, v = tc.num_heads, tc.head_dim, config.num_image_tokens, lay.codebook_size, lay.vocab_size
    t = config.text_block_len if format_version == 1 else None

    def kv(prefix: str, length: int | None) -> list[tuple]:
        return [(f"{prefix}.{i}.{x}", kv_dtype, (None, h, length, d)) for i in range(tc.num_layers) for x in ("key", "value")]

    if name == "vq_encoder":
        return [("pixels", "float32", (None, 3, None, None))], [("codes", "int64", (None, None))]
    if name == "vq_decoder":
        return [("codes", "int64", (None, None)), ("grid", "int64", (2,))], [("pixels", "float32", (None, 3, None, None))]
    if name == "t2i_prefix":
        return [("input_ids", "int64", (None, t))], kv("present", t)
    if name == "t2i_step":
        return ([("input_ids", "int64", (None, n + 2)), ("attention_mask", "int64", (None, t)), *kv("past_key_values", t)],
                [("logits", "float32", (None, n, k))])
    if name == "mmu_prefill":
        return [("input_ids", "int64", (None, None))], [("logits", "float32", (None, 1, v)), *kv("present", None)]
    if name == "decode_step":
        return ([("input_ids", "int64", (None, 1)), ("position_ids", "int64", (None, 1)),
                 ("attention_mask", "int64", (None, None)), *kv("past_key_values", None)],
                [("logits", "float32", (None, 1, v)), *kv("present", 1)])
    raise KeyError(name)


def _tensors(root: Path, graph: str, kind: str, items: Any, expected: list[tuple]) -> tuple[TensorInfo, ...]:
    if not isinstance(items, list) or not all(isinstance(x, dict) for x in items):
        raise _fail(root, f"graph {graph}", f"'{kind}' must be a list of objects")
    got = tuple(TensorInfo(str(x.get("name")), str(x.get("dtype")), tuple(x.get("shape") or ())) for x in items)
    names = [x.name for x in got]
    want_names = [e[0] for e in expected]
    if names != want_names:
        raise _fail(root, f"graph {graph}", f"{kind} are {names}, expected {want_names}")
    for info, (name, dtype, shape) in zip(got, expected):
        ok_shape = len(info.shape) == len(shape) and all(
            (isinstance(g, str) if w is None else g == w) for g, w in zip(info.shape, shape))
        if info.dtype != dtype or not ok_shape:
            want = [("dynamic" if w is None else w) for w in shape]
            raise _fail(root, f"graph {graph}",
                        f"{kind[:-1]} {name} is {info.dtype} {list(info.shape)}, expected {dtype} {want} "
                        f"for this model config")
    return got


def _read_graphs(root: Path, manifest: dict[str, Any], config: ShowoConfig) -> dict[str, GraphInfo]:
    files, graphs, precision = manifest["files"], manifest["graphs"], manifest["precision"]
    if precision not in PRECISIONS:
        raise _fail(root, MANIFEST, f"precision {precision!r} is not one of {PRECISIONS}")
    missing = [g for g in GRAPHS if g not in graphs]
    unknown = [g for g in graphs if g not in GRAPHS]
    if missing or unknown:
        raise _fail(root, MANIFEST, f"graphs missing {missing}, unknown {unknown}; a bundle holds exactly {list(GRAPHS)}")
    out = {}
    for name in GRAPHS:
        entry = graphs[name]
        if not isinstance(entry, dict):
            raise _fail(root, f"graph {name}", "its manifest entry must be an object")
        want_precision = precision if name in TRANSFORMER_GRAPHS else "fp32"
        if entry.get("precision") != want_precision:
            raise _fail(root, f"graph {name}", f"precision {entry.get('precision')!r}, expected {want_precision!r}")
        if not isinstance(entry.get("tensorrt", []), list):
            raise _fail(root, f"graph {name}", "'tensorrt' must be a list of engine entries")
        listed = [entry] + ([entry["external_data"]] if entry.get("external_data") else []) + list(entry.get("tensorrt", []))
        for item in listed:
            rel = item.get("file") if isinstance(item, dict) else None
            if rel not in files:
                raise _fail(root, f"graph {name}", f"file {rel!r} is not listed in 'files'")
            if files[rel].get("sha256") != item.get("sha256"):
                raise _fail(root, f"graph {name}", f"the sha256 of {rel} differs between 'graphs' and 'files'")
        kv_dtype = "float16" if entry["precision"] == "fp16" else "float32"
        want_in, want_out = expected_io(name, config, kv_dtype, manifest["format_version"])
        inputs = _tensors(root, name, "inputs", entry.get("inputs"), want_in)
        outputs = _tensors(root, name, "outputs", entry.get("outputs"), want_out)
        notes = entry.get("notes") if isinstance(entry.get("notes"), dict) else {}
        if name == "decode_step" and notes.get("kv_cache") != KV_CACHE:
            raise _fail(root, "graph decode_step",
                        f"notes.kv_cache is {notes.get('kv_cache')!r}; this SDK runs {KV_CACHE!r}")
        engines = []
        for eng in entry.get("tensorrt", []):
            engines.append(EngineInfo(name, _safe_path(root, eng["file"]), str(eng.get("trt_version")),
                                      str(eng.get("compute_capability")), dict(eng.get("profile") or {})))
        out[name] = GraphInfo(name, entry["precision"], _safe_path(root, entry["file"]), str(entry.get("exporter")),
                              inputs, outputs, entry, tuple(engines))
    return out


def _verify_manifest_digest(root: Path, manifest: dict[str, Any]) -> None:
    """Checked last, so an edit that breaks a specific rule is reported by that rule's clearer message."""
    stored = manifest.get(MANIFEST_SHA)
    if not isinstance(stored, str):
        raise _fail(root, MANIFEST, f"'{MANIFEST_SHA}' (the manifest's own checksum) is missing, so the manifest "
                                    f"cannot be verified (written by hand or by an older exporter?)")
    try:
        actual = manifest_digest(manifest)
    except (TypeError, ValueError, RecursionError) as exc:
        raise _fail(root, MANIFEST, f"cannot be canonicalised ({exc})") from None
    if actual != stored:
        raise _fail(root, MANIFEST, f"{MANIFEST} was modified after export ({MANIFEST_SHA} does not match its "
                                    f"contents)")


def load_bundle(path: str | os.PathLike, verify_checksums: bool = True) -> Bundle:
    """Read ``path``/manifest.json and verify the whole bundle (see the module docstring); raise BundleError.

    ``verify_checksums=False`` skips hashing (sizes, names and layout are still checked): for a
    bundle already verified on this machine.
    """
    root = Path(path)
    manifest = _read_manifest(root)
    _verify_files(root, manifest["files"], verify_checksums)
    config, vq = _read_configs(root, manifest["model"])
    graphs = _read_graphs(root, manifest, config)
    tok = manifest["tokenizer"]
    if tok.get("file") not in manifest["files"]:
        raise _fail(root, MANIFEST, f"tokenizer file {tok.get('file')!r} is not listed in 'files'")
    if tok.get("text_vocab_size") != config.layout.text_vocab_size:
        raise _fail(root, str(tok.get("file")), f"text vocabulary {tok.get('text_vocab_size')} != model's "
                    f"{config.layout.text_vocab_size}")
    _verify_manifest_digest(root, manifest)
    return Bundle(root=root, manifest=manifest, config=config, vq_config=vq, precision=manifest["precision"],
                  graphs=graphs, tokenizer_path=_safe_path(root, tok["file"]),
                  validation=dict(manifest.get("validation") or {}))
