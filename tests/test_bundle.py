"""The bundle: atomic write, manifest with hashes, refusal of damaged or foreign bundles."""

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from mmembed.bundle import (
    FORMAT_VERSION,
    MANIFEST,
    BundleError,
    default_bundle_name,
    newest_bundle,
    read_bundle,
    write_bundle,
)
from mmembed.bundle.folder import read_manifest
from mmembed.fileio import dumps_json


def marker(target) -> str:
    """The marker of the bundle at ``target``, read after verifying the whole bundle."""
    read_bundle(target)
    return json.loads((target / "clusters.json").read_text())["marker"]


def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def build(target, marker="one", **kwargs):
    """A small bundle: JSON, npz, a writer callable and a file in a sub-folder."""
    files = {
        "clusters.json": dumps_json({"names": ["a", "b"], "marker": marker}).encode(),
        "clusters.npz": npz_bytes(centroids=np.eye(2, dtype=np.float32)),
        "pictures/map.png": b"\x89PNG fake",
        "posts.jsonl": lambda path: path.write_text('{"post_id": "p1"}\n'),
    }
    files.update(kwargs.pop("files", {}))
    return write_bundle(target, files, config={"model": {"dim": 8}, "seed": np.int64(3)},
                        data_fingerprint="abc123", metrics={"nmi": np.float32(0.5)}, **kwargs)


def test_round_trip(tmp_path):
    target = build(tmp_path / "index" / "joint_clip-synthetic", extra={"note": "hi"})
    bundle = read_bundle(target)
    manifest = bundle.manifest
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["data_fingerprint"] == "abc123"
    assert manifest["config"] == {"model": {"dim": 8}, "seed": 3}
    assert manifest["metrics"]["nmi"] == pytest.approx(0.5)
    assert manifest["extra"] == {"note": "hi"}
    assert {"mmembed", "python", "torch", "faiss", "numpy", "sklearn"} <= set(manifest["versions"])
    assert manifest["created"].endswith("+00:00")
    assert set(manifest["files"]) == {"clusters.json", "clusters.npz", "pictures/map.png",
                                      "posts.jsonl"}
    for name, entry in manifest["files"].items():
        assert len(entry["sha256"]) == 64 and entry["bytes"] == (target / name).stat().st_size
    assert json.loads(bundle.file("clusters.json").read_text())["names"] == ["a", "b"]
    with np.load(bundle.file("clusters.npz"), allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["centroids"], np.eye(2))
    assert bundle.file("pictures/map.png").read_bytes() == b"\x89PNG fake"
    assert bundle.metrics["nmi"] == pytest.approx(0.5)
    assert not any(p.name.startswith(".") for p in target.parent.iterdir())


def test_tampered_file_is_refused_by_name(tmp_path):
    target = build(tmp_path / "NAME")
    path = target / "clusters.npz"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same size, different content
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"NAME/clusters\.npz is damaged \(sha256 mismatch\)"):
        read_bundle(target)


def test_wrong_format_version_is_refused(tmp_path):
    target = build(tmp_path / "b")
    manifest = json.loads((target / MANIFEST).read_text())
    manifest["format_version"] = FORMAT_VERSION + 1
    (target / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=rf"format {FORMAT_VERSION + 1}.*reads format "
                       rf"{FORMAT_VERSION}.*build_only=true"):
        read_bundle(target)
    with pytest.raises(BundleError, match="reads format 99"):
        read_manifest(build(tmp_path / "c"), expected_format=99)


def test_missing_file_and_missing_bundle_are_refused(tmp_path):
    target = build(tmp_path / "b")
    (target / "pictures" / "map.png").unlink()
    with pytest.raises(BundleError, match=r"pictures/map\.png is missing"):
        read_bundle(target)
    with pytest.raises(BundleError, match="no bundle at .*run `python train.py` first"):
        read_bundle(tmp_path / "nothing-here")
    (tmp_path / "half").mkdir()
    with pytest.raises(BundleError, match="no manifest.json"):
        read_bundle(tmp_path / "half")
    (tmp_path / "half" / MANIFEST).write_text("{not json")
    with pytest.raises(BundleError, match="damaged"):
        read_bundle(tmp_path / "half")


def test_file_not_in_manifest_is_refused(tmp_path):
    bundle = read_bundle(build(tmp_path / "b"))
    with pytest.raises(BundleError, match="not part of this bundle"):
        bundle.file("model.safetensors")


