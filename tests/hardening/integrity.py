"""The catalog of bundle corruptions: every file damaged every way, the manifest edited, paths escaping.

Each :class:`Corruption` damages a private copy of a good bundle (``apply(root, outside)``;
``outside`` is a directory beside it, for symlink and traversal targets). The contract: opening the
bundle with ``showo_sdk.Runtime`` raises ``BundleError`` whose message names the damaged file (or
the manifest entry), before any graph runs. Attacks are made as strong as possible: a traversal
target exists with the right size and sha256, so only the path check can stop it.

Files are addressed by *role* (a graph name, "tokenizer", "manifest"), resolved from the bundle's
own manifest, so the same catalog covers the tiny test bundle and the shipped model's bundle.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GRAPHS = ("vq_encoder", "vq_decoder", "t2i_prefix", "t2i_step", "mmu_prefill", "decode_step")
ROLES = GRAPHS + ("tokenizer", "manifest")
MANIFEST = "manifest.json"

BUG_MANIFEST_LINK = ("showo_sdk/runtime/bundle.py _read_manifest: manifest.json itself is not checked with _safe_path, "
                     "so a manifest symlinked outside the bundle is read and trusted")
BUG_NESTED = ("showo_sdk/runtime/bundle.py _read_manifest: json.loads' RecursionError (deeply nested JSON) is not "
              "caught, so it escapes instead of a BundleError")
BUG_SWAP = ("showo_sdk/runtime/backends.py: a graph's real inputs/outputs are never compared with its manifest entry; "
            "a manifest naming another listed graph file loads, and the first call fails inside ONNX Runtime's "
            "IOBinding with a raw RuntimeError")
BUG_MANIFEST_FLIP = ("manifest.json has no checksum of its own (showo_sdk/runtime/bundle.py, export/bundle_writer.py): "
                     "a byte flipped in unvalidated fields (dims, notes, validation, created) loads silently")


@dataclass(frozen=True)
class Corruption:
    id: str
    kind: str
    role: str | None  # the file role damaged, None for whole-bundle edits
    apply: Callable[[Path, Path], list[str]]  # -> the names the error must mention (any one)
    bug: str | None = None


def read(root: Path) -> dict[str, Any]:
    return json.loads((root / MANIFEST).read_text(encoding="utf-8"))


def write(root: Path, manifest: Any) -> None:
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def files_of(root: Path, role: str) -> list[str]:
    """The bundle files of a role: a graph's ONNX (+ external data, + engines), the tokenizer, the manifest."""
    if role == "manifest":
        return [MANIFEST]
    m = read(root)
    if role == "tokenizer":
        return [m["tokenizer"]["file"]]
    entry = m["graphs"][role]
    items = [entry] + ([entry["external_data"]] if entry.get("external_data") else []) + list(entry.get("tensorrt", []))
    return [item["file"] for item in items]


