"""GSM 03.38 codec entry point: re-exports the Cython twin (``gateway.codec._gsm``, from
``ext/_gsm.pyx``) when it is built, else the pure-Python twin ``gsm_py``.

Rules: the choice is made once at import by ``_select.pick`` (``GATEWAY_NO_EXTENSIONS=1``
forces pure Python); ``BACKEND`` says which ("cython" | "python"). Both twins have the
same names, results and errors; see ``gsm_py`` for the alphabet rules.
"""

from __future__ import annotations

from gateway.codec import gsm_py as _py
from gateway.codec._select import pick

_impl, BACKEND = pick("_gsm", "gsm_py")

encode = _impl.encode
decode = _impl.decode
pack = _impl.pack
unpack = _impl.unpack
is_gsm = _impl.is_gsm
septets = _impl.septets

BASIC = _py.BASIC
EXTENSION = _py.EXTENSION
ESC = _py.ESC

__all__ = ["BACKEND", "BASIC", "ESC", "EXTENSION", "decode", "encode", "is_gsm", "pack",
           "septets", "unpack"]
