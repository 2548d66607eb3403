"""Writing the config file never loses data: locking, write errors, killed writes, symlinks and
directory modes (DESIGN §3, §9)."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from llmost_cli import paths
from llmost_cli.core import configfile
from tests.conftest import forked, run_in_process
from tests.test_config_cli import config_path, run_cli

TEN_SETS = [
    ("model", "a/b"),
    ("system", "be brief"),
    ("temperature", "0.5"),
    ("top_p", "0.9"),
    ("max_tokens", "100"),
    ("frequency_penalty", "-0.5"),
    ("presence_penalty", "0.5"),
    ("seed", "7"),
    ("timeout", "30"),
    ("retries", "2"),
]


def temp_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob(".config-*"))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


# --- 1. parallel writers ----------------------------------------------------------------


def test_ten_parallel_sets_keep_every_key(isolated_env: Path) -> None:
    environ = dict(os.environ)

    def config_set(key: str, value: str) -> Callable[[], str]:
        return lambda: repr(run_in_process(["config", "set", key, value], b"", environ))

    results = forked([config_set(key, value) for key, value in TEN_SETS])  # 10 processes
    assert all(r.startswith("Result(rc=0, ") for r in results), results
    path = config_path(isolated_env)
    table = tomllib.loads(path.read_text())["profiles"]["default"]
    assert sorted(table) == sorted(key for key, _ in TEN_SETS)
    assert temp_files(path.parent) == []
    assert mode(path.parent / ".config.toml.lock") == 0o600


def test_read_modify_write_is_serialised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each writer reads, dawdles, then writes: without the lock all but one key would be lost."""
    path = tmp_path / "config.toml"
    real_load = configfile.load_file

    def slow_load(p: Path | None = None) -> configfile.ConfigFile:
        cfg = real_load(p)
        time.sleep(0.02)
        return cfg

    monkeypatch.setattr(configfile, "load_file", slow_load)
    errors: list[BaseException] = []

    def writer(key: str, value: str) -> None:
        from llmost_cli.core import params

        try:
            with configfile.transaction(path) as cfg:
                configfile.set_value(cfg, "default", key, params.parse_text_value(key, value))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=kv) for kv in TEN_SETS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(real_load(path).profile("default")) == 10


# --- 2. write errors --------------------------------------------------------------------


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs (needs root and mount rights: skipped otherwise)."""
    mountpoint = tmp_path / "small"
    mountpoint.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", str(mountpoint)],
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {proc.stderr.decode(errors='replace').strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def fill(directory: Path) -> None:
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)


def test_disk_full_exits_3_and_keeps_the_old_file(
    small_fs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = small_fs / "llmost" / "config.toml"
    monkeypatch.setenv("LLMOST_CONFIG", str(path))
    assert run_cli("config", "set", "model", "old/model").rc == 0
    before = path.read_bytes()
    fill(small_fs)
    r = run_cli("config", "set", "system", "x" * 20000)
    assert r.rc == 3, r
    assert r.stderr == f"llmost: error: cannot write config file {path}: no space left on device\n"
    assert path.read_bytes() == before
    assert temp_files(path.parent) == []


def test_read_only_file_system_exits_3_and_keeps_the_old_file(
    small_fs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = small_fs / "llmost" / "config.toml"
    monkeypatch.setenv("LLMOST_CONFIG", str(path))
    assert run_cli("config", "set", "model", "old/model").rc == 0
    before = path.read_bytes()
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    r = run_cli("config", "set", "model", "new/model")
    assert r.rc == 3, r
    assert r.stderr.startswith(f"llmost: error: cannot write config file {path}: ")
    assert r.stderr.endswith("read-only file system\n") and r.stderr.count("\n") == 1
    assert path.read_bytes() == before


@pytest.mark.parametrize("failing", ["write", "fsync", "replace"])
def test_write_error_removes_the_temp_file(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """The same, anywhere: the failure is injected at each step of the write."""
    assert run_cli("config", "set", "model", "old/model").rc == 0
    path = config_path(isolated_env)
    before = path.read_bytes()

    def fail(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as patch:  # (undo() would also undo the isolated HOME)
        patch.setattr(configfile.os, failing, fail)
        r = run_cli("config", "set", "model", "new/model")
    assert r.rc == 3, r
    assert r.stderr == f"llmost: error: cannot write config file {path}: no space left on device\n"
    assert path.read_bytes() == before
    assert temp_files(path.parent) == []


# --- 3. killed writes -------------------------------------------------------------------

KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from llmost_cli.core import configfile
os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)  # dies between write and rename
with configfile.transaction(Path(sys.argv[1])) as cfg:
    configfile.set_value(cfg, "default", "model", "never/saved")
"""


