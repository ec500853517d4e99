"""Parse the ``multipart/form-data`` reply of the toolbox's ``/files/bulk-download``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

__all__ = ["Part", "parse_multipart"]

_PARAM = re.compile(r'(\w+\*?)=(?:"((?:[^"\\]|\\.)*)"|([^;]*))')


@dataclass(frozen=True)
class Part:
    """One part: its form ``name``, ``filename``, content type and raw bytes."""

    name: str
    filename: str | None
    content_type: str | None
    data: bytes


def boundary_of(content_type: str) -> str:
    """The ``boundary`` parameter of a multipart content type."""
    media, _, params = content_type.partition(";")
    if media.strip().lower() != "multipart/form-data":
        raise ValueError(f"expected multipart/form-data, got {media.strip() or 'nothing'}")
    for key, quoted, bare in _PARAM.findall(params):
        if key.lower() == "boundary":
            return str(quoted or bare.strip())
    raise ValueError("multipart reply has no boundary")


def _disposition(value: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for key, quoted, bare in _PARAM.findall(value):
        params[key.lower()] = quoted.replace('\\"', '"') if quoted else bare.strip()
    star = params.get("filename*")
    if star and "''" in star:
        params["filename"] = unquote(star.split("''", 1)[1])
    return params


def parse_multipart(body: bytes, content_type: str) -> list[Part]:
    """Every part of ``body``; raises ``ValueError`` on a truncated or malformed reply."""
    boundary = re.escape(boundary_of(content_type).encode())
    # A delimiter counts only when CRLF or "--" follows it (RFC 2046), so file bytes
    # that merely contain the boundary text do not split a part.
    opening = re.search(rb"(?:^|\r\n)--" + boundary + rb"(?=\r\n|--)", body)
    if opening is None:
        raise ValueError("multipart reply has no opening boundary")
    rest = body[opening.end() :]
    chunks = re.split(rb"\r\n--" + boundary + rb"(?=\r\n|--)", rest)
    parts: list[Part] = []
    closed = False
    for raw in chunks:
        if raw.startswith(b"--"):
            closed = True
            break
        head, sep, data = raw.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("multipart part has no header/body separator")
        headers: dict[str, str] = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        params = _disposition(headers.get("content-disposition", ""))
        parts.append(
            Part(
                name=params.get("name", ""),
                filename=params.get("filename"),
                content_type=headers.get("content-type"),
                data=data,
            )
        )
    if not closed:
        raise ValueError("truncated multipart reply (no closing boundary)")
    return parts
