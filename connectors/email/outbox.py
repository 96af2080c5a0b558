"""The outbox: each email written to a directory as ``{email_id}.eml``, for development.

A file is written whole or not at all (a temporary file in the same directory,
then ``os.replace``), so a reader never sees half a message; a retry of the
same email replaces its file with the same bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from pathlib import Path

from connectors.email.base import SendError, Sent
from connectors.email.message import OutgoingEmail

__all__ = ["OutboxProvider"]


class OutboxProvider:
    """Writes every email to ``{directory}/{email_id}.eml``, creating the directory.

    Args:
        directory: where the files go.
        name: the provider's configured name.
    """

    def __init__(self, directory: Path, *, name: str = "outbox") -> None:
        self._directory = Path(directory)
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    @property
    def directory(self) -> Path:
        return self._directory

    async def send(self, email: OutgoingEmail) -> Sent:
        """Write the email's file, off the event loop.

        Raises:
            SendError: ``io`` (not permanent) when the file cannot be written.
        """
        data = email.as_bytes()
        path = self._directory / f"{email.email_id}.eml"
        try:
            await asyncio.to_thread(_write, path, data)
        except OSError as exc:
            raise SendError(
                self._name,
                "io",
                f"{self._name} could not write {path}: {exc.strerror or exc}",
                permanent=False,
                detail={"path": str(path), "errno": exc.errno},
            ) from exc
        return Sent(provider_message_id=email.message_id, detail={"path": str(path)})

    async def close(self) -> None:
        """Nothing to let go of."""


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
