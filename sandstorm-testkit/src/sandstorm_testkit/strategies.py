"""Hypothesis strategies for sandbox payloads: text, bytes, env, file names."""

from __future__ import annotations

from hypothesis import strategies as st

__all__ = ["env_names", "env_values", "file_bytes", "file_names", "output_text", "stdin_bytes"]

_scalar = st.characters(exclude_categories=["Cs"])  # any Unicode scalar value, no surrogates

output_text = st.text(_scalar, max_size=300)
"""Text a program may print: every plane, control characters, NUL included."""

stdin_bytes = st.binary(max_size=8192)
"""Arbitrary bytes for stdin."""

file_bytes = st.binary(max_size=65536)
"""Arbitrary file contents."""

env_names = st.from_regex(r"SSTK_[A-Z][A-Z0-9_]{0,15}", fullmatch=True)
"""Environment variable names (prefixed so they never clash with the system's)."""

env_values = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=100
)
"""Environment values: any text without NUL."""

file_names = st.text(
    st.characters(categories=["L", "N"], include_characters="-_ .", exclude_characters="/\x00"),
    min_size=1,
    max_size=40,
).filter(
    lambda name: name.strip(" .") == name and name not in {".", ".."} and len(name.encode()) <= 200
)
"""Portable file names: letters and digits of any script, plus ``- _ .`` and spaces inside."""
