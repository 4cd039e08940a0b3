"""Fetch Debian packages of data into the cache and unpack the files a source needs.

Real images that anyone may use (Tux Paint's stamps, Openclipart's drawings) are shipped by
Debian as packages. A source that reads one never stores it in the repository: on first use it
runs ``apt-get download`` (needs apt's package lists, not root) into its cache folder, or takes
a ``.deb`` the user put there by hand (offline use), and unpacks only the files it needs.

The data archive is streamed from ``dpkg-deb --fsys-tarfile``, which reads every compression
Debian and Ubuntu use; without dpkg-deb (a .deb copied to another OS) the ``ar`` archive is read
in Python, which handles xz, gzip and bzip2. Archive members are untrusted: absolute paths and
``..`` are never written, and a link is only made when it points at a file unpacked inside the
destination.
"""

from __future__ import annotations

import io
import os
import posixpath
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from mmembed.data.sources import SourceError


@dataclass(frozen=True)
class DebianPackage:
    """A Debian package of data: its name, its download size (for messages) and how a cached
    copy is recognised (``cache_glob``, default ``<name>_*.deb``)."""

    name: str
    size_mb: int
    cache_glob: str = ""

    @property
    def download_url(self) -> str:
        """Where to get the .deb by hand when apt cannot (any mirror of Debian's pool works)."""
        return f"https://packages.debian.org/stable/all/{self.name}/download"


def fetch(
    package: DebianPackage, cache_dir: Path, apt_get: str = "apt-get", timeout_s: float = 900.0
) -> Path:
    """The package's .deb in ``cache_dir``: one already there, else ``apt-get download``."""
    return cached_deb(package, cache_dir) or download(package, cache_dir, apt_get, timeout_s)


def cached_deb(package: DebianPackage, cache_dir: Path) -> Path | None:
    """A .deb of ``package`` already in the cache (downloaded earlier or placed by hand)."""
    debs = sorted(Path(cache_dir).glob(package.cache_glob or f"{package.name}_*.deb"))
    return debs[-1] if debs else None


