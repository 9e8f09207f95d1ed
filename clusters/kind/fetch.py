"""Download a pinned file once, verify its sha256, and keep it in a cache.

Every manifest or archive the kind engine installs comes through :func:`fetch`, so nothing is
applied that was not checked against a pinned value. The expected sha256 is the pin's own
(``pins.SHA256``) or, when upstream publishes a checksum file, the one in that file; a file
with neither is refused, naming the script that records one. Files are written to a temporary
name beside their final one and renamed only once they verify, so a crash or a concurrent
fetch never leaves a half-written file under the real name. A cached file is verified again on
every use: against the pin, or against the checksum recorded beside it (``<file>.sha256``) when
it was first downloaded, so a cached file can be reused offline.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from clusters.errors import ClusterError
from clusters.kind.pins import SHA256_RE, Pin

#: Seconds to wait for a connection or for the next bytes of an answer.
TIMEOUT = 60.0
#: A checksum file is a few lines; anything bigger is not one.
_MAX_CHECKSUM_BYTES = 1 << 20
_CHUNK = 1 << 16
_USER_AGENT = "kube-netlab (+https://github.com/kube-netlab)"
PIN_SCRIPT = "scripts/pin_checksums.py"


class FetchError(ClusterError):
    """A pinned file could not be downloaded or did not match its checksum."""


def default_cache() -> Path:
    """``$XDG_CACHE_HOME/kube-netlab``, else ``~/.cache/kube-netlab``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kube-netlab"


def cache_path(p: Pin, cache: Path | None = None) -> Path:
    """Where ``p`` is kept: ``<cache>/<name>/<version>/<url hash>/<file name>``.

    The URL's hash keeps two platforms' builds apart when they share a file name
    (``kubectl``) and a cache directory (a home directory on a shared disk).
    """
    tag = hashlib.sha256(p.url.encode()).hexdigest()[:12]
    return (cache or default_cache()) / p.name / p.version / tag / p.filename


def fetch(p: Pin, cache: Path | None = None, *, timeout: float = TIMEOUT) -> Path:
    """The verified local copy of ``p``, downloaded into the cache on first use."""
    if not p.is_file:
        raise FetchError(f"pin {p.name!r} is a {p.kind}, not a file to download")
    if not p.sha256 and not p.checksum_url:
        raise FetchError(
            f"{p.name} {p.version} ({p.url}) has no pinned sha256 and upstream publishes no "
            f"checksum file, so it cannot be verified: run `python {PIN_SCRIPT}` on a machine "
            "with network to record its sha256 in clusters/kind/pins.py")
    dest = cache_path(p, cache)
    sidecar = dest.with_name(dest.name + ".sha256")
    if dest.exists():
        expected = p.sha256 or _read_sidecar(sidecar) or published_sha256(p, timeout=timeout)
        got = file_sha256(dest)
        if got != expected:
            _unlink(dest, sidecar)
            raise FetchError(
                f"cached copy of {p.url} ({dest}) does not match its checksum: expected {expected}, "
                f"got {got}; it was deleted, so the next fetch downloads it again")
        return dest
    expected = p.sha256 or published_sha256(p, timeout=timeout)
    download(p.url, dest, expected, timeout=timeout)
    if not p.sha256:
        _write_atomic(sidecar, (expected + "\n").encode())
    return dest


def published_sha256(p: Pin, *, timeout: float = TIMEOUT) -> str:
    """The sha256 for ``p`` read from the checksum file upstream publishes beside it."""
    if not p.checksum_url:
        raise FetchError(f"{p.name} {p.version} has no checksum file to read")
    data = _get_small(p.checksum_url, timeout)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise FetchError(f"checksum file {p.checksum_url} is not text") from err
    try:
        return parse_checksum(text, p.filename)
    except ValueError as err:
        raise FetchError(f"checksum file {p.checksum_url}: {err}") from err


def parse_checksum(text: str, filename: str) -> str:
    """The sha256 for ``filename`` in a checksum file's ``text``.

    Accepts the two formats release pages use: ``HEX  filename`` lines (``sha256sum`` output,
    ``*filename`` in binary mode, possibly several files) and a bare ``HEX`` (kubectl's).
    ValueError says what was wrong.
    """
    bare: list[str] = []
    named: dict[str, str] = {}
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        digest = fields[0].lower()
        if not SHA256_RE.match(digest):
            raise ValueError(f"line {line.strip()!r} does not start with a sha256 (64 hex digits)")
        if len(fields) == 1:
            bare.append(digest)
        else:
            named[fields[-1].lstrip("*").rsplit("/", 1)[-1]] = digest
    if filename in named:
        return named[filename]
    if len(bare) == 1 and not named:
        return bare[0]
    if named:
        raise ValueError(f"no entry for {filename} (it lists {', '.join(sorted(named))})")
    raise ValueError("no checksum in it" if not bare else "several bare checksums and no file names")


def download(url: str, dest: Path, expected: str, *, timeout: float = TIMEOUT) -> str:
    """Download ``url`` to ``dest`` if its sha256 is ``expected`` (empty: accept any); the sha256.

    The bytes go to a temporary file in ``dest``'s directory, renamed over ``dest`` only after
    the check, so ``dest`` is either absent or complete and verified.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            got = _stream(url, out, timeout)
        if expected and got != expected:
            raise FetchError(f"sha256 mismatch for {url}: expected {expected}, got {got}; "
                             "the download was deleted")
        os.replace(tmp, dest)
        return got
    finally:
        tmp.unlink(missing_ok=True)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---- internals ----------------------------------------------------------------------------------


def _open(url: str, timeout: float) -> BinaryIO:
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        response: BinaryIO = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        raise FetchError(f"download of {url} failed: HTTP {err.code} {err.reason}") from err
    except urllib.error.URLError as err:
        raise FetchError(f"download of {url} failed: {_reason(err.reason, timeout)}") from err
    except (TimeoutError, OSError) as err:
        raise FetchError(f"download of {url} failed: {_reason(err, timeout)}") from err
    return response


def _stream(url: str, out: BinaryIO, timeout: float) -> str:
    digest = hashlib.sha256()
    with _open(url, timeout) as response:
        for chunk in _chunks(url, response, timeout):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def _chunks(url: str, response: BinaryIO, timeout: float) -> Iterable[bytes]:
    while True:
        try:
            chunk = response.read(_CHUNK)
        except (TimeoutError, OSError) as err:
            raise FetchError(f"download of {url} broke off: {_reason(err, timeout)}") from err
        if not chunk:
            return
        yield chunk


def _get_small(url: str, timeout: float) -> bytes:
    with _open(url, timeout) as response:
        data = b"".join(_chunks_limited(url, response, timeout))
    return data


def _chunks_limited(url: str, response: BinaryIO, timeout: float) -> Iterable[bytes]:
    size = 0
    for chunk in _chunks(url, response, timeout):
        size += len(chunk)
        if size > _MAX_CHECKSUM_BYTES:
            raise FetchError(f"checksum file {url} is larger than {_MAX_CHECKSUM_BYTES} bytes")
        yield chunk


def _reason(err: object, timeout: float) -> str:
    if isinstance(err, TimeoutError):
        return f"no answer within {timeout:g}s"
    return str(err) or type(err).__name__


def _read_sidecar(path: Path) -> str:
    try:
        value = path.read_text().strip()
    except OSError:
        return ""
    return value if SHA256_RE.match(value) else ""


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp_name, path)
    finally:
        Path(tmp_name).unlink(missing_ok=True)


def _unlink(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
