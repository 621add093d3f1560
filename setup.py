"""Build: compiles the Cython twins in _ext/ (pure-Python references live in collector/)."""
from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [
    Extension("_ext._otlp", ["_ext/_otlp.pyx"]),
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
    ),
)
