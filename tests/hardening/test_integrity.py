"""A damaged bundle is never loaded: every corruption is refused with a BundleError naming the file.

The battery (integrity.py) damages private copies of a real exported bundle: each file flipped,
truncated, extended, deleted, replaced by a directory, by a symlink outside the bundle or to another
of its files; unexpected files added (plain, nested, hidden, a FIFO, a symlinked directory); the
manifest's version, format, precision, ids, sizes, shapes, dtypes, names and file entries edited;
and file names that escape the bundle (``..``, absolute, backslashes, NUL, a symlinked directory)
pointing at files with the *right* checksum, so only the path check stands in the way. Opening
the copy with ``showo_sdk.Runtime`` must raise BundleError naming the file (or manifest entry).
"""

from __future__ import annotations

import shutil

import pytest

from showo_sdk import BundleError
from showo_sdk.runtime.bundle import load_bundle




import showo_hardening_harness as harness  # noqa: E402  (registered by conftest.py)
integrity = harness.load("integrity")
CATALOG = integrity.catalog("outside")
MANIFEST_FLIPS = 64  # seeded random offsets per run; benchmarks/reliability.py flips every byte


def _param(c):
    marks = [pytest.mark.xfail(strict=True, reason=f"BUG {c.bug}")] if c.bug else []
    return pytest.param(c, id=c.id, marks=marks)


@pytest.fixture
def damaged_root(tiny, tmp_path):
    """(a private copy of the good bundle, a directory beside it); both removed afterwards (2 MB per test)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    yield harness.copy_bundle(tiny.bundle, tmp_path / "engine.plan"), outside
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_intact_copy_loads_and_runs(damaged_root):
    """Control: the copy the battery damages is itself a good bundle."""
    root, _ = damaged_root
    integrity.open_and_use(root)


@pytest.mark.parametrize("corruption", [_param(c) for c in CATALOG])
def test_corruption_is_refused(corruption, damaged_root):
    root, outside = damaged_root
    names = corruption.apply(root, outside)
    with pytest.raises(BundleError) as info:
        integrity.open_and_use(root)
    message = str(info.value)
    assert any(name in message for name in names), f"the message names none of {names}: {message}"
    assert "\n" not in message.strip()


def test_catalog_damages_every_file(tiny):
    """Each kind of file damage reaches every file the bundle lists, and the manifest itself."""
    listed = set(integrity.read(tiny.bundle)["files"]) | {integrity.MANIFEST}
    covered = {rel for role in integrity.ROLES for rel in integrity.files_of(tiny.bundle, role)}
    assert covered == listed
    kinds = {(c.kind, c.role) for c in CATALOG}
    for role in integrity.ROLES:
        assert {("delete", role), ("truncate-half", role), ("flip-first-byte", role),
                ("symlink-outside", role)} <= kinds


def test_manifest_byte_flips_are_refused(damaged_root):
    """Single-byte flips at seeded random offsets of manifest.json: each must be refused."""
    root, _ = damaged_root
    path = root / integrity.MANIFEST
    original = path.read_bytes()
    accepted = []
    for offset in integrity.manifest_flip_offsets(len(original), MANIFEST_FLIPS):
        integrity.flip_byte(path, offset)
        try:
            load_bundle(root)
            accepted.append((offset, original[max(0, offset - 30):offset + 10].decode(errors="replace")))
        except BundleError as exc:
            assert integrity.MANIFEST in str(exc) or "graph" in str(exc) or "bundle" in str(exc)
        path.write_bytes(original)
    assert not accepted, f"{len(accepted)}/{MANIFEST_FLIPS} flips loaded, e.g. {accepted[:3]}"
