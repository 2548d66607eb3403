"""The wheel: built from the repository, it holds the package and its metadata, and no tests."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # --no-isolation: the build backend comes from the test extra; nothing is downloaded
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (built,) = out.glob("llmost-*.whl")
    return built


@pytest.mark.timeout(300)
def test_wheel_has_the_package_and_no_tests(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    modules = {n for n in names if n.startswith("llmost_cli/")}
    expected = {p.relative_to(ROOT).as_posix() for p in (ROOT / "llmost_cli").rglob("*.py")}
    assert expected <= modules and "llmost_cli/py.typed" in modules
    assert not [n for n in names if n.startswith("tests/") or "/tests/" in n or "conftest" in n]
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    for requirement in ("typer>=", "rich>=", "httpx>=", "prompt-toolkit>=", "platformdirs>="):
        assert f"Requires-Dist: {requirement}" in text
    shared = {n.split(".data/data/", 1)[1] for n in names if ".data/data/" in n}
    assert shared == {
        "share/bash-completion/completions/llmost",
        "share/zsh/site-functions/_llmost",
        "share/fish/vendor_completions.d/llmost.fish",
    }
    entry = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "llmost = llmost_cli.main:main" in zipfile.ZipFile(wheel).read(entry).decode()


@pytest.mark.timeout(300)
def test_a_plain_install_of_the_wheel_runs(wheel: Path, tmp_path: Path) -> None:
    """Not the editable install the other tests use: the wheel alone, in a new venv.

    The dependencies come from the environment running the tests (no network here), made
    visible by a .pth file that names its site-packages directories; that environment's own
    .pth files (the editable install of llmost among them) are not processed, so llmost
    itself comes only from the wheel. This works whether the tests run in a venv or not.
    """
    import site
    import sysconfig

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    ours.update(site.getsitepackages())
    (Path(purelib) / "deps.pth").write_text("".join(f"{d}\n" for d in sorted(ours)))
    install = [
        sys.executable,  # this environment's pip, installing into the new venv
        "-m",
        "pip",
        "--python",
        str(python),
        "install",
        "-q",
        "--no-deps",
        "--no-index",
        "--force-reinstall",
    ]
    subprocess.run([*install, str(wheel)], check=True, capture_output=True)
    where = subprocess.run(
        [str(python), "-c", "import llmost_cli; print(llmost_cli.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.startswith(str(venv))
    for args in (["--help"], ["--version"], ["ask", "--help"]):
        proc = subprocess.run(
            [str(venv / "bin" / "llmost"), *args], capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, proc.stderr
        assert "llmost" in proc.stdout
