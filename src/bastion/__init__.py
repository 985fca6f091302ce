"""Bastion: an API security gateway for HTTP/JSON APIs."""

__version__ = "0.1.0"

__all__ = ["__version__"]
