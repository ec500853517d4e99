"""Building blocks for provider adapters: what every adapter would otherwise write again.

>>> from sandstorm.adapters import split_credentials
>>> split_credentials("https://bot:t%40ken@[::1]:8080/repo.git")
('https://[::1]:8080/repo.git', 'bot', 't@ken')
"""

from __future__ import annotations

from ._credentials import redact_credentials, scrub_credentials, split_credentials

__all__ = ["redact_credentials", "scrub_credentials", "split_credentials"]
