"""Reusable attack vectors (JWT, ...) shared by unit and end-to-end test suites."""
