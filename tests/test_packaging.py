"""The wheel: built from the repository, it holds the package and its metadata, and no tests."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(300)
def test_wheel_has_the_package_and_no_tests(tmp_path: Path) -> None:
    # --no-isolation: the build backend comes from the test extra; nothing is downloaded
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = tmp_path.glob("llmost-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    modules = {Path(n).name for n in names if n.startswith("llmost_cli/")}
    expected = {p.name for p in (ROOT / "llmost_cli").glob("*.py")}
    assert expected <= modules
    assert not [n for n in names if n.startswith("tests/") or "/tests/" in n or "conftest" in n]
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    for requirement in ("typer>=", "rich>=", "httpx>=", "httpx-sse>=", "prompt-toolkit>="):
        assert f"Requires-Dist: {requirement}" in text
    entry = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "llmost = llmost_cli.main:main" in zipfile.ZipFile(wheel).read(entry).decode()