def download(
    package: DebianPackage, cache_dir: Path, apt_get: str = "apt-get", timeout_s: float = 900.0
) -> Path:
    """``apt-get download`` into ``cache_dir`` (through a temporary folder, so a failed or
    interrupted download never leaves a half .deb that would later be taken as the package)."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    name = package.name
    fix = (
        f"run `sudo apt-get update` once so apt knows {name}, or download the .deb by "
        f"hand ({package.download_url}) and put it in {cache_dir}"
    )
    tmp = Path(tempfile.mkdtemp(prefix="download-", dir=cache_dir))
    try:
        try:
            proc = subprocess.run(
                [apt_get, "download", name],
                cwd=tmp,
                capture_output=True,
                text=True,
                timeout=timeout_s,
            )
        except FileNotFoundError:
            raise SourceError(
                f"cannot fetch {name}: `{apt_get}` is not available on this system. "
                f"Download the .deb by hand ({package.download_url}) and put it in {cache_dir}"
            ) from None
        except subprocess.TimeoutExpired:
            raise SourceError(
                f"`{apt_get} download {name}` took longer than {timeout_s:.0f}s "
                f"(the package is ~{package.size_mb} MB); raise timeout_s, or {fix}"
            ) from None
        debs = sorted(tmp.glob("*.deb"))
        if proc.returncode != 0 or not debs:
            detail = last_lines(proc.stderr or proc.stdout) or f"exit {proc.returncode}"
            raise SourceError(f"`{apt_get} download {name}` failed ({detail}); {fix}")
        target = cache_dir / debs[-1].name
        os.replace(debs[-1], target)
        return target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def unpack(
    debs: Sequence[tuple[Path, str]],
    dest: Path,
    keep: Callable[[PurePosixPath], bool],
    dpkg_deb: str = "dpkg-deb",
    timeout_s: float = 900.0,
    links: bool = False,
) -> None:
    """Unpack the members of each ``(deb, folder)`` that ``keep`` accepts into ``dest``.

    ``keep`` sees the member's path inside the package (``usr/share/...``); only what it accepts
    is written, so a source never stores the parts of a package it ignores (Tux Paint's sounds
    are 190 of its 230 MB). Each deb must yield its ``folder``, else it is not the expected
    package. With ``links``, symbolic and hard links among the accepted members are kept (as
    symbolic links) when they resolve to a file unpacked inside ``dest``; without, they are
    dropped. Atomic: everything goes to a temporary folder that is renamed to ``dest``, so an
    interrupted run never leaves half a tree that would later be taken as complete.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="pkg-", dir=dest.parent))
    try:
        for deb, folder in debs:
            try:
                if shutil.which(dpkg_deb):
                    _unpack_with_dpkg(deb, tmp, keep, links, dpkg_deb, timeout_s)
                else:
                    with open(deb, "rb") as fh:
                        member, stream = _ar_data_member(fh, deb)
                        tar = tarfile.open(fileobj=stream, mode=_tar_mode(member, deb))
                        _untar(tar, tmp, keep, links)
            except (tarfile.TarError, EOFError, OSError) as exc:
                raise SourceError(
                    f"cannot unpack {deb}: {exc}. The file may be damaged; delete it and retry"
                ) from exc
            if not (tmp / folder).is_dir():
                raise SourceError(
                    f"{deb} holds no {folder}; is it the right package? Delete it and retry"
                )
        try:
            tmp.rename(dest)
        except OSError:  # another process finished first: keep theirs
            if not all((dest / folder).is_dir() for _, folder in debs):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def last_lines(text: str, n: int = 3) -> str:
    """The last ``n`` non-empty lines of a tool's output, joined, for an error message."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return " | ".join(lines[-n:])


# ---------------------------------------------------------------------- helpers


def _unpack_with_dpkg(
    deb: Path, out: Path, keep, links: bool, dpkg_deb: str, timeout_s: float
) -> None:
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [dpkg_deb, "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE, stderr=err
        )
        try:
            _untar(tarfile.open(fileobj=proc.stdout, mode="r|"), out, keep, links)
        except (tarfile.TarError, EOFError):
            proc.kill()
            proc.wait()
            err.seek(0)
            detail = last_lines(err.read().decode(errors="replace"))
            raise SourceError(
                f"cannot unpack {deb} ({detail or 'not a tar stream'}); the file may be "
                "damaged: delete it and retry"
            ) from None
        finally:
            proc.stdout.close()
        if proc.wait(timeout=timeout_s) != 0:
            err.seek(0)
            detail = last_lines(err.read().decode(errors="replace"))
            raise SourceError(f"`{dpkg_deb} --fsys-tarfile {deb}` failed: {detail}")


class _Slice(io.RawIOBase):
    """A read-only window of ``size`` bytes of an open file, for streaming one ar member."""

    def __init__(self, fh, size: int) -> None:
        self._fh = fh
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self._left)
        data = self._fh.read(n)
        buffer[: len(data)] = data
        self._left -= len(data)
        return len(data)


def _ar_data_member(fh, deb: Path) -> tuple[str, io.BufferedReader]:
    """Find ``data.tar*`` in a .deb (an ``ar`` archive) and return its name and a stream."""
    if fh.read(8) != b"!<arch>\n":
        raise SourceError(f"{deb} is not a .deb (no ar header); delete it and retry")
    while True:
        header = fh.read(60)
        if len(header) < 60:
            raise SourceError(f"{deb} has no data.tar member; delete it and retry")
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip() or 0)
        if name.startswith("data.tar"):
            return name, io.BufferedReader(_Slice(fh, size))
        fh.seek(size + (size % 2), os.SEEK_CUR)


def _tar_mode(member: str, deb: Path) -> str:
    modes = {
        "data.tar": "r|",
        "data.tar.xz": "r|xz",
        "data.tar.gz": "r|gz",
        "data.tar.bz2": "r|bz2",
    }
    if member not in modes:
        raise SourceError(
            f"{deb} stores its files as {member}, which Python cannot read; install dpkg-deb "
            f"(package dpkg) or extract it by hand: dpkg-deb -x {deb.name} <cache>/pkg"
        )
    return modes[member]


def _member_path(name: str) -> PurePosixPath | None:
    """The member's path inside the package, or None when it would leave the destination."""
    raw = name[2:] if name.startswith("./") else name
    path = PurePosixPath(raw)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        return None
    return path


def _untar(tar: tarfile.TarFile, out: Path, keep, links: bool) -> None:
    """Write the accepted regular files of a package tar stream below ``out``, then its links."""
    pending: list[tuple[PurePosixPath, PurePosixPath]] = []  # (link, target), package paths
    with tar:
        for member in tar:
            name = _member_path(member.name)
            if name is None or not keep(name):
                continue
            if member.isfile():
                dest = out / name
                dest.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(member)
                if src is None:
                    continue
                with src, open(dest, "wb") as fh:
                    shutil.copyfileobj(src, fh)
            elif links and (member.issym() or member.islnk()):
                # a symlink is relative to its folder; a hard link names a package path
                raw = (
                    posixpath.join(str(name.parent), member.linkname)
                    if member.issym()
                    else (_member_path(member.linkname) or PurePosixPath("..")).as_posix()
                )
                target = PurePosixPath(posixpath.normpath(raw))
                if not target.is_absolute() and ".." not in target.parts:
                    pending.append((name, target))
    for name, target in pending:
        dest = out / name
        if dest.exists() or dest.is_symlink():
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.symlink_to(os.path.relpath(out / target, dest.parent))
    root = out.resolve()
    for name, _ in pending:  # links to nothing kept, or out of the tree (via other links)
        dest = out / name
        real = Path(os.path.realpath(dest))
        if dest.is_symlink() and (not real.is_file() or not real.is_relative_to(root)):
            dest.unlink()