def test_interrupted_build_leaves_previous_bundle_intact(tmp_path):
    index_dir = tmp_path / "index"
    target = build(index_dir / "run", marker="old")
    before = read_bundle(target).manifest

    def crash(path):
        path.write_bytes(b"half written")
        raise KeyboardInterrupt("killed mid-way")

    with pytest.raises(KeyboardInterrupt):
        build(target, marker="new", files={"model.safetensors": crash})
    bundle = read_bundle(target)
    assert bundle.manifest == before and marker(target) == "old"
    assert sorted(p.name for p in index_dir.iterdir()) == ["run"]  # no tmp left behind
    assert newest_bundle(index_dir) == target


def test_sigkilled_build_never_exposes_a_half_bundle(tmp_path):
    index_dir = tmp_path / "index"
    target = build(index_dir / "run", marker="old")
    started = tmp_path / "started"
    script = textwrap.dedent(f"""
        import pathlib, time
        from mmembed.bundle import write_bundle
        def slow(path):
            path.write_bytes(b"partial")
            pathlib.Path({str(started)!r}).touch()
            time.sleep(60)
        write_bundle(pathlib.Path({str(target)!r}), {{"model.safetensors": slow}}, config={{}},
                     data_fingerprint="x", metrics={{}})
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 60
        while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started.exists(), "the child build never reached its writer"
        assert any(p.name.startswith(".run.tmp-") for p in index_dir.iterdir())
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert marker(target) == "old"
    assert newest_bundle(index_dir) == target
    build(target, marker="new")  # the dead build's tmp folder is cleaned up
    assert sorted(p.name for p in index_dir.iterdir()) == ["run"]


def test_killed_build_leftovers_are_ignored_and_cleaned(tmp_path):
    # A build killed with SIGKILL cannot clean up; simulate its folders (pid 2**22+1 exceeds
    # Linux's pid_max, so no live process has it).
    index_dir = tmp_path / "index"
    target = build(index_dir / "run", marker="old")
    time.sleep(0.01)
    dead = 2**22 + 1
    leftover = index_dir / f".run.tmp-{dead}-00ff"
    leftover.mkdir()
    (leftover / "clusters.json").write_text("{}")
    (leftover / MANIFEST).write_text(json.dumps({"format_version": FORMAT_VERSION,
                                                 "created": "2999-01-01T00:00:00+00:00",
                                                 "files": {}}))
    assert newest_bundle(index_dir) == target
    assert marker(target) == "old"
    build(target, marker="new")
    assert not leftover.exists()
    assert marker(target) == "new"


DEAD_PID = 2**22 + 1  # above Linux's pid_max: no live process has it


def kill_between_renames(target, marker="new"):
    """What a build of ``target`` killed between the swap's two renames leaves: the previous
    bundle in ``.<name>.old-*`` and the complete new one in ``.<name>.tmp-*``."""
    index_dir = target.parent
    aside = index_dir / f".{target.name}.old-{DEAD_PID}-00ff"
    os.rename(target, aside)
    time.sleep(0.01)
    new = build(index_dir / "scratch", marker=marker)
    fresh = index_dir / f".{target.name}.tmp-{DEAD_PID}-11ee"
    os.rename(new, fresh)
    return aside, fresh


def test_reader_recovers_a_build_killed_between_renames(tmp_path):
    index_dir = tmp_path / "index"
    target = build(index_dir / "run", marker="old")
    aside, fresh = kill_between_renames(target)
    bundle = read_bundle(target)  # the newest complete bundle is renamed into place
    assert bundle.path == target and marker(target) == "new"
    assert sorted(p.name for p in index_dir.iterdir()) == ["run"]


def test_newest_bundle_recovers_too(tmp_path):
    index_dir = tmp_path / "index"
    target = build(index_dir / "run", marker="old")
    kill_between_renames(target)
    assert newest_bundle(index_dir) == target
    assert marker(target) == "new"


def test_reader_restores_previous_when_new_build_was_unfinished(tmp_path):
    index_dir = tmp_path / "index"
    target = build(index_dir / "run", marker="old")
    aside = index_dir / f".run.old-{DEAD_PID}-00ff"
    os.rename(target, aside)
    unfinished = index_dir / f".run.tmp-{DEAD_PID}-11ee"
    unfinished.mkdir()
    (unfinished / "clusters.json").write_text("{}")  # no manifest: never finished
    assert marker(target) == "old"
    assert sorted(p.name for p in index_dir.iterdir()) == ["run"]


def test_reader_cleans_a_dead_builds_temporary_folder(tmp_path):
    index_dir = tmp_path / "index"
    target = build(index_dir / "run", marker="old")
    leftover = index_dir / f".run.tmp-{DEAD_PID}-00ff"
    leftover.mkdir()
    (leftover / "model.safetensors").write_bytes(b"x" * 4096)
    build(index_dir / "other")  # another name: leaves this one's leftovers alone
    assert leftover.exists()
    assert marker(target) == "old"
    assert not leftover.exists()


def test_reader_leaves_a_live_builds_folders_alone(tmp_path):
    index_dir = tmp_path / "index"
    target = build(index_dir / "run", marker="old")
    live = index_dir / f".run.tmp-{os.getpid()}-00ff"
    live.mkdir()
    read_bundle(target)
    assert live.exists()


def test_symlink_inside_a_bundle_is_refused_on_read(tmp_path):
    target = build(tmp_path / "b")
    outside = tmp_path / "secret.json"
    real = target / "clusters.json"
    outside.write_bytes(real.read_bytes())  # same bytes, so the hash alone would pass
    real.unlink()
    real.symlink_to(outside)
    with pytest.raises(BundleError, match="symbolic link"):
        read_bundle(target)


def test_symlinked_subfolder_is_refused_on_read(tmp_path):
    target = build(tmp_path / "b")
    elsewhere = tmp_path / "elsewhere"
    os.rename(target / "pictures", elsewhere)
    (target / "pictures").symlink_to(elsewhere)
    with pytest.raises(BundleError, match="pictures.*symbolic link"):
        read_bundle(target)


def test_bundle_folder_itself_may_be_the_users_symlink(tmp_path):
    target = build(tmp_path / "store" / "b", marker="linked")
    (tmp_path / "index").mkdir()
    link = tmp_path / "index" / "b"
    link.symlink_to(target)
    assert marker(link) == "linked"


def test_newest_bundle_picks_latest_complete(tmp_path):
    index_dir = tmp_path / "index"
    assert newest_bundle(index_dir) is None
    first = build(index_dir / "b-first")
    time.sleep(0.01)
    second = build(index_dir / "a-second")
    (index_dir / "incomplete").mkdir()
    (index_dir / "stray.txt").write_text("x")
    assert newest_bundle(index_dir) == second
    time.sleep(0.01)
    rebuilt = build(first)
    assert newest_bundle(index_dir) == rebuilt == first


def test_no_pickle_anywhere(tmp_path):
    with pytest.raises(BundleError, match="pickle"):
        build(tmp_path / "p", files={"model.pt": b"..."})
    assert not (tmp_path / "p").exists()
    target = build(tmp_path / "b", files={"latents.npz": npz_bytes(x=np.array([{"a": 1}],
                                                                                 dtype=object))})
    manifest_text = (target / MANIFEST).read_text()
    json.loads(manifest_text)  # plain JSON, not a pickle
    assert not manifest_text.startswith("\x80")
    bundle = read_bundle(target)
    with pytest.raises(BundleError, match="latents.npz holds object arrays"):
        bundle.latents()
    assert not any(p.suffix in {".pkl", ".pickle", ".pt", ".pth"} for p in target.rglob("*"))


def test_bad_file_names_are_refused(tmp_path):
    for name in ("../escape.json", "/abs.json", "manifest.json", "a//b", ""):
        with pytest.raises(BundleError):
            build(tmp_path / "b", files={name: b"{}"})
    assert not (tmp_path / "b").exists() and list(tmp_path.iterdir()) == []


def test_writer_that_writes_nothing_is_refused(tmp_path):
    with pytest.raises(BundleError, match="did not create"):
        build(tmp_path / "b", files={"model.safetensors": lambda path: None})
    assert list(tmp_path.iterdir()) == []


def test_default_bundle_name():
    assert default_bundle_name("joint_clip", "synthetic") == "joint_clip-synthetic"
    assert default_bundle_name(None, "synthetic") == "default-synthetic"
    assert default_bundle_name("exp/x y", ".hidden") == "exp_x_y-.hidden"
    assert not default_bundle_name("..", "d").startswith(".")


def test_dumps_json_converts_numpy_and_rejects_the_unknown():
    text = dumps_json({"a": np.arange(3), "b": np.float64(1.5), "c": (1, 2), 3: np.bool_(True),
                       "nan": float("nan"), "s": {2, 1}})
    assert json.loads(text) == {"a": [0, 1, 2], "b": 1.5, "c": [1, 2], "3": True, "nan": None,
                                "s": [1, 2]}
    with pytest.raises(TypeError):
        dumps_json({"x": object()})
