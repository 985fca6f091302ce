"""The token endpoint row (client credentials), defined beside its benchmark."""

from bench_identity import ROWS

__all__ = ["ROWS"]
