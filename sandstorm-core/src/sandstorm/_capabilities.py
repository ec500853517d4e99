"""Capability flags: what a provider can do beyond running code."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Capability"]


class Capability(StrEnum):
    """A feature a provider declares on its class, readable without credentials."""

    PERSISTENCE = "persistence"
    """Workspaces outlive a single run and keep their files between runs."""
    SNAPSHOTS = "snapshots"
    """Capture a workspace's filesystem and start new workspaces from it."""
    GIT = "git"
    """Clone a repository into a workspace before code runs; report git status."""
    TEMPLATES = "templates"
    """Start workspaces from named, pre-configured templates."""
    METRICS = "metrics"
    """Report a workspace's cpu, memory, disk and process figures."""
    NETWORK_POLICY = "network_policy"
    """Choose per workspace whether code reaches the network."""
    STREAMING = "streaming"
    """Deliver stdout and stderr while the code is still running."""
    FILES = "files"
    """Read, write, list and delete files in a workspace."""
    RESOURCE_LIMITS = "resource_limits"
    """Enforce cpu, memory and process limits on the code."""
    COST = "cost"
    """Estimate the cost of a run and report the cost of each result."""
    INTERPRETER = "interpreter"
    """Stateful code contexts with rich results (``create_context``, ``run_code``)."""
    PROCESSES = "processes"
    """Background processes: start, stream logs, send stdin, wait, kill."""
    PORTS = "ports"
    """Make a port in the sandbox reachable from the application (``expose_port``)."""
