"""Fixtures for the SMPP codec tests: ``smpp`` runs a test against both twins (the pure
``gateway.codec.smpp_py`` and, when it is built, the Cython ``gateway.codec._smpp``)."""

import importlib

import pytest

from gateway.codec import _select

_TWINS = {"python": "gateway.codec.smpp_py", "cython": "gateway.codec._smpp"}


@pytest.fixture(params=sorted(_TWINS))
def smpp(request):
    if request.param == "cython" and _select.FORCED_PURE:
        pytest.skip("GATEWAY_NO_EXTENSIONS=1")
    try:
        return importlib.import_module(_TWINS[request.param])
    except ImportError:
        if _select.EXTENSIONS_EXPECTED:
            raise
        pytest.skip("Cython twin not built")
