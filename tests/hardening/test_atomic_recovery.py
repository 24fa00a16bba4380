"""atomic_dir: atomic exchange, recovery of a directory a killed two-rename swap left aside, stale temp clean-up."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from showo_sdk.utils import atomic


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_overwrite_swaps_and_leaves_no_temp(tmp_path):
    target = tmp_path / "ckpt"
    with atomic.atomic_dir(target) as tmp:
        (tmp / "a").write_text("old")
    with atomic.atomic_dir(target, overwrite=True) as tmp:
        (tmp / "a").write_text("new")
    assert (target / "a").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_fallback_two_renames(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    target = tmp_path / "ckpt"
    for text in ("old", "new"):
        with atomic.atomic_dir(target, overwrite=True) as tmp:
            (tmp / "a").write_text(text)
    assert (target / "a").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_exists_without_overwrite(tmp_path):
    (tmp_path / "ckpt").mkdir()
    with pytest.raises(FileExistsError), atomic.atomic_dir(tmp_path / "ckpt"):
        pass


def test_restores_dir_left_aside_by_a_killed_writer(tmp_path):
    pid = _dead_pid()
    aside = tmp_path / f".ckpt.{pid}.abcd1234.old"
    (aside / "x").mkdir(parents=True)
    (aside / "x" / "a").write_text("old")
    (tmp_path / f".ckpt.{pid}.efgh5678.tmp").mkdir()  # the killed writer's unfinished new tree
    with pytest.raises(FileExistsError), atomic.atomic_dir(tmp_path / "ckpt"):
        pass
    assert (tmp_path / "ckpt" / "a").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_keeps_temp_dirs_of_live_writers(tmp_path):
    live = tmp_path / f".ckpt.{os.getppid()}.abcd1234.tmp"
    live.mkdir()
    dead = tmp_path / f".ckpt.{_dead_pid()}.abcd1234.tmp"
    dead.mkdir()
    other = tmp_path / f".other.{_dead_pid()}.abcd1234.tmp"
    other.mkdir()
    with atomic.atomic_dir(tmp_path / "ckpt") as tmp:
        (tmp / "a").write_text("x")
    assert live.is_dir() and other.is_dir() and not dead.exists()


def test_atomic_path_cleans_stale_files(tmp_path):
    stale = tmp_path / f".f.json.{_dead_pid()}.abcd1234.tmp"
    stale.write_text("partial")
    atomic.atomic_write_text(tmp_path / "f.json", "{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.json"]
