"""Download (resumable, sha256-verified, safe unpacking) and verify-features."""
from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zipfile

import numpy as np
import pytest

from tfvaegan.errors import DataError
from tfvaegan.features.demo import N_CLASSES
from tfvaegan.features.download import fetch, unpack

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

    from tfvaegan.features.extract import read_image_list, write_feature_file

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


class RangeServer:
    """A local HTTP server for `data`, honouring Range like a real one (206, or 416 from the end);
    /stall sends half the file and then goes silent."""

    def __init__(self, data: bytes):
        import http.server
        import threading

        self.data, self.release, self.requests = data, threading.Event(), []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                outer.requests.append(rng)
                start = int(rng[len("bytes="):-1]) if rng else 0
                if start >= len(outer.data) and rng:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(outer.data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206 if rng else 200)
                body = outer.data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.path.startswith("/stall"):
                    self.wfile.write(body[:len(body) // 2])
                    self.wfile.flush()
                    outer.release.wait(10)
                else:
                    self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server(archive):
    srv = RangeServer(archive[0].read_bytes())
    yield srv
    srv.close()


@pytest.mark.parametrize("extra", [b"", b"junk"], ids=["complete", "too-long"])
def test_a_complete_or_too_long_partial_file_does_not_block_the_download(server, tmp_path, archive, extra,
                                                                         capsys):
    path, sha = archive
    original = path.read_bytes()
    for url in (server.url + "/xlsa17.zip", path.as_uri()):
        dest = tmp_path / url.split(":")[0] / "xlsa17.zip"
        dest.parent.mkdir()
        (dest.parent / "xlsa17.zip.part").write_bytes(original + extra)
        fetch(url, dest, sha, progress=True)
        assert dest.read_bytes() == original
        assert ("starting again from 0" in capsys.readouterr().err) == bool(extra)
    if not extra:  # a complete part is verified, not fetched again
        assert server.requests == [f"bytes={len(original)}-"]


def test_a_stalled_download_keeps_the_partial_file_and_resumes(run_cli, server, tmp_path, archive, monkeypatch):
    from tfvaegan.features import download

    path, sha = archive
    original = path.read_bytes()
    half = len(original) // 2

    class Stalls(io.BytesIO):  # what a socket does when the server goes silent: a timeout
        def read1(self, size=-1):
            if self.tell() >= half:
                raise TimeoutError("timed out")
            return super().read1(min(size, half - self.tell()))

    root = tmp_path / "data"
    args = ["--sha256", sha, "--data-root", root, "--member-prefix", "xlsa17/data"]
    with monkeypatch.context() as patch:
        patch.setattr(download, "_open_from", lambda url, offset, timeout: (Stalls(original), len(original), 0))
        code, err = run_cli("download", "--url", server.url + "/xlsa17.zip", "--timeout", "0.5", *args)
    last = err.strip().splitlines()[-1]
    assert code == 2 and last.startswith("error: ") and "timed out" in last and "rerun to resume" in last
    assert "Traceback" not in err
    part = root / ".downloads" / "xlsa17.zip.part"
    assert part.read_bytes() == original[:half]
    code, err = run_cli("download", "--url", server.url + "/xlsa17.zip", *args)  # the real server resumes it
    assert code == 0 and "resuming at" in err, err
    assert server.requests[-1] == f"bytes={half}-"


def test_a_real_stall_times_out(run_cli, server, tmp_path, archive):
    """Through a real socket: the server sends half the archive and goes silent; the timeout ends the
    download with the partial file kept (its size depends on what arrived in time)."""
    path, sha = archive
    root = tmp_path / "data"
    code, err = run_cli("download", "--url", server.url + "/stall/xlsa17.zip", "--timeout", "1", "--sha256", sha,
                        "--data-root", root, "--member-prefix", "xlsa17/data")
    assert code == 2 and "timed out" in err and "rerun to resume" in err
    part = root / ".downloads" / "xlsa17.zip.part"
    assert part.is_file() and part.stat().st_size <= len(path.read_bytes()) // 2


@pytest.mark.parametrize("error", [ConnectionResetError(104, "Connection reset by peer"),
                                   __import__("urllib.error").error.URLError("unreachable")])
def test_a_broken_connection_mid_download_asks_for_a_rerun(monkeypatch, tmp_path, error):
    from tfvaegan.errors import UserError
    from tfvaegan.features import download

    class Broken(io.BytesIO):
        def read1(self, size=-1):
            if self.tell():
                raise error
            return super().read1(3)

    monkeypatch.setattr(download, "_open_from", lambda url, offset, timeout: (Broken(b"abcdef"), 6, 0))
    with pytest.raises(UserError, match="rerun to resume"):
        fetch("http://example.org/x.zip", tmp_path / "x.zip", progress=False)
    assert (tmp_path / "x.zip.part").read_bytes() == b"abc"


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, content in members:
            zf.writestr(name, content)
    return path


def _bad_crc(path):
    _zip(path, [("data/a.txt", b"A" * 1000), ("data/b.txt", b"B" * 1000)])
    path.write_bytes(path.read_bytes().replace(b"B" * 1000, b"C" + b"B" * 999))
    return path


def _truncated_tgz(path):
    with tarfile.open(path, "w:gz") as tf:
        for name, content in (("data/a.txt", b"hello"), ("data/b.bin", np.random.default_rng(0).bytes(200_000))):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tf.addfile(info, io.BytesIO(content))
    path.write_bytes(path.read_bytes()[:150_000])
    return path


@pytest.mark.parametrize("make, message", [
    (lambda p: _zip(p / "evil.zip", [("data/ok.txt", b"ok"), ("data/../../evil.txt", b"evil")]),
     "leaves the data root"),
    (lambda p: _bad_crc(p / "crc.zip"), "truncated or corrupt"),
    (lambda p: _truncated_tgz(p / "cut.tar.gz"), "truncated or corrupt"),
    (lambda p: _zip(p / "collide.zip", [("data/a", b"file"), ("data/a/b", b"inside")]), "to be a folder"),
], ids=["escape", "bad-crc", "truncated-tgz", "file-and-folder"])
def test_a_failing_archive_leaves_nothing_unpacked(run_cli, tmp_path, make, message):
    source = make(tmp_path)
    root = tmp_path / "data"
    code, err = run_cli("download", "--url", source.as_uri(), "--data-root", root, "--member-prefix", "data/",
                        "--cache-dir", tmp_path / "cache")
    last = err.strip().splitlines()[-1]
    assert code == 2 and last.startswith("error: ") and message in last and "Traceback" not in err
    assert not root.exists() or not list(root.rglob("*"))


def test_a_truncated_archive_is_reported_and_downloaded_again(run_cli, tmp_path, archive):
    path, _ = archive
    original = path.read_bytes()
    path.write_bytes(original[:len(original) // 2])
    root = tmp_path / "data"
    args = ["--url", path.as_uri(), "--data-root", root, "--member-prefix", "xlsa17/data/"]
    code, err = run_cli("download", *args)
    assert code == 2 and "truncated or corrupt" in err and "rerun to download it again" in err
    assert not (root / ".downloads" / "xlsa17.zip").exists()
    path.write_bytes(original)  # the source is whole again: a rerun must fetch it, not reuse the bad copy
    code, err = run_cli("download", *args)
    assert code == 0 and "already present" not in err, err
    assert (root / "CUB" / "res101.mat").read_bytes() == FILES["xlsa17/data/CUB/res101.mat"]


def test_the_member_prefix_is_a_folder_with_or_without_its_slash(tmp_path, archive):
    for prefix in ("xlsa17/data", "xlsa17/data/", "/xlsa17/data/"):
        root = tmp_path / prefix.replace("/", "_")
        unpack(archive[0], root, prefix, ("SUN",), progress=False)
        assert [p.relative_to(root).as_posix() for p in root.rglob("*")] == ["SUN", "SUN/att_splits.mat"]
