"""``fulcrum serve --workers N`` gives its workers a temp metrics directory named after its own pid, and
removes those a killed supervisor left behind (and only those)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from fulcrum_core.cli.serve import METRICS_DIR_PREFIX, _shared_metrics


def _gone_pid() -> int:
    """The pid of a process that has ended."""
    process = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    return int(process.stdout)


@pytest.fixture
def temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temp dir ``tempfile`` uses, for this test alone."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv("FULCRUM_METRICS_DIR", raising=False)
    return tmp_path


def _made(path: Path) -> Path:
    path.mkdir()
    (path / "counter_1.db").write_bytes(b"x")
    return path


def test_the_directory_names_the_supervisor_and_goes_when_it_stops(temp: Path) -> None:
    with _shared_metrics(2, None):
        directory = Path(os.environ["FULCRUM_METRICS_DIR"])
        assert directory.parent == temp
        assert directory.name.startswith(f"{METRICS_DIR_PREFIX}{os.getpid()}-")
    assert not directory.exists()
    assert "FULCRUM_METRICS_DIR" not in os.environ


def test_a_killed_supervisors_directory_is_removed_by_the_next(temp: Path) -> None:
    """One left by a gone supervisor goes; a running supervisor's, an older unnamed one, another
    program's, a plain file and a link (and what it points to) stay."""
    gone = _gone_pid()
    stale = _made(temp / f"{METRICS_DIR_PREFIX}{gone}-ab12_x")
    running = _made(temp / f"{METRICS_DIR_PREFIX}{os.getppid()}-cd34")
    unnamed = _made(temp / f"{METRICS_DIR_PREFIX}q8w7e6r5")
    other = _made(temp / f"other-metrics-{gone}-ab12")
    plain = temp / f"{METRICS_DIR_PREFIX}{gone}-file"
    plain.write_text("")
    target = _made(temp / "kept-by-a-user")
    link = temp / f"{METRICS_DIR_PREFIX}{gone}-link"
    link.symlink_to(target)
    with _shared_metrics(2, None):
        assert not stale.exists()
        assert all(path.exists() for path in (running, unnamed, other, plain, link, target / "counter_1.db"))


def test_a_user_given_directory_is_used_as_is_and_nothing_is_removed(temp: Path) -> None:
    """With ``metrics_dir`` (or one worker) the supervisor makes no directory and removes none."""
    stale = _made(temp / f"{METRICS_DIR_PREFIX}{_gone_pid()}-ab12")
    given = _made(temp / "given")
    with _shared_metrics(2, str(given)):
        assert "FULCRUM_METRICS_DIR" not in os.environ
    with _shared_metrics(1, None):
        assert "FULCRUM_METRICS_DIR" not in os.environ
    assert stale.exists()
    assert (given / "counter_1.db").exists()


def test_a_directory_named_with_a_number_no_pid_can_be_does_not_stop_the_supervisor(temp: Path) -> None:
    unreal = _made(temp / f"{METRICS_DIR_PREFIX}99999999999999-ab12")
    with _shared_metrics(2, None):
        assert not unreal.exists()
