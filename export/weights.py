"""One weights file for all transformer graphs: identical tensors are stored once and shared.

The four transformer graphs (prefix, step, prefill, decode) hold the same layers; exported one by
one, each would carry its own copy (4 x 5.2 GB at Show-o's 1.3B in fp32). As each graph is written,
:class:`WeightStore` moves every initializer of at least ``threshold`` bytes into
one external-data file, writing each distinct tensor (same dtype, shape and bytes) once, and points
every graph at it with ONNX's standard ``location``/``offset``/``length`` entries, which ONNX
Runtime and TensorRT's parser read. Tensors are read one at a time (memory-mapped when they are
already external), so memory stays near one weight matrix at any model size.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import BinaryIO

import numpy as np
import onnx
from onnx import numpy_helper

from .common import ExportError, graph_files

#: Initializers smaller than this stay inside their graph (scalars, shapes, norms' small vectors).
THRESHOLD = 1024
#: Offsets of tensors of at least one page are page aligned (so a loader may memory-map them in place).
PAGE = 4096
_TYPED_FIELDS = ("raw_data", "float_data", "int32_data", "int64_data", "double_data", "uint64_data", "string_data")


class TensorReader:
    """Raw bytes of initializers, from the proto or from memory-mapped external-data files."""

    def __init__(self, directory: Path):
        self.directory = directory
        self._maps: dict[str, np.memmap] = {}

    def raw(self, tensor: onnx.TensorProto) -> bytes | memoryview:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            if tensor.HasField("raw_data"):
                return tensor.raw_data
            return numpy_helper.to_array(tensor).tobytes()
        info = {e.key: e.value for e in tensor.external_data}
        location = info["location"]
        if location not in self._maps:
            self._maps[location] = np.memmap(self.directory / location, dtype=np.uint8, mode="r")
        start = int(info.get("offset", 0))
        length = int(info.get("length", self._maps[location].size - start))
        return memoryview(self._maps[location][start:start + length])

    def close(self) -> None:
        self._maps.clear()


class _Writer:
    """Appends distinct tensors to the shared file; returns each tensor's (offset, length)."""

    def __init__(self, fh: BinaryIO):
        self.fh = fh
        self.seen: dict[tuple, tuple[int, int]] = {}
        self.stored = self.referenced = 0

    def put(self, tensor: onnx.TensorProto, raw: bytes | memoryview) -> tuple[int, int]:
        key = (tensor.data_type, tuple(tensor.dims), hashlib.sha256(raw).hexdigest())
        self.referenced += len(raw)
        if key not in self.seen:
            align = PAGE if len(raw) >= PAGE else 64
            self.fh.write(b"\0" * ((-self.fh.tell()) % align))
            offset = self.fh.tell()
            self.fh.write(raw)
            self.seen[key] = (offset, len(raw))
            self.stored += len(raw)
        return self.seen[key]


def point_at(tensor: onnx.TensorProto, location: str, offset: int, length: int) -> None:
    """Make ``tensor`` an external one read from ``location`` at [offset, offset + length); drop inline data."""
    for name in _TYPED_FIELDS:
        tensor.ClearField(name)
    del tensor.external_data[:]
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    tensor.data_location = onnx.TensorProto.EXTERNAL


class WeightStore:
    """The shared external-data file, filled graph by graph: :meth:`add` moves one graph's large
    initializers into it (each distinct tensor stored once) right after that graph is written.

    So the disk holds at most the shared file plus one graph's own copy at any time (the exporter
    adds each transformer graph as soon as it is exported: ~11 GB of scratch at 1.3B instead of
    4 x 5.2 GB). The file is only valid once :meth:`close` has run; the exporter works in a temp
    directory, so an interrupted store never becomes a bundle.
    """

    def __init__(self, directory: Path, data_name: str, threshold: int = THRESHOLD):
        self.directory, self.data_name, self.threshold = directory, data_name, threshold
        self.paths: list[Path] = []
        self.seconds = 0.0
        self._fh: BinaryIO | None = None  # opened by the first add, once no graph reads a file of that name
        self._writer: _Writer | None = None

    def add(self, path: Path) -> None:
        """Rewrite the ONNX file ``path`` to read its large initializers from the shared file; delete its own data."""
        start = time.perf_counter()
        if path.parent != self.directory:
            raise ExportError(f"shared weights: graphs must lie in {self.directory}, got {path}")
        old = set(graph_files(path)[1:])
        if self.directory / self.data_name in old:
            raise ExportError(f"shared weights: {self.data_name} is already {path.name}'s data file; choose another name")
        if self._fh is None:
            self._fh = open(self.directory / self.data_name, "xb")
            self._writer = _Writer(self._fh)
        model = onnx.load(str(path), load_external_data=False)
        reader = TensorReader(self.directory)
        try:
            for tensor in model.graph.initializer:
                raw = reader.raw(tensor)
                if len(raw) >= self.threshold:
                    point_at(tensor, self.data_name, *self._writer.put(tensor, raw))
                del raw
        finally:
            reader.close()
        self._fh.flush()
        onnx.save_model(model, str(path))
        for f in old:
            f.unlink(missing_ok=True)
        self.paths.append(path)
        self.seconds += time.perf_counter() - start

    def close(self) -> dict[str, int]:
        """Finish the file and check every graph in full; the byte counts ``referenced`` (sum over graphs) and ``stored``."""
        if self._fh is None:
            raise ExportError("shared weights: no graph was added")
        self._fh.close()
        for path in self.paths:
            try:
                onnx.checker.check_model(str(path), full_check=True)
            except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
                raise ExportError(f"{path.name} fails onnx.checker after sharing weights: {exc}") from exc
        return {"referenced": self._writer.referenced, "stored": self._writer.stored}
