"""debian.unpack: only accepted members are written, and links never leave the destination.

The Tux Paint and Openclipart tests cover fetching and unpacking whole packages; this covers
the link handling that Openclipart needs (the packages file a drawing in several folders by
linking it) on archive members that try to escape.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path, PurePosixPath

import pytest

from mmembed.data.sources import SourceError
from mmembed.data.sources.debian import unpack

DATA = "usr/share/data"


def _deb(tmp_path: Path, compression: str = "xz") -> Path:
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed")
    root = tmp_path / "staging"
    data = root / DATA
    (data / "sub").mkdir(parents=True)
    (data / "a.txt").write_text("a")
    (data / "skipped.bin").write_text("not accepted")
    os.symlink("../a.txt", data / "sub" / "good.txt")  # inside: kept
    os.symlink("good.txt", data / "sub" / "chain.txt")  # a link to a link: kept
    os.symlink("../../../../../../etc/hostname", data / "escape.txt")  # leaves the tree
    os.symlink("/etc/hostname", data / "absolute.txt")
    os.symlink("skipped.bin", data / "to_dropped.txt")  # its target is not unpacked
    os.symlink("missing.txt", data / "dangling.txt")
    os.link(data / "a.txt", data / "hard.txt")  # a hard link member in the tar
    (root / "DEBIAN").mkdir()
    (root / "DEBIAN/control").write_text(
        "Package: test-data\nVersion: 0.0\nArchitecture: all\n"
        "Maintainer: test <test@example.org>\nDescription: links for tests\n")
    deb = tmp_path / "test-data_0.0_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", f"-Z{compression}", "-b", str(root),
                    str(deb)], check=True, capture_output=True)
    return deb


def _txt(name: PurePosixPath) -> bool:
    return name.suffix == ".txt"


@pytest.mark.parametrize("dpkg", ["dpkg-deb", "/nonexistent/dpkg-deb"])
def test_links_are_kept_only_inside_the_tree(tmp_path, dpkg):
    deb = _deb(tmp_path, "gzip")
    dest = tmp_path / "out"
    unpack([(deb, DATA)], dest, _txt, dpkg_deb=dpkg, links=True)
    data = dest / DATA
    names = sorted(p.relative_to(data).as_posix() for p in data.rglob("*")
                   if p.is_file() or p.is_symlink())
    assert names == ["a.txt", "hard.txt", "sub/chain.txt", "sub/good.txt"]
    assert (data / "sub/chain.txt").read_text() == "a"
    assert (data / "hard.txt").read_text() == "a"
    for link in ("sub/good.txt", "sub/chain.txt", "hard.txt"):
        assert (data / link).is_symlink()
        assert (data / link).resolve().is_relative_to(dest.resolve())


def test_without_links_only_regular_files(tmp_path):
    dest = tmp_path / "out"
    unpack([(_deb(tmp_path), DATA)], dest, _txt)
    assert sorted(p.name for p in (dest / DATA).rglob("*") if p.is_file() or p.is_symlink()) \
        == ["a.txt"]


def test_a_deb_without_the_folder_is_refused_and_nothing_is_left(tmp_path):
    deb = _deb(tmp_path)
    dest = tmp_path / "out"
    with pytest.raises(SourceError, match="holds no usr/share/other.*Delete it and retry"):
        unpack([(deb, "usr/share/other")], dest, _txt)
    assert not dest.exists() and not list(tmp_path.glob("pkg-*"))
