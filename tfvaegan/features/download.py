"""Getting the data: a resumable, checksum-verified download of a public archive into the data root.

`download` keeps the partial file (`<cache>/<name>.part`) when interrupted and continues it
with an HTTP Range request (or a seek, for file:// URLs) on the next call. The archive is
accepted only when its sha256 matches the configured one; with no checksum configured it is
accepted with a warning that prints the checksum found, so that it can be pinned.
"""
from __future__ import annotations

import gzip
import http.client
import lzma
import os
import re
import shutil
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from tfvaegan.errors import DataError, UserError
from tfvaegan.fileio import sha256_of, staging_folder

CHUNK = 1 << 20


def _open_from(url: str, offset: int, timeout: float):
    """(stream, total size or None, start) for `url` from byte `offset`: `start` is `offset` when
    resuming, 0 when starting over; `stream` is None when the first `offset` bytes are the whole file."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        path = Path(urllib.request.url2pathname(parsed.path))
        if not path.is_file():
            raise FileNotFoundError(f"{url}: file not found")
        size = path.stat().st_size
        start = offset if offset <= size else 0  # a part longer than the file cannot continue it
        if start and start == size:
            return None, size, start
        handle = open(path, "rb")
        handle.seek(start)
        return handle, size, start
    if parsed.scheme not in ("http", "https"):
        raise UserError(f"--url {url!r}: expected an http, https or file URL")
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code != 416 or not offset:
            raise
        # The partial file reaches the end of the remote one: complete if the sizes agree,
        # otherwise (longer, or size unknown) it cannot be resumed, so start over.
        total = re.fullmatch(r"bytes \*/(\d+)", exc.headers.get("Content-Range", "").strip())
        if total and int(total.group(1)) == offset:
            return None, offset, offset
        stream, size, _ = _open_from(url, 0, timeout)
        return stream, size, 0
    start = offset if offset and response.status == 206 else 0  # a 200 ignored the Range
    length = response.headers.get("Content-Length")
    return response, (int(length) + start) if length else None, start


def fetch(url: str, dest: str | Path, sha256: str | None = None, timeout: float = 60.0,
          progress: bool = True) -> Path:
    """Download `url` to `dest`, resuming `<dest>.part`; verify it; return `dest`.

    An existing `dest` whose checksum matches is reused. A checksum mismatch deletes the
    download (it cannot be resumed into something valid) and raises. A partial file that is
    longer than the remote file is discarded and the download starts over.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file() and (sha256 is None or sha256_of(dest) == sha256):
        _say(progress, f"download: {dest} already present")
        return dest
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.is_file() else 0
    retry = f"rerun to resume, or fetch the file yourself and put it at {dest}"
    try:
        stream, total, start = _open_from(url, offset, timeout)
    except FileNotFoundError:
        raise
    except (OSError, http.client.HTTPException) as exc:
        raise UserError(f"download {url}: {exc}; {retry}") from None
    if offset and start == 0:
        _say(progress, f"download: {url} -> {dest}: the partial file ({offset} bytes) cannot be continued "
                       f"(remote file: {total if total is not None else 'unknown'} bytes); starting again from 0")
    elif offset:
        _say(progress, f"download: {url} -> {dest} " + (f"(resuming at {offset} bytes)" if stream else
                                                          f"({offset} bytes already downloaded)"))
    else:
        _say(progress, f"download: {url} -> {dest}")
    done, next_report = start, 0.0
    if stream is not None:
        try:
            with stream, open(part, "ab" if start else "wb") as out:
                # read1: whatever has arrived is written, so a stall loses nothing already received
                for block in iter(lambda: stream.read1(CHUNK), b""):
                    out.write(block)
                    done += len(block)
                    if total and done / total >= next_report:
                        _say(progress, f"download: {done / 1e6:.1f}/{total / 1e6:.1f} MB ({100 * done // total}%)")
                        next_report = done / total + 0.05
        except (OSError, http.client.HTTPException) as exc:  # timeouts, resets: the part is kept
            raise UserError(f"download {url}: {str(exc) or type(exc).__name__} after {done} bytes; {retry}") from None
    if total is not None and done != total:
        raise UserError(f"download {url}: expected {total} bytes, found {done}; {retry}")
    found = sha256_of(part)
    if sha256 is None:
        print(f"warning: download {url}: no sha256 configured, not verified; found sha256 {found} "
              f"(set download.sha256 in config/config.yaml to pin it)", file=sys.stderr)
    elif found != sha256.lower():
        part.unlink()
        raise UserError(f"download {url}: sha256 expected {sha256.lower()}, found {found}; "
                        f"the partial download was deleted, rerun to fetch it again")
    os.replace(part, dest)
    return dest


def _say(enabled: bool, message: str) -> None:
    if enabled:
        print(message, file=sys.stderr, flush=True)


