"""Build hook: compiles native/ into trusted_ledger.hashing._native via cffi (API mode).

Everything else about the package lives in pyproject.toml; setuptools needs this file only
because `cffi_modules` has no declarative form.
"""

from setuptools import setup

setup(cffi_modules=["native/build_ffi.py:ffibuilder"])
