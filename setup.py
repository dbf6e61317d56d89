"""Build only the Cython extensions (everything else is in pyproject.toml).

Every ``ext/*.pyx`` becomes ``gateway.codec.<name>``. Set ``GATEWAY_NO_EXTENSIONS=1`` to
skip them (the pure-Python twins are then used).
"""
import glob
import os

from setuptools import setup

ext_modules = []
if os.environ.get("GATEWAY_NO_EXTENSIONS") != "1":
    from Cython.Build import cythonize
    from setuptools import Extension

    exts = [
        Extension(
            "gateway.codec." + os.path.splitext(os.path.basename(p))[0],
            [p],
            extra_compile_args=["-O3"],
        )
        for p in sorted(glob.glob("ext/*.pyx"))
    ]
    ext_modules = cythonize(
        exts,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
    )

setup(ext_modules=ext_modules)
