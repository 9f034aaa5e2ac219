"""The dev server's package cache: a package extracted once and found again, a rebuilt one in
a folder of its own, and each start removing only what no running server holds, whoever else
starts or dies meanwhile."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest

from devserver import package_cache
from devserver.package_cache import EXTRACTING, LOCKS, PackageCache

ROOT = Path(__file__).resolve().parents[2]


def package(folder: Path, text: str) -> tuple[Path, str]:
    """A function zip holding ``handler.py`` with ``text``, and its SHA-256 in hex."""
    path = folder / f"{hashlib.sha256(text.encode()).hexdigest()[:8]}.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("handler.py", text)
        archive.writestr("pkg/__init__.py", "")
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def cache_root(tmp_path: Path) -> Path:
    return tmp_path / "packages"


def test_a_package_is_extracted_once_and_found_again(tmp_path: Path, cache_root: Path) -> None:
    zip_path, digest = package(tmp_path, "VERSION = 1\n")
    first = PackageCache(cache_root)
    folder = first.task_root(zip_path, digest)
    assert folder == cache_root / digest
    assert (folder / "handler.py").read_text() == "VERSION = 1\n"
    assert (folder / "pkg" / "__init__.py").is_file()
    inode = (folder / "handler.py").stat().st_ino
    first.close()
    second = PackageCache(cache_root)
    assert second.task_root(zip_path, digest) == folder
    assert (folder / "handler.py").stat().st_ino == inode  # not extracted again
    assert second.evict() == []  # its own folder is held
    second.close()


def test_a_rebuilt_package_gets_a_folder_of_its_own(tmp_path: Path, cache_root: Path) -> None:
    old_zip, old = package(tmp_path, "VERSION = 1\n")
    new_zip, new = package(tmp_path, "VERSION = 2\n")
    cache = PackageCache(cache_root)
    assert cache.task_root(old_zip, old) != cache.task_root(new_zip, new)
    assert (cache_root / new / "handler.py").read_text() == "VERSION = 2\n"
    assert (cache_root / old / "handler.py").read_text() == "VERSION = 1\n"
    cache.close()


def test_a_start_removes_only_what_no_running_server_holds(
    tmp_path: Path, cache_root: Path
) -> None:
    (running_zip, running), (stopped_zip, stopped), (starting_zip, starting) = (
        package(tmp_path, f"SERVER = {name!r}\n") for name in ("running", "stopped", "starting")
    )
    server = PackageCache(cache_root)
    server.task_root(running_zip, running)
    gone = PackageCache(cache_root)
    gone.task_root(stopped_zip, stopped)
    gone.close()
    new = PackageCache(cache_root)
    new.task_root(starting_zip, starting)
    assert new.evict() == [cache_root / stopped]
    assert sorted(p.name for p in cache_root.iterdir()) == sorted([LOCKS, running, starting])
    assert sorted(p.name for p in (cache_root / LOCKS).iterdir()) == sorted([running, starting])
    server.close()
    new.close()


HOLDER = """
import sys
from pathlib import Path
from devserver.package_cache import PackageCache
cache = PackageCache(Path(sys.argv[1]))
cache.task_root(Path(sys.argv[2]), sys.argv[3])
print("holding", flush=True)
sys.stdin.read()
"""


def test_a_server_killed_outright_releases_its_folders(tmp_path: Path, cache_root: Path) -> None:
    zip_path, digest = package(tmp_path, "VERSION = 1\n")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(cache_root), str(zip_path), digest],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
        starting = PackageCache(cache_root)
        assert starting.evict() == []
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        assert starting.evict() == [cache_root / digest]
        assert not (cache_root / digest).exists()
        starting.close()
    finally:
        holder.kill()
        holder.wait()


def test_what_a_dead_extraction_left_is_removed(tmp_path: Path, cache_root: Path) -> None:
    ended = subprocess.Popen(["true"])
    ended.wait()
    cache = PackageCache(cache_root)
    dead = cache_root / f"{EXTRACTING}{ended.pid}-abc"
    live = cache_root / f"{EXTRACTING}{os.getpid()}-def"  # another server extracting now
    for folder in (dead, live):
        folder.mkdir()
        (folder / "handler.py").write_text("half")
    (cache_root / LOCKS / ("f" * 64)).touch()  # a start that failed before extracting
    assert cache.evict() == [dead, cache_root / ("f" * 64)]
    assert sorted(cache_root.iterdir()) == sorted([cache_root / LOCKS, live])
    assert list((cache_root / LOCKS).iterdir()) == []


def test_an_unreadable_package_leaves_nothing_behind(tmp_path: Path, cache_root: Path) -> None:
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"not a zip")
    cache = PackageCache(cache_root)
    with pytest.raises(zipfile.BadZipFile):
        cache.task_root(broken, hashlib.sha256(broken.read_bytes()).hexdigest())
    assert [p.name for p in cache_root.iterdir()] == [LOCKS]
    cache.close()


def test_two_servers_extracting_at_once_share_one_folder(
    tmp_path: Path, cache_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    zip_path, digest = package(tmp_path, "VERSION = 1\n")
    both_extracting = threading.Barrier(2, timeout=10)
    extract = package_cache.extract

    def in_step(package: Path, folder: Path) -> Path:
        both_extracting.wait()
        return extract(package, folder)

    monkeypatch.setattr(package_cache, "extract", in_step)
    caches = [PackageCache(cache_root) for _ in range(2)]
    found: list[Path] = []
    threads = [
        threading.Thread(target=lambda c=cache: found.append(c.task_root(zip_path, digest)))
        for cache in caches
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert found == [cache_root / digest] * 2
    assert (cache_root / digest / "handler.py").read_text() == "VERSION = 1\n"
    assert sorted(p.name for p in cache_root.iterdir()) == sorted([LOCKS, digest])
    for cache in caches:
        cache.close()


def test_a_server_waiting_on_a_removal_holds_what_it_extracts_next(
    tmp_path: Path, cache_root: Path
) -> None:
    """A start that waits while another removes the same folder locks the lock file created
    after the removal, not the removed one, so a third start cannot remove what it uses."""
    zip_path, digest = package(tmp_path, "VERSION = 1\n")
    evicting = PackageCache(cache_root)
    evicting.task_root(zip_path, digest)
    evicting.close()
    held = os.open(cache_root / LOCKS / digest, os.O_RDWR)
    package_cache.fcntl.flock(held, package_cache.fcntl.LOCK_EX)  # an eviction under way
    waiting = PackageCache(cache_root)
    found: list[Path] = []
    thread = threading.Thread(target=lambda: found.append(waiting.task_root(zip_path, digest)))
    thread.start()
    time.sleep(0.2)
    assert not found  # blocked on the eviction's lock
    shutil.rmtree(cache_root / digest)
    (cache_root / LOCKS / digest).unlink()
    os.close(held)
    thread.join(timeout=10)
    assert found == [cache_root / digest]
    assert (cache_root / digest / "handler.py").read_text() == "VERSION = 1\n"
    third = PackageCache(cache_root)
    assert third.evict() == []
    assert (cache_root / digest / "handler.py").is_file()
    waiting.close()
    third.close()