def _target(archive: Path, member: str, prefix: str, only: tuple[str, ...]) -> PurePosixPath | None:
    """Where an archive member goes, relative to the data root: None when it is outside
    `prefix`/`only`; refuses escapes."""
    name = member.replace("\\", "/")
    if not name.startswith(prefix) or name.endswith("/"):
        return None
    relative = PurePosixPath(name[len(prefix):])
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise DataError(f"{archive}: member {member!r}: expected a path inside the archive, found one that "
                        f"leaves the data root")
    if only and relative.parts[0] not in only:
        return None
    return relative


# What reading a damaged (truncated, bad CRC) zip or tar(.gz/.xz) raises.
CORRUPT = (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError)
ARCHIVE_MAGIC = (b"PK", b"\x1f\x8b", b"BZh", b"\xfd7zXZ")


def unpack(archive: str | Path, data_root: str | Path, member_prefix: str = "",
           only: tuple[str, ...] = (), progress: bool = True, delete_corrupt: bool = False) -> list[Path]:
    """Extract the regular files under `member_prefix` (optionally only the folders `only`) into
    `data_root`, all or nothing: every member name is checked first, the files are extracted into
    a staging folder inside `data_root` and moved into place only once all of them were read
    intact. A truncated or corrupt archive is deleted when `delete_corrupt` (a rerun then fetches
    it again instead of reusing it)."""
    archive, data_root = Path(archive), Path(data_root)
    prefix = member_prefix.replace("\\", "/").strip("/")
    prefix = prefix + "/" if prefix else ""  # the prefix names a folder, with or without its slash

    def corrupt(detail: str) -> DataError:
        if delete_corrupt:
            archive.unlink(missing_ok=True)
            detail += "; it was deleted, rerun to download it again"
        return DataError(f"{archive}: expected a complete .zip or .tar(.gz) archive, found {detail}")

    handle = None
    try:
        if zipfile.is_zipfile(archive):
            handle = zipfile.ZipFile(archive)
            members = [(i.filename, i) for i in handle.infolist() if not i.is_dir()]
            read = handle.open
        elif tarfile.is_tarfile(archive):
            handle = tarfile.open(archive)
            # links and devices are never extracted; listing reads the whole archive, so a
            # truncated one fails here, before anything is written
            members = [(i.name, i) for i in handle.getmembers() if i.isfile()]
            read = handle.extractfile
        else:
            with open(archive, "rb") as head:
                damaged = head.read(6).startswith(ARCHIVE_MAGIC)
            raise corrupt("a truncated or corrupt one" if damaged else "something else")
    except CORRUPT as exc:
        if handle is not None:
            handle.close()
        raise corrupt(f"a truncated or corrupt one ({exc})") from None
    with handle:
        targets = [(rel, info) for name, info in members if (rel := _target(archive, name, prefix, only)) is not None]
        if not targets:
            raise DataError(f"{archive}: expected files under {prefix!r}{f' in {list(only)}' if only else ''}, "
                            f"found none")
        files = {rel for rel, _ in targets}
        for rel, _ in targets:
            for folder in rel.parents:
                if folder in files or (data_root / folder).is_file():
                    where = "in the archive" if folder in files else f"in {data_root}"
                    raise DataError(f"{archive}: member {str(rel)!r}: expected {str(folder)!r} to be a folder, "
                                    f"found a file of that name {where}")
            if (data_root / rel).is_dir():
                raise DataError(f"{archive}: member {str(rel)!r}: expected to write a file, found a folder "
                                f"{data_root / rel}")
        data_root.mkdir(parents=True, exist_ok=True)
        try:
            with staging_folder(data_root, ".unpack-") as staging:
                for rel, info in targets:
                    staged = staging.joinpath(*rel.parts)
                    staged.parent.mkdir(parents=True, exist_ok=True)
                    with read(info) as source, open(staged, "wb") as out:
                        shutil.copyfileobj(source, out, CHUNK)
                written = []
                for rel in sorted(files):
                    target = data_root.joinpath(*rel.parts)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(staging.joinpath(*rel.parts), target)
                    written.append(target)
                    _say(progress, f"unpack: {target}")
        except CORRUPT as exc:
            raise corrupt(f"a truncated or corrupt one ({exc})") from None
    return written


def download_archive(url: str, data_root: str | Path, sha256: str = "", member_prefix: str = "",
                     only: tuple[str, ...] = (), cache_dir: str | Path | None = None, timeout: float = 60.0) -> list[Path]:
    """`download`: fetch the archive into the cache folder (resuming), verify it, unpack into the data root."""
    sha = (sha256 or "").strip().lower() or None
    if sha is not None and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)):
        raise UserError(f"--sha256: expected 64 hexadecimal digits, found {sha256!r}")
    data_root = Path(data_root)
    cache = Path(cache_dir) if cache_dir else data_root / ".downloads"
    name = Path(urllib.parse.urlparse(url).path).name or "archive"
    archive = fetch(url, cache / name, sha, timeout=timeout)
    files = unpack(archive, data_root, member_prefix, tuple(only or ()), delete_corrupt=True)
    print(f"download: {len(files)} files unpacked into {data_root}", file=sys.stderr)
    return files
