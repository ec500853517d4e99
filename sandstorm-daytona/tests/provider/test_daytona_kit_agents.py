"""The kit's interpreter, process and port contracts: ``daytona`` on the emulator."""

from __future__ import annotations

import pytest

import sandstorm_testkit as kit

from .test_daytona_kit import _OnEmulator, kit_emulator

__all__ = ["kit_emulator"]

pytestmark = pytest.mark.slow


class TestInterpreter(_OnEmulator, kit.InterpreterContract):
    pass


class TestProcesses(_OnEmulator, kit.ProcessContract):
    pass


class TestPorts(_OnEmulator, kit.PortContract):
    PORT = 8767