def test_temp_file_of_a_killed_write_is_removed_by_the_next_write(isolated_env: Path) -> None:
    assert run_cli("config", "set", "model", "old/model").rc == 0
    path = config_path(isolated_env)
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(path)], check=False)
    assert proc.returncode == -signal.SIGKILL
    leftovers = temp_files(path.parent)
    assert len(leftovers) == 1  # what SIGKILL leaves behind
    assert configfile.load_file(path).profile("default") == {"model": "old/model"}
    assert run_cli("config", "set", "seed", "1").rc == 0
    assert temp_files(path.parent) == leftovers  # too young: it could be a write in progress
    old = time.time() - 120
    os.utime(path.parent / leftovers[0], (old, old))
    assert run_cli("config", "set", "seed", "2").rc == 0
    assert temp_files(path.parent) == []


def test_only_our_stale_temp_files_are_removed(isolated_env: Path) -> None:
    assert run_cli("config", "set", "model", "a/b").rc == 0
    directory = config_path(isolated_env).parent
    old = time.time() - 120
    for name in (".config-stale.toml", ".config-fresh.toml", ".config-other.txt", "notes.toml"):
        (directory / name).write_text("x")
    (directory / ".config-dir.toml").mkdir()
    for name in (".config-stale.toml", ".config-other.txt", "notes.toml", ".config-dir.toml"):
        os.utime(directory / name, (old, old))
    assert run_cli("config", "set", "model", "c/d").rc == 0
    assert temp_files(directory) == [".config-dir.toml", ".config-fresh.toml", ".config-other.txt"]
    assert (directory / "notes.toml").exists()


# --- 4. a symlinked config --------------------------------------------------------------


def test_symlinked_config_is_written_through_the_link(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dotfiles = isolated_env / "dotfiles"
    dotfiles.mkdir(mode=0o755)
    target = dotfiles / "llmost.toml"
    target.write_text('[profiles.default]\nmodel = "old/model"\n')
    link = config_path(isolated_env)
    link.parent.mkdir(parents=True)
    link.symlink_to(target)
    renames: list[tuple[str, str]] = []
    real_replace = os.replace

    def spy(src: str, dst: str) -> None:
        renames.append((str(src), str(dst)))
        real_replace(src, dst)

    with monkeypatch.context() as patch:
        patch.setattr(configfile.os, "replace", spy)
        r = run_cli("config", "set", "temperature", "0.5")
    assert r.rc == 0, r
    assert link.is_symlink() and link.resolve() == target
    assert tomllib.loads(target.read_text())["profiles"]["default"] == {
        "model": "old/model",
        "temperature": 0.5,
    }
    [(src, dst)] = renames
    assert Path(src).parent == dotfiles and Path(dst) == target  # atomic, in the target's dir
    assert mode(dotfiles) == 0o755  # the user's directory is left alone
    assert temp_files(dotfiles) == [] and temp_files(link.parent) == []
    assert run_cli("config", "unset", "temperature").rc == 0
    assert link.is_symlink()
    assert "temperature" not in target.read_text()


# --- 5. directory modes -----------------------------------------------------------------


def test_existing_shared_directory_is_never_chmodded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    path = shared / "config.toml"
    monkeypatch.setenv("LLMOST_CONFIG", str(path))
    assert run_cli("config", "set", "model", "a/b").rc == 0
    assert mode(shared) == 0o1777
    assert mode(path) == 0o600
    assert mode(shared / ".config.toml.lock") == 0o600


@contextlib.contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.parametrize("mask", [0o000, 0o022, 0o277])
def test_created_directories_are_0700_whatever_the_umask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mask: int
) -> None:
    tmp_path.chmod(0o755)
    path = tmp_path / "a" / "b" / "c" / "config.toml"
    monkeypatch.setenv("LLMOST_CONFIG", str(path))
    with umask(mask):
        r = run_cli("config", "set", "model", "a/b")
    assert r.rc == 0, r
    for level in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "c"):
        assert mode(level) == 0o700, level
    assert mode(path) == 0o600
    assert mode(tmp_path) == 0o755  # the existing parent was not touched


def test_ensure_private_dir(tmp_path: Path) -> None:
    existing = tmp_path / "existing"
    existing.mkdir()
    existing.chmod(0o755)
    with umask(0):
        assert paths.ensure_private_dir(existing / "x" / "y") == existing / "x" / "y"
    assert [mode(p) for p in (existing, existing / "x", existing / "x" / "y")] == [
        0o755,
        0o700,
        0o700,
    ]
    paths.ensure_private_dir(existing)  # exists already: nothing happens
    assert mode(existing) == 0o755
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError):
        paths.ensure_private_dir(tmp_path / "file" / "sub")


def test_a_file_in_the_way_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "file").write_text("")
    path = tmp_path / "file" / "sub" / "config.toml"
    monkeypatch.setenv("LLMOST_CONFIG", str(path))
    r = run_cli("config", "set", "model", "a/b")
    assert r.rc == 3, r
    assert r.stderr == (
        f"llmost: error: cannot write config file {path}: cannot create directory "
        f"{path.parent}: not a directory\n"
    )
