"""Download (resumable, sha256-verified, safe unpacking) and verify-features."""
from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zipfile

import numpy as np
import pytest

from tfvaegan.data import DataError
from tfvaegan.demo import N_CLASSES
from tfvaegan.download import fetch, unpack

FILES = {
    "xlsa17/data/CUB/att_splits.mat": b"split file of CUB" * 50,
    "xlsa17/data/CUB/res101.mat": bytes(range(256)) * 400,
    "xlsa17/data/SUN/att_splits.mat": b"split file of SUN",
    "xlsa17/README": b"not data",
}


@pytest.fixture
def archive(tmp_path):
    path = tmp_path / "src" / "xlsa17.zip"
    path.parent.mkdir()
    with zipfile.ZipFile(path, "w") as zf:
        for name, content in FILES.items():
            zf.writestr(name, content)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def test_download_verifies_and_unpacks_under_the_prefix(run_cli, tmp_path, archive):
    path, sha = archive
    root = tmp_path / "data"
    code, err = run_cli("download", "--url", path.as_uri(), "--sha256", sha, "--data-root", root,
                        "--member-prefix", "xlsa17/data/", "--only", "CUB")
    assert code == 0, err
    assert (root / "CUB" / "res101.mat").read_bytes() == FILES["xlsa17/data/CUB/res101.mat"]
    assert (root / "CUB" / "att_splits.mat").read_bytes() == FILES["xlsa17/data/CUB/att_splits.mat"]
    assert not (root / "SUN").exists() and not (root / "README").exists()
    assert (root / ".downloads" / "xlsa17.zip").read_bytes() == path.read_bytes()
    # a second call reuses the verified archive instead of downloading again
    code, err = run_cli("download", "--url", path.as_uri(), "--sha256", sha, "--data-root", root,
                        "--member-prefix", "xlsa17/data/")
    assert code == 0 and "already present" in err
    assert (root / "SUN" / "att_splits.mat").exists()


def test_wrong_checksum_is_refused_and_nothing_is_unpacked(run_cli, tmp_path, archive):
    path, _ = archive
    root = tmp_path / "data"
    code, err = run_cli("download", "--url", path.as_uri(), "--sha256", "0" * 64, "--data-root", root,
                        "--member-prefix", "xlsa17/data/")
    last = err.strip().splitlines()[-1]  # progress lines come first; the error is one line
    assert code == 2 and last.startswith("error: ") and "sha256 expected " + "0" * 64 in last
    assert not (root / "CUB").exists()
    assert not list((root / ".downloads").iterdir())  # neither the archive nor a partial file


def test_interrupted_download_resumes_from_the_partial_file(tmp_path, archive):
    path, sha = archive
    original = path.read_bytes()
    dest = tmp_path / "cache" / "xlsa17.zip"
    dest.parent.mkdir()
    half = len(original) // 2
    (dest.parent / "xlsa17.zip.part").write_bytes(original[:half])
    # Spoil the source's first half: only a download that continues after the partial file
    # (and does not start over) can still produce the verified archive.
    path.write_bytes(b"\0" * half + original[half:])
    fetch(path.as_uri(), dest, sha, progress=False)
    assert dest.read_bytes() == original
    assert not (dest.parent / "xlsa17.zip.part").exists()


def test_missing_checksum_warns_with_the_checksum_found(tmp_path, archive, capsys):
    path, sha = archive
    fetch(path.as_uri(), tmp_path / "a.zip", None, progress=False)
    err = capsys.readouterr().err
    assert "warning:" in err and "not verified" in err and sha in err


def test_bad_url_scheme_and_bad_checksum_text(run_cli, tmp_path):
    code, err = run_cli("download", "--url", "ftp://example.org/x.zip", "--data-root", tmp_path)
    assert code == 2 and "http, https or file" in err
    code, err = run_cli("download", "--url", "file:///x.zip", "--sha256", "abc", "--data-root", tmp_path)
    assert code == 2 and "64 hexadecimal digits" in err


def test_members_leaving_the_data_root_are_refused(tmp_path):
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tf:
        for name in ("data/ok.txt", "data/../../escaped.txt"):
            info = tarfile.TarInfo(name)
            info.size = 2
            tf.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(DataError, match="leaves the data root"):
        unpack(evil, tmp_path / "root", "data/", progress=False)
    assert not (tmp_path / "escaped.txt").exists()
    with pytest.raises(DataError, match="found none"):
        unpack(evil, tmp_path / "root", "nothing/", progress=False)


def test_verify_features_records_checksums_and_checks_sizes(run_cli, tmp_path, small_demo):
    import shutil

    from tfvaegan.extract import read_image_list, write_feature_file

    folder = tmp_path / "data" / "demo"
    folder.mkdir(parents=True)
    shutil.copy(small_demo / "att_splits.mat", folder)
    entries, labels = read_image_list(small_demo / "image_list.txt")
    write_feature_file(folder / "res101.mat", np.random.default_rng(0).random((len(entries), 2048), np.float32),
                       labels, entries)
    config = tmp_path / "demo.yaml"
    config.write_text(f"dataset: demo\nresSize: 2048\nnclass_all: {N_CLASSES}\n")
    out = tmp_path / "record" / "data.json"
    code, err = run_cli("verify-features", "--data-root", tmp_path / "data", "--config", config, "--out", out)
    assert code == 0, err
    record = json.loads(out.read_text())
    (entry,) = record["datasets"]
    assert entry["classes"] == N_CLASSES and entry["feature_dim"] == 2048 and entry["images"] == len(entries)
    assert entry["files"][str(folder / "res101.mat")] == hashlib.sha256((folder / "res101.mat").read_bytes()).hexdigest()
    assert entry["split_sizes"]["test_unseen"] == 12 * 5

    config.write_text(f"dataset: demo\nnclass_all: {N_CLASSES + 2}\n")  # disagrees with the data
    code, err = run_cli("verify-features", "--data-root", tmp_path / "data", "--config", config,
                        "--out", tmp_path / "other.json")
    assert code == 2 and "nclass_all" in err and f"expected {N_CLASSES}" in err
    assert not (tmp_path / "other.json").exists()

    code, err = run_cli("verify-features", "--data-root", tmp_path / "nowhere", "--config", config,
                        "--out", tmp_path / "other.json")
    assert code == 2 and "res101.mat" in err and "not found" in err
