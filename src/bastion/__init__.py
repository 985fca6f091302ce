"""Bastion: an API security gateway for HTTP/JSON APIs."""

from bastion.native import activate as _activate_native

__version__ = "0.1.0"

__all__ = ["__version__"]

# Before any of them is imported: the compiled modules, when their build is sound.
_activate_native()
