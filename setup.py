"""The one compiled module: Fulmen's Avro writer and reader (schemas/_avro_compiled.pyx, the
hot paths of the producer and the stream worker; docs/producers.md says why). Everything
else is in pyproject.toml."""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [Extension("fulmen.schemas._avro_compiled", ["schemas/_avro_compiled.pyx"])],
        compiler_directives={"language_level": 3},
    )
)
