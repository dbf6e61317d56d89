"""Picks the Cython twin or the pure-Python twin, once per process.

``GATEWAY_NO_EXTENSIONS=1`` forces the pure-Python twins. Otherwise a twin whose
extension is missing falls back to pure Python, and ``EXTENSIONS_EXPECTED`` tells a test
that the extension was built (a ``.so`` is present) and so must have loaded.
"""

from __future__ import annotations

import glob
import importlib
import os
from types import ModuleType

FORCED_PURE = os.environ.get("GATEWAY_NO_EXTENSIONS") == "1"
_HERE = os.path.dirname(__file__)
EXTENSIONS_EXPECTED = not FORCED_PURE and bool(glob.glob(os.path.join(_HERE, "_*.so")))


def pick(ext_name: str, py_name: str) -> tuple[ModuleType, str]:
    """Return (module, "cython"|"python") for ``gateway.codec.<ext_name>`` or its twin."""
    if not FORCED_PURE:
        try:
            return importlib.import_module("gateway.codec." + ext_name), "cython"
        except ImportError:
            if EXTENSIONS_EXPECTED and glob.glob(os.path.join(_HERE, ext_name + ".*.so")):
                raise
    return importlib.import_module("gateway.codec." + py_name), "python"
