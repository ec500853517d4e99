"""Daytona provider for Sandstorm (work in progress)."""

__all__: list[str] = []
