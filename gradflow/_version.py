"""gradflow's version, in a module of its own.

Layer-neutral, like :mod:`gradflow._io`: the package re-exports it as
``gradflow.__version__``, and the sweeps record it in each record's provenance
without importing the package that imports them.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
