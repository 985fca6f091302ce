"""Bastion: an API security gateway for HTTP/JSON APIs."""

from bastion.native import check as _check_native

__version__ = "0.1.0"

__all__ = ["__version__"]

# Before any compiled module can be imported: refuse one built from another source.
_check_native()
