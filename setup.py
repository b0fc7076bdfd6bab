"""The one compiled module: Fulmen's Avro writer (schemas/_avro_writer.pyx, the producer's
hot path; docs/producers.md says why). Everything else is in pyproject.toml."""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [Extension("fulmen.schemas._avro_writer", ["schemas/_avro_writer.pyx"])],
        compiler_directives={"language_level": 3},
    )
)
