"""The error tree's shape is part of the public contract."""

from __future__ import annotations

import sandstorm as s


def test_error_tree() -> None:
    assert issubclass(s.ProviderNotFound, LookupError)
    assert issubclass(s.ProviderConfigError, ValueError)
    assert issubclass(s.CapabilityNotSupported, NotImplementedError)
    assert issubclass(s.ExecutionTimeout, TimeoutError)
    for cls in (
        s.AuthenticationError,
        s.RateLimited,
        s.QuotaExceeded,
        s.ResourceAllocationError,
        s.ProviderUnavailable,
        s.NetworkError,
    ):
        assert issubclass(cls, s.ProviderAPIError)
    for name in s.__all__:
        obj = getattr(s, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, s.SandstormError), name


def test_errors_carry_their_details() -> None:
    timeout = s.ExecutionTimeout(1.5, stdout="partial", stderr="err", workspace_id="w")
    assert (timeout.stdout, timeout.stderr, timeout.timeout) == ("partial", "err", 1.5)
    limited = s.RateLimited(
        "slow down", retry_after=3.0, provider="x", status=429, request_id="r-1"
    )
    assert limited.retry_after == 3.0
    assert "429" in str(limited)
    assert "r-1" in str(limited)
    missing = s.TemplateNotFound("ml", ["base", "web"])
    assert "base, web" in str(missing)


def test_translate_gives_sandstorm_errors() -> None:
    from sandstorm import (
        FileNotFound,
        NetworkError,
        ProviderAPIError,
        SandstormError,
        WorkspaceOSError,
    )
    from sandstorm._errors import translate

    inner = ProviderAPIError("log stream closed with code 1012", provider="daytona")
    group = ExceptionGroup("streams", [ValueError("x"), inner])
    assert translate(group) is inner
    lost = translate(ExceptionGroup("g", [ConnectionResetError(), KeyError("k")]), "p")
    assert isinstance(lost, NetworkError)
    own = KeyError("the application's callback")
    assert translate(ExceptionGroup("g", [own])) is own
    missing = translate(FileNotFoundError(2, "No such file", "a.txt"))
    assert isinstance(missing, FileNotFound)
    assert isinstance(missing, FileNotFoundError)
    assert missing.filename == "a.txt"
    directory = translate(IsADirectoryError(21, "Is a directory"))
    assert isinstance(directory, WorkspaceOSError)
    assert isinstance(directory, IsADirectoryError)
    assert isinstance(translate(ConnectionResetError()), NetworkError)
    callback_error = RuntimeError("the application's own")
    assert translate(callback_error) is callback_error
    assert not isinstance(callback_error, SandstormError)
