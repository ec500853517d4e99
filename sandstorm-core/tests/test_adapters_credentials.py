"""``sandstorm.adapters`` credential helpers: the one implementation every provider uses."""

from __future__ import annotations

import pytest

from sandstorm.adapters import redact_credentials, scrub_credentials, split_credentials


@pytest.mark.parametrize(
    ("url", "clean", "user", "password"),
    [
        ("https://u:p%40ss@[::1]:8080/r.git", "https://[::1]:8080/r.git", "u", "p@ss"),
        ("https://u:p@Example.COM/r", "https://Example.COM/r", "u", "p"),
        ("https://tok@host/r?x=1#f", "https://host/r?x=1#f", "tok", None),
        ("https://a:b@c@host/x", "https://host/x", "a", "b@c"),
        ("https://u:@host/x", "https://host/x", "u", ""),
        ("ssh://git@host:22/r", "ssh://host:22/r", "git", None),
        ("https://host/x", "https://host/x", None, None),
        ("not a url", "not a url", None, None),
        ("http://[::1", "http://[::1", None, None),
    ],
)
def test_split(url: str, clean: str, user: str | None, password: str | None) -> None:
    assert split_credentials(url) == (clean, user, password)


def test_redact_keeps_everything_but_the_user_info() -> None:
    assert redact_credentials("https://u:p%40ss@[::1]:8080/r") == "https://***@[::1]:8080/r"
    assert redact_credentials("https://host/r") == "https://host/r"


def test_scrub_text_and_secrets_in_every_form() -> None:
    text = "clone https://u:ghp_X@h/r failed; token ghp_X p%40ss p@ss p%2540ss"
    out = scrub_credentials(text, "ghp_X", "p@ss")
    assert "ghp_X" not in out
    assert "p@ss" not in out
    assert "p%40ss" not in out
    assert "https://***@h/r" in out


def test_short_secrets_are_not_replaced() -> None:
    assert scrub_credentials("a b", "a") == "a b"
