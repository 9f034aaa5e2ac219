"""Function packages extracted once and kept between dev-server runs, shared by the servers
that run at the same time.

Extracting the four packages the dev server runs (about 2,900 files, 50 MB) took about
1.3 CPU-seconds of its 3 s start. A package is extracted into ``<cache>/<sha256 of the zip>``:
an unchanged package is found again, a rebuilt one gets a folder of its own. While a server
runs it holds a shared lock on each folder it uses, and each start removes the folders no
running server holds. A server killed outright releases its locks with its process, so the
cache holds the packages of the running servers, plus those of the last one stopped until the
next start. The functions only read their folders, as Lambda's read-only task root makes
them do (their workers write no bytecode).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from pathlib import Path

from devserver import workdir
from devserver.lambda_runtime import extract

LOCKS = ".locks"
EXTRACTING = ".extracting-"  # a folder being extracted into (workdir.new_folder)


class PackageCache:
    """One server's view of the cache: the folders it uses stay locked until :meth:`close`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / LOCKS).mkdir(parents=True, exist_ok=True)
        self._held: list[int] = []

    def task_root(self, package: Path, digest: str) -> Path:
        """``package`` (whose SHA-256 is ``digest``, in hex) extracted, held until close()."""
        self._held.append(self._lock(digest, fcntl.LOCK_SH))
        folder = self.root / digest
        if not folder.is_dir():
            scratch = workdir.new_folder(self.root, EXTRACTING)
            try:
                extract(package, scratch)
            except BaseException:
                shutil.rmtree(scratch, ignore_errors=True)
                raise
            try:
                scratch.rename(folder)
            except OSError:  # another server extracted it meanwhile
                shutil.rmtree(scratch)
        return folder

    def evict(self) -> list[Path]:
        """Remove the folders no running server holds, and what extractions that died left."""
        removed = workdir.remove_stale(self.root, EXTRACTING)
        # A lock file without its folder too: a start that failed before extracting left it.
        names = {entry.name for entry in self.root.iterdir() if not entry.name.startswith(".")}
        names |= {lock.name for lock in (self.root / LOCKS).iterdir()}
        removed += [self.root / name for name in sorted(names) if self._remove_unheld(name)]
        return removed

    def close(self) -> None:
        """Release this server's folders (the next start may remove them)."""
        for descriptor in self._held:
            os.close(descriptor)
        self._held.clear()

    def _remove_unheld(self, name: str) -> bool:
        try:
            descriptor = self._lock(name, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # a running server uses it
            return False
        try:
            shutil.rmtree(self.root / name, ignore_errors=True)
            # Unlinked while held: a server waiting on this file retries on the new one.
            (self.root / LOCKS / name).unlink()
        finally:
            os.close(descriptor)
        return True

    def _lock(self, name: str, operation: int) -> int:
        """A lock on ``name``'s lock file, the one still at that path once acquired."""
        path = self.root / LOCKS / name
        while True:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(descriptor, operation)
                with contextlib.suppress(FileNotFoundError):
                    if os.stat(path).st_ino == os.fstat(descriptor).st_ino:
                        return descriptor
            except BaseException:
                os.close(descriptor)
                raise
            os.close(descriptor)  # the file was removed while we waited: lock the new one
