"""DESIGN.md's layering and size rules, checked by reading the source.

- ``gateway/codec``, ``gateway/proto`` and ``gateway/core`` import no trio/anyio, no
  socket, no sqlite3, no httptools/coredis, and nothing from the I/O-side packages
  (``gateway.io``, ``runtime``, ``api``, ``store``, ``voice``) — at module level or
  inside functions, absolute or relative.
- No hand-written source file in ``gateway/`` or ``ext/`` exceeds the 700-line hard cap
  (generated ``ext/*.c`` and built ``*.so`` are not sources).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PURE = ("codec", "proto", "core")
FORBIDDEN = ("trio", "anyio", "socket", "sqlite3", "httptools", "coredis",
             "gateway.io", "gateway.runtime", "gateway.api", "gateway.store", "gateway.voice")
SOURCE_SUFFIXES = {".py", ".pyx", ".pxd", ".pxi"}
HARD_CAP = 700


def pure_modules() -> list[Path]:
    return sorted(p for pkg in PURE for p in (ROOT / "gateway" / pkg).rglob("*.py"))


def _package_of(path: Path, root: Path) -> list[str]:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    return parts[:-1] if parts[-1] != "__init__" else parts[:-1]


def imported_names(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """Every module name an ``import``/``from … import`` in the file refers to, with
    relative imports resolved against the file's package."""
    tree = ast.parse(path.read_text(), filename=str(path))
    pkg = _package_of(path, root)
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[: len(pkg) - (node.level - 1)] if node.level > 1 else pkg
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((node.lineno, mod))
            # ``from gateway import io`` imports the package gateway.io
            out += [(node.lineno, f"{mod}.{a.name}") for a in node.names if a.name != "*"]
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in (
                "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
            out.append((node.lineno, str(node.args[0].value)))
    return out


def forbidden_in(path: Path, root: Path = ROOT) -> list[str]:
    return [f"{path.relative_to(root)}:{line}: imports {name}"
            for line, name in imported_names(path, root)
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)]


def test_pure_layers_exist():
    mods = pure_modules()
    for pkg in PURE:
        assert any(p.parent.name == pkg or pkg in p.parts for p in mods), pkg
    assert len(mods) >= 10


@pytest.mark.parametrize("path", pure_modules(), ids=lambda p: str(p.relative_to(ROOT / "gateway")))
def test_pure_layer_imports_no_io(path):
    assert forbidden_in(path) == []


def test_checker_catches_forbidden_imports(tmp_path):
    """The checker itself: absolute, from-, relative, lazy (in a function) and
    importlib forms are all caught; harmless look-alikes are not."""
    pkg = tmp_path / "gateway" / "core"
    pkg.mkdir(parents=True)
    bad = pkg / "probe.py"
    src = ("import trio.lowlevel\n"
           "from .. import io\n"
           "from ..store.sqlite import SqliteStore\n"
           "def f():\n    import sqlite3\n    import importlib\n"
           "    importlib.import_module('anyio')\n"
           "import socketserver_lookalike_not_real\n"
           "from gateway.codec import text\n")
    bad.write_text(src)
    hits = forbidden_in(bad, tmp_path)
    names = {h.rsplit(" ", 1)[1] for h in hits}
    assert {"trio.lowlevel", "gateway.io", "gateway.store.sqlite", "sqlite3", "anyio"} <= names
    assert not any("socketserver" in n or n.startswith("gateway.codec") for n in names)


def source_files() -> list[Path]:
    out = []
    for top in ("gateway", "ext"):
        out += [p for p in (ROOT / top).rglob("*") if p.suffix in SOURCE_SUFFIXES and p.is_file()]
    return sorted(out)


def test_no_source_file_over_hard_cap():
    files = source_files()
    assert len(files) >= 20
    over = {str(p.relative_to(ROOT)): n for p in files
            if (n := len(p.read_text(errors="replace").splitlines())) > HARD_CAP}
    assert over == {}, f"files over {HARD_CAP} lines: {over}"


def test_every_module_has_a_docstring():
    missing = [str(p.relative_to(ROOT)) for p in (ROOT / "gateway").rglob("*.py")
               if p.name not in ("__init__.py", "__main__.py")
               and ast.get_docstring(ast.parse(p.read_text())) is None]
    assert missing == []
