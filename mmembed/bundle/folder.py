"""The bundle's folder mechanics: an atomic write, the manifest, verification and recovery.

This module knows one file name only, ``manifest.json``; what the other files are and how
they are read and written is :class:`mmembed.bundle.Bundle`'s business.

A bundle is a folder of files plus ``manifest.json``, which records the format version, when
and with which library versions it was built, the resolved config, a fingerprint of the
training data, the build's metrics and the sha256 and size of every file.

Writing (:func:`write_bundle`) happens in a hidden sibling folder ``.<name>.tmp-<pid>-<rand>``
(same parent, so ``os.rename`` is atomic); the manifest is written last, then the previous
bundle is renamed aside, the new one renamed into place and the old one deleted. A reader
therefore sees either the old complete bundle or the new complete one, never a half-written
folder under the name. (Between the two renames the name is briefly absent; a build killed
exactly there leaves the previous bundle in ``.<name>.old-<pid>-<rand>`` and the new one in
its ``.tmp`` folder; every reader and writer then renames the newest complete one into place,
see :func:`_recover`.)

Reading (:func:`read_manifest`) refuses a missing manifest, another format version, a missing
file, a file reached through a symbolic link, or a sha256 mismatch, with a :class:`BundleError`
naming the file and the fix.

Never pickle: weights go through safetensors, arrays through ``np.savez`` (read back with
``allow_pickle=False``), everything else is JSON.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import re
import secrets
import shutil
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

from mmembed.fileio import dumps_json

FORMAT_VERSION = 2
MANIFEST = "manifest.json"
REBUILD_HINT = "rebuild with `python train.py build_only=true ckpt_path=...`"
# Suffixes of formats that unpickle (torch.save, joblib, pickle) and so may run code on load.
PICKLE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".ckpt", ".joblib")
_HASH_CHUNK = 1 << 20

FileContent = bytes | Callable[[Path], None]


class BundleError(RuntimeError):
    """A bundle is missing, incomplete, damaged or of another format version."""


# ------------------------------------------------------------------------------- helpers
def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def library_versions() -> dict[str, str | None]:
    """Versions of the libraries a bundle depends on (``None`` if not installed)."""
    from mmembed import __version__

    def dist(*names: str) -> str | None:
        for name in names:
            try:
                return metadata.version(name)
            except metadata.PackageNotFoundError:
                continue
        return None

    return {
        "mmembed": __version__,
        "python": platform.python_version(),
        "torch": dist("torch"),
        "torchvision": dist("torchvision"),
        "lightning": dist("lightning"),
        "transformers": dist("transformers"),
        "faiss": dist("faiss-cpu", "faiss-gpu", "faiss-gpu-cu12", "faiss-gpu-cu11", "faiss"),
        "numpy": dist("numpy"),
        "sklearn": dist("scikit-learn"),
        "safetensors": dist("safetensors"),
    }


def default_bundle_name(experiment: str | None, data_name: str) -> str:
    """``"<experiment>-<data>"``, e.g. ``"joint_clip-synthetic"`` (``"default-<data>"``).

    Characters other than letters, digits, ``._-`` become ``_`` and leading dots are
    dropped, so the name is one visible folder.
    """
    name = f"{experiment or 'default'}-{data_name}"
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")
    return name or "default"


def _relative_name(name: str) -> PurePosixPath:
    """A file name inside the bundle: relative, POSIX, no ``..``, not the manifest."""
    rel = PurePosixPath(name)
    parts = name.split("/")
    if not name or rel.is_absolute() or "\\" in name or any(p in ("", ".", "..") for p in parts):
        raise BundleError(f"bundle file name {name!r} must be a relative path inside the bundle "
                          "(like 'pictures/map.png')")
    if rel.as_posix() == MANIFEST:
        raise BundleError(f"{MANIFEST} is written by write_bundle itself; do not pass it")
    if rel.suffix.lower() in PICKLE_SUFFIXES:
        raise BundleError(f"bundle file {name!r} looks like a pickle; store weights with "
                          "safetensors, arrays with np.savez and the rest as JSON")
    return rel


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_WORK_DIR = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)-[0-9a-f]+$")


def _manifest_created(folder: Path) -> dt.datetime | None:
    """When the bundle at ``folder`` was created, or ``None`` if its manifest is unreadable
    (the manifest is written last, so a folder with a readable one is complete)."""
    try:
        created = dt.datetime.fromisoformat(
            json.loads((folder / MANIFEST).read_text(encoding="utf-8"))["created"])
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return None
    return created if created.tzinfo else created.replace(tzinfo=dt.UTC)


def _recover(target: Path) -> None:
    """Clean up after builds of ``target`` that died (their pid no longer runs).

    A build killed between the two renames of the swap leaves no folder under the name, but
    the previous bundle in ``.<name>.old-*`` and the new, complete one in ``.<name>.tmp-*``
    (its manifest, written last, is there). Then the newest complete one of them is renamed
    into place. Every other folder of a dead build is deleted: an unfinished ``.tmp`` (no
    manifest, or the name still holds a bundle) and an ``.old`` that is no longer needed.
    Called by the writer and by the readers, so no one ever finds "no bundle" while a complete
    one sits beside the name. Races with another process recovering the same name are
    harmless: the loser's rename fails and its folder is left to the next call.
    """
    parent = target.parent
    if not parent.is_dir():
        return
    dead = []
    for entry in sorted(parent.iterdir()):
        match = _WORK_DIR.match(entry.name)
        if match and match["name"] == target.name and not _pid_alive(int(match["pid"])):
            dead.append(entry)
    if not dead:
        return
    if not target.exists():
        complete = [(created, entry) for entry in dead
                    if (created := _manifest_created(entry)) is not None]
        if complete:
            _, newest = max(complete)
            try:
                os.rename(newest, target)
                dead.remove(newest)
            except OSError:
                return
    for entry in dead:
        shutil.rmtree(entry, ignore_errors=True)


def recover_bundles(index_dir: str | Path) -> None:
    """:func:`_recover` every bundle name that has folders of a dead build in ``index_dir``."""
    index_dir = Path(index_dir)
    if not index_dir.is_dir():
        return
    names = {m["name"] for e in index_dir.iterdir() if (m := _WORK_DIR.match(e.name))}
    for name in sorted(names):
        _recover(index_dir / name)


# ------------------------------------------------------------------------------- write
def write_bundle(target: str | Path, files: Mapping[str, FileContent], config: Mapping,
                 data_fingerprint: str, metrics: Mapping, extra: Mapping | None = None) -> Path:
    """Write a complete bundle to ``target`` atomically and return ``target``.

    ``files`` maps a relative name (sub-folders allowed, e.g. ``"pictures/map.png"``) to its
    bytes or to a writer ``fn(path)`` that creates the file at ``path`` (so FAISS,
    safetensors or matplotlib write straight into the temporary folder). Every file found in
    the folder after the writers ran is hashed into the manifest. If anything raises, the
    temporary folder is removed and the previous bundle at ``target`` is left untouched.
    """
    target = Path(target)
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    _recover(target)
    names = {name: _relative_name(name) for name in files}
    tmp = parent / f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        for name, content in files.items():
            path = tmp / names[name]
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes | bytearray | memoryview):
                path.write_bytes(bytes(content))
            elif callable(content):
                content(path)
            else:
                raise TypeError(f"bundle file {name!r}: expected bytes or a writer callable, "
                                f"got {type(content).__name__}")
            if not path.is_file():
                raise BundleError(f"the writer for bundle file {name!r} did not create it")
        manifest = {
            "format_version": FORMAT_VERSION,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
            "name": target.name,
            "versions": library_versions(),
            "config": config,
            "data_fingerprint": data_fingerprint,
            "files": _describe_files(tmp),
            "metrics": metrics,
            "extra": extra or {},
        }
        (tmp / MANIFEST).write_text(dumps_json(manifest), encoding="utf-8")
        _fsync_path(tmp / MANIFEST)
        _fsync_path(tmp)
        _swap_into_place(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _describe_files(folder: Path) -> dict[str, dict[str, Any]]:
    """``{relative name: {"sha256", "bytes"}}`` of every file under ``folder`` (flushed)."""
    described = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() or p.is_symlink()):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink():
            raise BundleError(f"bundle file {rel!r} is a symbolic link; write a real file")
        _fsync_path(path)
        described[rel] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    return described


def _swap_into_place(tmp: Path, target: Path) -> None:
    if not target.exists():
        os.rename(tmp, target)
        _fsync_path(target.parent)
        return
    old = target.parent / f".{target.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
    os.rename(target, old)
    try:
        os.rename(tmp, target)
    except BaseException:
        os.rename(old, target)
        raise
    _fsync_path(target.parent)
    shutil.rmtree(old, ignore_errors=True)


# ------------------------------------------------------------------------------- read
def read_manifest(folder: str | Path, expected_format: int = FORMAT_VERSION,
                  verify: bool = True) -> dict[str, Any]:
    """The manifest of the bundle at ``folder``, checked to be complete, current and undamaged.

    Checks: the folder and ``manifest.json`` exist and parse; ``format_version`` equals
    ``expected_format``; every listed file exists with the listed size and (when ``verify``)
    sha256. Raises :class:`BundleError` with the file at fault and the fix.
    """
    folder = Path(folder)
    _recover(folder)
    if not folder.is_dir():
        raise BundleError(f"no bundle at {folder}; run `python train.py` first")
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"{folder} has no {MANIFEST}, so it is not a complete bundle; "
                          "run `python train.py` to build it")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BundleError(f"{manifest_path} is damaged ({err}); rebuild the bundle") from err
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise BundleError(f"{manifest_path} is not a bundle manifest; rebuild the bundle")
    found = manifest.get("format_version")
    if found != expected_format:
        raise BundleError(f"{folder} is bundle format {found}, but this mmembed reads format "
                          f"{expected_format}; {REBUILD_HINT}")
    for name, entry in manifest["files"].items():
        try:
            _relative_name(name)
        except BundleError as err:
            raise BundleError(f"{manifest_path} lists an invalid file {name!r}: {err}") from err
        path = folder / name
        link = _symlink_inside(folder, name)
        if link is not None:
            raise BundleError(f"{link} is a symbolic link (to {os.readlink(link)!r}); a bundle "
                              "holds real files only, and a link could point anywhere. "
                              "Refused; rebuild the bundle")
        if not path.is_file():
            raise BundleError(f"{path} is missing; rebuild the bundle")
        damaged = path.stat().st_size != entry.get("bytes") or (
            verify and sha256_file(path) != entry.get("sha256"))
        if damaged:
            raise BundleError(f"{path} is damaged (sha256 mismatch); rebuild the bundle")
    return manifest


def _symlink_inside(folder: Path, name: str) -> Path | None:
    """The first component of ``folder/name`` below ``folder`` that is a symbolic link, if any
    (the bundle folder itself may be a link of the user's own)."""
    path = folder
    for part in PurePosixPath(name).parts:
        path = path / part
        if path.is_symlink():
            return path
    return None


def list_bundles(index_dir: str | Path) -> list[Path]:
    """The complete bundles under ``index_dir``, newest first (by manifest ``created``).
    Hidden folders (builds in progress, ``.tmp``/``.old``) and folders without a readable
    manifest are left out; contents are not verified here."""
    index_dir = Path(index_dir)
    if not index_dir.is_dir():
        return []
    recover_bundles(index_dir)
    found = []
    for entry in index_dir.iterdir():
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        created = _manifest_created(entry)
        if created is not None:
            found.append((created, entry.name, entry))
    return [entry for *_, entry in sorted(found, key=lambda f: (f[0], f[1]), reverse=True)]


def newest_bundle(index_dir: str | Path) -> Path | None:
    """The most recently created complete bundle under ``index_dir`` (see
    :func:`list_bundles`), or ``None``."""
    bundles = list_bundles(index_dir)
    return bundles[0] if bundles else None
