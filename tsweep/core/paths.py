"""Locations as strings: a local path or a URI (``s3://``, ``gs://``, ``file://``), joined and
compared without touching any filesystem.

A URI's query (``s3://bucket/tsweep?endpoint_override=host:9000&scheme=http``) carries its
endpoint and stays at the end of every path :func:`join` builds under it, so a location handed to
another node still says where its bytes are. Pure string work: no I/O, no pyarrow.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit


def is_uri(path: str) -> bool:
    """Whether ``path`` is a URI (it names a scheme) rather than a local path."""
    return "://" in path


def join(base: str, *parts: str) -> str:
    """``base/part/...`` for a path or a URI (a URI's query string stays at the end); empty parts
    and the slashes around each part are dropped."""
    tail = "/".join(p.strip("/") for p in parts if p and p.strip("/"))
    if not tail:
        return base
    if is_uri(base):
        u = urlsplit(base)
        return urlunsplit((u.scheme, u.netloc, f"{u.path.rstrip('/')}/{tail}", u.query, u.fragment))
    return f"{base.rstrip('/')}/{tail}"


def without_query(path: str) -> str:
    """``path`` without a URI's query and fragment (for messages and comparisons)."""
    if not is_uri(path):
        return path
    u = urlsplit(path)
    return urlunsplit((u.scheme, u.netloc, u.path, "", ""))


def resolve_root(root: str) -> str:
    """A storage root as tsweep stores it: URIs as given, local paths absolute (``~`` expanded)."""
    return root if is_uri(root) else os.path.abspath(os.path.expanduser(root))


def local_path(path: str) -> str | None:
    """The local path behind ``path`` (a plain path, absolute with ``~`` expanded, or a ``file://``
    URI's path), or None for a remote URI."""
    if not is_uri(path):
        return os.path.abspath(os.path.expanduser(path))
    return urlsplit(path).path if path.startswith("file://") else None


def endpoint(path: str) -> str:
    """The filesystem ``path`` lives on: ``"local"`` for a local path or ``file://``, else the URI's
    scheme, host and query (its credentials and endpoint), without the path."""
    if not is_uri(path) or path.startswith("file://"):
        return "local"
    u = urlsplit(path)
    return urlunsplit((u.scheme, u.netloc, "", u.query, ""))


def fs_path(path: str) -> str:
    """The ``pyarrow.fs`` filesystem's own name for ``path``: the local path, or a remote URI's
    ``bucket/key`` (host and path, no scheme, query or trailing slash)."""
    local = local_path(path)
    if local is not None:
        return local
    u = urlsplit(path)
    return f"{u.netloc}{u.path}".rstrip("/")
