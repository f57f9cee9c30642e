"""Where uploaded files live. Content-addressed: a file's name is its SHA-256, so a stored file never
changes and an upload that fails half-way leaves nothing under its name. A bucket-backed storage can
replace the local one by implementing `AssetStorage`."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Protocol

from agora.config import var_dir


class AssetStorage(Protocol):
    def put(self, data: bytes) -> str:
        """Store the bytes; return their SHA-256 digest."""
        ...

    def get(self, digest: str) -> bytes | None: ...

    def replicate(self, digest: str, region: str) -> None:
        """Make the file available in `region` (publishing copies artifacts to every listed region)."""
        ...


class LocalAssetStorage:
    """Files under `./var/assets/ab/cdef…`, written to a temporary file and renamed into place."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or var_dir() / "assets"

    def _path(self, digest: str) -> Path:
        if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            raise ValueError("not a SHA-256 digest")
        return self.root / digest[:2] / digest[2:]

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        path = self._path(digest)
        if path.exists():
            return digest
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return digest

    def get(self, digest: str) -> bytes | None:
        try:
            return self._path(digest).read_bytes()
        except (FileNotFoundError, ValueError):
            return None

    def replicate(self, digest: str, region: str) -> None:
        # One local disk serves every region; the check is that the artifact is really there.
        if not self._path(digest).exists():
            raise FileNotFoundError(f"asset {digest} is missing from storage; it cannot be published to {region}")
