"""Fixtures shared by the test modules."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def one_thread():
    """One thread and no oneDNN: every random network has new conv shapes, and oneDNN's
    per-shape kernel creation (plus thread contention on shared CI cores) would dominate."""
    threads, mkldnn = torch.get_num_threads(), torch.backends.mkldnn.enabled
    torch.set_num_threads(1)
    torch.backends.mkldnn.enabled = False
    yield
    torch.set_num_threads(threads)
    torch.backends.mkldnn.enabled = mkldnn


def archive_records(path) -> int:
    """Rows in a run's archive.sqlite (0 while it does not exist or is being written)."""
    import sqlite3
    from pathlib import Path

    if not Path(path).exists():
        return 0
    try:
        con = sqlite3.connect(path, timeout=1)
        n = con.execute("SELECT COUNT(*) FROM records").fetchone()[0]
        con.close()
        return n
    except sqlite3.Error:
        return 0


def kill_after_records(cmd: list[str], archive, n: int, *, cwd, env=None,
                       timeout: float = 240, poll: float = 0.05) -> int:
    """Start ``cmd`` (a search), SIGKILL it as soon as ``archive`` holds ``n`` records, and
    return how many it holds then; fails the test when the search ends first."""
    import os
    import signal
    import subprocess
    import tempfile
    import time

    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.time() + timeout
        while archive_records(archive) < n and time.time() < deadline:
            if proc.poll() is not None:
                break
            time.sleep(poll)
        if proc.poll() is not None:
            err.seek(0)
            tail = err.read().decode(errors="replace")[-2000:]
            raise AssertionError(f"the search ended (exit {proc.returncode}) before it could "
                                 f"be killed:\n{tail}")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return archive_records(archive)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` need CUDA: skipped, saying so, on a machine without it."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none here)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
