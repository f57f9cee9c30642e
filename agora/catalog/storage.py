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


class Incoming:
    """A file being received: written to a temporary file beside the store as it arrives, hashed on the way,
    so an upload of any size never sits in memory. `LocalAssetStorage.keep` moves it into place; anything
    else removes it (`discard`, or leaving the `with` block)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=directory, prefix=".upload-")
        self.path = Path(name)
        self._handle = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self._handle.write(chunk)
        self._hash.update(chunk)
        self.size += len(chunk)

    def finish(self) -> str:
        """Flush the file to disk; return the SHA-256 of what was written."""
        if not self._handle.closed:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
        return self._hash.hexdigest()

    def discard(self) -> None:
        if not self._handle.closed:
            self._handle.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> Incoming:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()


class AssetStorage(Protocol):
    def put(self, data: bytes) -> str:
        """Store the bytes; return their SHA-256 digest."""
        ...

    def incoming(self) -> Incoming:
        """A temporary file to receive an upload into."""
        ...

    def keep(self, incoming: Incoming) -> str:
        """Store a received file under its digest; return the digest."""
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

    def incoming(self) -> Incoming:
        return Incoming(self.root / ".incoming")

    def keep(self, incoming: Incoming) -> str:
        digest = incoming.finish()
        path = self._path(digest)
        if path.exists():
            incoming.discard()
            return digest
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(incoming.path, path)  # one file system: the temporary file is under the same root
        return digest

    def file(self, digest: str) -> Path | None:
        """Where a stored file is, to be streamed from disk rather than read into memory."""
        try:
            path = self._path(digest)
        except ValueError:
            return None
        return path if path.is_file() else None

    def get(self, digest: str) -> bytes | None:
        try:
            return self._path(digest).read_bytes()
        except (FileNotFoundError, ValueError):
            return None

    def replicate(self, digest: str, region: str) -> None:
        # One local disk serves every region; the check is that the artifact is really there.
        if not self._path(digest).exists():
            raise FileNotFoundError(f"asset {digest} is missing from storage; it cannot be published to {region}")