def _sha(data: bytes) -> dict[str, Any]:
    return {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


# ---- damage done to one file ------------------------------------------------------------------------
def _flip(where: str) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        data = bytearray(path.read_bytes())
        i = {"first": 0, "middle": len(data) // 2, "last": len(data) - 1}[where]
        data[i] ^= 0x01
        path.write_bytes(bytes(data))

    return damage


def _truncate(fraction: float) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        with open(path, "r+b") as fh:
            fh.truncate(int(path.stat().st_size * fraction))

    return damage


def _append(path: Path) -> None:
    with open(path, "ab") as fh:
        fh.write(b"\0")


def _delete(path: Path) -> None:
    path.unlink()


def _replace_with_dir(path: Path) -> None:
    path.unlink()
    path.mkdir()


FILE_DAMAGE: dict[str, Callable[[Path], None]] = {
    "flip-first-byte": _flip("first"), "flip-middle-byte": _flip("middle"), "flip-last-byte": _flip("last"),
    "truncate-half": _truncate(0.5), "truncate-empty": _truncate(0.0), "append-byte": _append,
    "delete": _delete, "replace-with-directory": _replace_with_dir,
}


def _file_case(kind: str, role: str) -> Corruption:
    def apply(root: Path, outside: Path) -> list[str]:
        names = files_of(root, role)
        for rel in names:
            FILE_DAMAGE[kind](root / rel)
        return names

    return Corruption(f"{kind}[{role}]", kind, role, apply)


def _symlink_outside(role: str) -> Corruption:
    """The file is moved outside the bundle (identical bytes) and a symlink left in its place."""
    def apply(root: Path, outside: Path) -> list[str]:
        names = files_of(root, role)
        for rel in names:
            target = outside / f"moved-{rel.replace('/', '_')}"
            shutil.move(root / rel, target)
            os.symlink(target, root / rel)
        return names

    return Corruption(f"symlink-outside[{role}]", "symlink-outside", role, apply)


def _symlink_inside(role: str) -> Corruption:
    """The file is replaced by a symlink to another (listed, valid) file of the bundle."""
    def apply(root: Path, outside: Path) -> list[str]:
        names = files_of(root, role)
        other = files_of(root, "vq_decoder" if role == "vq_encoder" else "vq_encoder")[0]
        for rel in names:
            (root / rel).unlink()
            os.symlink(os.path.relpath(root / other, (root / rel).parent), root / rel)
        return names

    return Corruption(f"symlink-to-other-file[{role}]", "symlink-inside", role, apply)


# ---- unexpected files -------------------------------------------------------------------------------
def _extra(name: str, make: Callable[[Path, Path], None]) -> Corruption:
    def apply(root: Path, outside: Path) -> list[str]:
        make(root, outside)
        return [name.split("/")[0] if "/" in name else name, name]

    return Corruption(f"unexpected-file[{name}]", "unexpected-file", None, apply)


def _write(rel: str, data: bytes = b"x") -> Callable[[Path, Path], None]:
    def make(root: Path, outside: Path) -> None:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)

    return make


def _fifo(root: Path, outside: Path) -> None:
    os.mkfifo(root / "pipe")


def _dir_link(root: Path, outside: Path) -> None:
    (outside / "elsewhere").mkdir(exist_ok=True)
    (outside / "elsewhere" / "payload.onnx").write_bytes(b"x")
    os.symlink(outside / "elsewhere", root / "linked")


def _graph_backup(root: Path, outside: Path) -> None:
    shutil.copy2(root / files_of(root, "t2i_step")[0], root / "t2i_step.onnx.bak")


EXTRAS = [
    _extra("extra.onnx", _write("extra.onnx")), _extra("sub/dir/extra.bin", _write("sub/dir/extra.bin")),
    _extra(".hidden", _write(".hidden")), _extra("t2i_step.onnx.bak", _graph_backup),
    _extra("linked", _dir_link), _extra("pipe", _fifo),
]


# ---- manifest edits -----------------------------------------------------------------------------------
def _edit(case_id: str, change: Callable[[dict[str, Any], Path, Path], list[str] | None],
          bug: str | None = None) -> Corruption:
    def apply(root: Path, outside: Path) -> list[str]:
        m = read(root)
        names = change(m, root, outside)
        write(root, m)
        return names or [MANIFEST]

    return Corruption(f"manifest-edit[{case_id}]", "manifest-edit", "manifest", apply, bug)


def _set(path: tuple, value: Any, names: tuple[str, ...] = ()) -> Callable:
    def change(m: dict[str, Any], root: Path, outside: Path) -> list[str]:
        node = m
        for key in path[:-1]:
            node = node[key]
        if value is _DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value(node[path[-1]]) if callable(value) else value
        return [MANIFEST, *names]

    return change


_DELETE = object()


def _first_static(items: list[dict]) -> tuple[int, int]:
    for i, item in enumerate(items):
        for j, dim in enumerate(item["shape"]):
            if isinstance(dim, int):
                return i, j
    raise LookupError("no static dimension")


def _shape_edit(graph: str, kind: str) -> Callable:
    def change(m: dict[str, Any], root: Path, outside: Path) -> list[str]:
        items = m["graphs"][graph][kind]
        try:
            i, j = _first_static(items)
            items[i]["shape"][j] += 1
        except LookupError:  # all dynamic: make one static, which the reader must refuse too
            items[0]["shape"][0] = 7
        return [MANIFEST, graph]

    return change


def _swap_graph_file(m: dict[str, Any], root: Path, outside: Path) -> list[str]:
    other = m["graphs"]["t2i_prefix"]
    m["graphs"]["t2i_step"]["file"], m["graphs"]["t2i_step"]["sha256"] = other["file"], other["sha256"]
    return [MANIFEST, "t2i_step", other["file"]]


def _raw_manifest(case_id: str, data: bytes, bug: str | None = None) -> Corruption:
    def apply(root: Path, outside: Path) -> list[str]:
        (root / MANIFEST).write_bytes(data)
        return [MANIFEST]

    return Corruption(f"manifest-edit[{case_id}]", "manifest-edit", "manifest", apply, bug)


def _id_keys() -> tuple[str, ...]:
    return ("pad", "soi", "eoi", "t2i", "mmu", "bos", "eos", "mask", "codebook_offset")


MANIFEST_EDITS = [
    _edit("format_version=3 (newer)", _set(("format_version",), 3)),
    _edit("format_version=1 (its graphs are format 2's)", _set(("format_version",), 1, ("t2i_prefix",))),
    _edit("format_version=0", _set(("format_version",), 0)),
    _edit("format_version='1'", _set(("format_version",), "1")),
    _edit("format_version=true", _set(("format_version",), True)),
    _edit("format_version missing", _set(("format_version",), _DELETE)),
    _edit("format=onnx-bundle", _set(("format",), "onnx-bundle")),
    _edit("precision=int4", _set(("precision",), "int4")),
    _edit("t2i_step precision=fp16", _set(("graphs", "t2i_step", "precision"), "fp16", ("t2i_step",))),
    _edit("vq_encoder precision=int8", _set(("graphs", "vq_encoder", "precision"), "int8", ("vq_encoder",))),
    *[_edit(f"ids.{k}+1", _set(("model", "ids", k), lambda v: v + 1)) for k in _id_keys()],
    _edit("num_image_tokens+1", _set(("model", "num_image_tokens"), lambda v: v + 1)),
    _edit("image_grid doubled", _set(("model", "image_grid"), lambda v: [2 * x for x in v])),
    _edit("codebook_size+1", _set(("model", "codebook_size"), lambda v: v + 1)),
    _edit("vocab_size+1", _set(("model", "vocab_size"), lambda v: v + 1)),
    _edit("text_block_len-1", _set(("model", "text_block_len"), lambda v: v - 1)),
    _edit("num_layers+1", _set(("model", "num_layers"), lambda v: v + 1)),
    _edit("config hidden_size doubled", _set(("model", "config", "transformer", "hidden_size"), lambda v: 2 * v)),
    _edit("config codebook_size doubled", _set(("model", "config", "layout", "codebook_size"), lambda v: 2 * v)),
    _edit("vq_config codebook_bits+1", _set(("model", "vq_config", "codebook_bits"), lambda v: v + 1)),
    *[_edit(f"{g} input shape", _shape_edit(g, "inputs")) for g in GRAPHS],
    *[_edit(f"{g} output shape", _shape_edit(g, "outputs")) for g in GRAPHS],
    *[_edit(f"{g} input dtype", _set(("graphs", g, "inputs", 0, "dtype"), "float64", (g,))) for g in GRAPHS],
    *[_edit(f"{g} output renamed", _set(("graphs", g, "outputs", 0, "name"), "renamed", (g,))) for g in GRAPHS],
    _edit("t2i_step inputs reordered", _set(("graphs", "t2i_step", "inputs"), lambda v: v[::-1], ("t2i_step",))),
    _edit("decode_step kv_cache=concat", _set(("graphs", "decode_step", "notes", "kv_cache"), "concat",
                                              ("decode_step",))),
    _edit("graph vq_decoder missing", _set(("graphs", "vq_decoder"), _DELETE)),
    _edit("unknown graph", _set(("graphs", "extra_graph"), {"file": "extra.onnx"})),
    _edit("graph file not listed", _set(("graphs", "mmu_prefill", "file"), "nope.onnx", ("mmu_prefill", "nope.onnx"))),
    _edit("graph sha256 != files sha256", _set(("graphs", "t2i_prefix", "sha256"), "f" * 64, ("t2i_prefix",))),
    _edit("t2i_step names the t2i_prefix file", _swap_graph_file),
    _edit("files: sha256 edited", lambda m, r, o: (m["files"]["tokenizer.json"].update(sha256="0" * 64),
                                                    ["tokenizer.json"])[1]),
    _edit("files: bytes edited", lambda m, r, o: (m["files"]["vq_decoder.onnx"].update(bytes=1),
                                                   ["vq_decoder.onnx"])[1]),
    _edit("files: entry removed", lambda m, r, o: (m["files"].pop("decode_step.onnx"), ["decode_step.onnx"])[1]),
    _edit("files: not an object", _set(("files",), [])),
    _edit("tokenizer text_vocab_size+1", _set(("tokenizer", "text_vocab_size"), lambda v: v + 1, ("tokenizer.json",))),
    _edit("tokenizer file not listed", _set(("tokenizer", "file"), "other.json", ("other.json",))),
    _edit("model section missing", _set(("model",), _DELETE)),
    _raw_manifest("not JSON", b"{not json"),
    _raw_manifest("a JSON array", b"[]"),
    _raw_manifest("latin-1 bytes", "{\"format\": \"caf\xe9\"}".encode("latin-1")),
    _raw_manifest("empty", b""),
    _raw_manifest("100000 nested brackets", b"[" * 100_000 + b"]" * 100_000),
]


# ---- names that escape the bundle ---------------------------------------------------------------------
def _traversal(case_id: str, name: str | Callable[[Path], str], where: str = "files") -> Corruption:
    """List ``rel`` in the manifest (with the true sha256 and size of the file it reaches) and point ``where`` at it.

    where: "files" (only listed), "graph" (t2i_step's file), "tokenizer", "external_data" (of t2i_step).
    ``name`` may be a function of the outside directory (for absolute paths).
    """
    def apply(root: Path, outside: Path) -> list[str]:
        rel = name(outside) if callable(name) else name
        m = read(root)
        source = root / (m["tokenizer"]["file"] if where == "tokenizer" else m["graphs"]["t2i_step"]["file"])
        data = source.read_bytes()
        if rel and "\x00" not in rel and "\\" not in rel:
            target = Path(rel) if rel.startswith("/") else root / rel
            if not target.resolve().is_relative_to(root.resolve()):
                target.resolve().parent.mkdir(parents=True, exist_ok=True)
                target.resolve().write_bytes(data)
        m["files"][rel] = _sha(data)
        if where == "graph":
            m["graphs"]["t2i_step"]["file"] = rel
            m["graphs"]["t2i_step"]["sha256"] = m["files"][rel]["sha256"]
        elif where == "tokenizer":
            m["tokenizer"]["file"] = rel
        elif where == "external_data":
            m["graphs"]["t2i_step"]["external_data"] = {"file": rel, **_sha(data)}
        write(root, m)
        return [repr(rel), rel] if rel else [repr(rel)]

    return Corruption(f"traversal[{case_id}]", "traversal", None, apply)


def _traversals(outside_name: str) -> list[Corruption]:
    return [
        _traversal("files: ../outside.onnx", f"../{outside_name}/outside.onnx"),
        _traversal("files: absolute path", lambda outside: str(outside / "abs" / "outside.onnx")),
        _traversal("files: sub/../../outside.onnx", f"sub/../../{outside_name}/outside.onnx"),
        _traversal("files: ./tokenizer.json", "./tokenizer.json"),
        _traversal("files: backslashes", "sub\\..\\..\\outside.onnx"),
        _traversal("files: empty name", ""),
        _traversal("files: NUL in name", "t2i_step.onnx\x00.txt"),
        _traversal("graph file: ../outside.onnx", f"../{outside_name}/outside.onnx", "graph"),
        _traversal("graph file: absolute path", lambda outside: str(outside / "abs" / "graph.onnx"), "graph"),
        _traversal("tokenizer file: ../tok.json", f"../{outside_name}/tok.json", "tokenizer"),
        _traversal("external_data: ../weights.data", f"../{outside_name}/weights.data", "external_data"),
    ]


def _linked_dir(root: Path, outside: Path) -> list[str]:
    """A listed file inside a sub-directory that is a symlink to a directory outside the bundle."""
    m = read(root)
    src = root / m["graphs"]["t2i_step"]["file"]
    (outside / "dir").mkdir(exist_ok=True)
    shutil.copy2(src, outside / "dir" / "t2i_step.onnx")
    os.symlink(outside / "dir", root / "sub")
    m["files"]["sub/t2i_step.onnx"] = _sha(src.read_bytes())
    m["graphs"]["t2i_step"]["file"] = "sub/t2i_step.onnx"
    write(root, m)
    return ["sub/t2i_step.onnx", "sub"]


def catalog(outside_name: str = "outside") -> list[Corruption]:
    """Every corruption, in a stable order (ids are unique)."""
    cases: list[Corruption] = []
    for role in ROLES:
        for kind in FILE_DAMAGE:
            if role == "manifest" and kind in ("flip-middle-byte", "replace-with-directory"):
                continue  # the manifest's middle byte: see manifest_flip_offsets; a directory: "missing" below
            cases.append(_file_case(kind, role))
        cases.append(_symlink_outside(role))
        if role != "manifest":
            cases.append(_symlink_inside(role))
    cases += EXTRAS + MANIFEST_EDITS + _traversals(outside_name)
    cases.append(Corruption("traversal[listed file in a symlinked directory]", "traversal", None, _linked_dir))
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), "duplicate corruption ids"
    return cases


def open_and_use(root: Path) -> None:
    """Open the bundle with the public API and run every graph once (generate + understand).

    A corruption must be refused in the constructor, or at the latest here, with a BundleError.
    """
    import numpy as np

    from showo_sdk import Runtime

    rt = Runtime(root, backend="ort-cpu", num_threads=1)
    rt.generate("a red circle", steps=2, seed=0, output="numpy")
    rt.understand(np.zeros((64, 64, 3), dtype=np.uint8), "What is it?", max_new_tokens=2)


def manifest_flip_offsets(size: int, count: int | None, seed: int = 0) -> list[int]:
    """Offsets of single-byte flips in the manifest: ``count`` seeded random ones, or all (``None``)."""
    import random

    if count is None or count >= size:
        return list(range(size))
    return sorted(random.Random(seed).sample(range(size), count))


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
