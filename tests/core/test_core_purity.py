"""The domain core modules of this area import no I/O (layering rule)."""

import ast
import pathlib

import pytest

CORE = pathlib.Path(__file__).resolve().parents[2] / "gateway" / "core"
MINE = ["errors", "numbers", "rates", "scheduler", "health", "breaker", "routing", "optout",
        "signature"]
FORBIDDEN = {"trio", "socket", "sqlite3", "asyncio", "threading", "subprocess", "time",
             "gateway.io", "gateway.runtime", "gateway.api", "gateway.store"}


@pytest.mark.parametrize("name", MINE)
def test_no_io_imports(name):
    src = (CORE / f"{name}.py").read_text()
    tree = ast.parse(src)
    assert ast.get_docstring(tree), "module docstring required"
    assert len(src.splitlines()) < 400
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mods = [node.module or ""] if node.level == 0 else []
        else:
            continue
        for m in mods:
            assert not any(m == f or m.startswith(f + ".") for f in FORBIDDEN), (name, m)
