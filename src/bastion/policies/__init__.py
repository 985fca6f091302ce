"""Policies: one stage of the request path each, implementing only the hooks it needs."""
