"""The layers of DESIGN §7, checked: import-linter's contracts, and no import cycle at all."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept() -> None:
    code = "import sys; from importlinter.cli import lint_imports_command as c; c(['--no-cache'])"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def test_no_module_imports_itself_back() -> None:
    import grimp

    graph = grimp.build_graph("llmost_cli")
    cycles = sorted(
        (module, imported)
        for module in graph.modules
        for imported in graph.find_modules_directly_imported_by(module)
        if graph.chain_exists(imported, module)
    )
    assert cycles == []


def test_only_env_touches_the_process_streams() -> None:
    """DESIGN §7: nothing but env.py (and the entry point that builds it) reads sys.std*."""
    offenders = []
    for path in (ROOT / "llmost_cli").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for name in ("sys.stdin", "sys.stdout", "sys.stderr"):
            if name in text and path.name != "env.py":
                offenders.append(f"{path.relative_to(ROOT)}: {name}")
    assert offenders == []
