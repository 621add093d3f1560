"""Build: compiles every Cython twin in _ext/ (pure-Python references live in collector/)."""
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [Extension(f"_ext.{path.stem}", [str(path)]) for path in sorted(Path("_ext").glob("*.pyx"))]

setup(
    ext_modules=cythonize(
        extensions,
        include_path=["."],
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
    ),
)
