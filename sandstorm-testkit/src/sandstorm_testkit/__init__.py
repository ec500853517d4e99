"""Conformance test kit for Sandstorm providers (work in progress)."""

__all__: list[str] = []
