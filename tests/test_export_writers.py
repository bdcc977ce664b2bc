"""Exports replace only regular files, atomically, and clean up after themselves (issue 8, item 5).

Real files, a real FIFO, the real ``/dev/null``, a real SQLite store and a real SIGTERM to a real process.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_services_exporting import STORE_BACKENDS, labelled  # noqa: F401 - SQLite (the CLI opens db_url); a store with labels
from ui_support import wait_until

from app.cli import main
from app.export import ExportError
from app.export.writers import clean_leftovers
from app.services.exporting import export_dataset

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(not Path("/dev/null").exists(), reason="needs /dev/null")
def test_dev_null_is_never_replaced(store, labelled, capsys, db_url):  # noqa: F811
    before = os.stat("/dev/null").st_mode
    code = main(["export", "--format", "prm", "--out", "/dev/null", "--output", "jsonl", "--overwrite", "--db", db_url])
    err = capsys.readouterr().err
    assert code == 2 and "character device" in err and "regular files" in err
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode) and os.stat("/dev/null").st_mode == before


def test_a_fifo_is_never_replaced(store, labelled, tmp_path):  # noqa: F811
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    for overwrite in (False, True):
        with pytest.raises(ExportError, match="FIFO"):
            export_dataset(store, "prm", fifo, overwrite=overwrite)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_symlink_is_never_followed_or_replaced(store, labelled, tmp_path):  # noqa: F811
    real = tmp_path / "real.jsonl"
    real.write_text("precious\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(real)
    with pytest.raises(ExportError, match="symbolic link"):
        export_dataset(store, "prm", link, overwrite=True)
    assert link.is_symlink() and real.read_text() == "precious\n"


def test_an_existing_empty_file_needs_overwrite(store, labelled, tmp_path):  # noqa: F811
    out = tmp_path / "empty.jsonl"
    out.touch()
    with pytest.raises(ExportError, match="already exists; add --overwrite"):
        export_dataset(store, "prm", out)
    assert out.read_text() == ""
    export_dataset(store, "prm", out, overwrite=True)
    assert out.read_text().count("\n") == 3


def test_leftovers_of_a_killed_export_are_cleaned_and_a_live_ones_kept(store, labelled, tmp_path):  # noqa: F811
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".big.jsonl.{dead.pid}.partial"
    stale.write_bytes(b"x" * 1000)
    live = tmp_path / f".big.jsonl.{os.getppid()}.partial"  # a process that is still running
    live.write_bytes(b"y")
    export_dataset(store, "prm", tmp_path / "prm.jsonl")
    assert not stale.exists() and live.exists()
    assert clean_leftovers(tmp_path) == []
    assert {p.name for p in tmp_path.glob(".*")} == {live.name}


_SLOW_EXPORT = """
import sys, time
from pathlib import Path
from app.export.writers import write_jsonl

class Slow:
    def __iter__(self):
        for i in range(10_000):
            if i == 1:
                print("writing", flush=True)
            time.sleep(0.01)
            yield {"i": i}

write_jsonl(Slow(), Path(sys.argv[1]))
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_mid_write_leaves_no_file_and_no_temp(tmp_path, sig):
    out = tmp_path / "big.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_EXPORT, str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"writing"
        wait_until(lambda: list(tmp_path.glob(".big.jsonl.*.partial")), timeout=10, what="the temp file")
        time.sleep(0.2)
        proc.send_signal(sig)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert list(tmp_path.iterdir()) == []  # was: a 36 MB .big.jsonl.partial left behind
