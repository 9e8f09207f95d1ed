"""fetch(): download once into the cache, verify sha256, refuse what cannot be verified.

Files are served by a local http.server on 127.0.0.1; nothing leaves the machine.
"""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from modload import load_script

from clusters.errors import ClusterError
from clusters.kind.fetch import (
    FetchError,
    cache_path,
    default_cache,
    fetch,
    file_sha256,
    parse_checksum,
)
from clusters.kind.pins import Pin

BODY = b"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: demo\n"
SHA = hashlib.sha256(BODY).hexdigest()


@dataclass
class Server:
    """A tiny HTTP server: ``files`` by path, ``hang`` paths never answer, every GET is logged."""

    files: dict[str, bytes] = field(default_factory=dict)
    hang: set[str] = field(default_factory=set)
    requests: list[str] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append(self.path)
            if self.path in state.hang:
                state.release.wait(10)
                return
            body = state.files.get(self.path)
            if body is None:
                self.send_error(404, "Not Found")
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def manifest(server: Server, *, sha256: str = "", checksum: str = "") -> Pin:
    server.files["/v1.2.3/demo.yaml"] = BODY
    return Pin("demo", "v1.2.3", "manifest", server.url("/v1.2.3/demo.yaml"), sha256=sha256,
               checksum_url=server.url(checksum) if checksum else "")


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.rglob("*") if p.is_file() and p.name.endswith(".part"))


def test_a_pinned_file_is_downloaded_once_then_served_from_the_cache(server: Server, tmp_path: Path) -> None:
    p = manifest(server, sha256=SHA)
    path = fetch(p, tmp_path)
    assert path == cache_path(p, tmp_path) and path.read_bytes() == BODY
    assert fetch(p, tmp_path) == path
    assert server.requests == ["/v1.2.3/demo.yaml"]
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("text", [f"{SHA}  demo.yaml\n", f"{SHA}\n", f"{SHA.upper()} *demo.yaml\n",
                                  f"{'0' * 64}  other.yaml\n{SHA}  ./demo.yaml\n"])
def test_the_published_checksum_file_verifies_when_nothing_is_pinned(
        server: Server, tmp_path: Path, text: str) -> None:
    server.files["/v1.2.3/demo.yaml.sha256"] = text.encode()
    p = manifest(server, checksum="/v1.2.3/demo.yaml.sha256")
    path = fetch(p, tmp_path)
    assert path.read_bytes() == BODY
    assert Path(str(path) + ".sha256").read_text().strip() == SHA
    # The checksum recorded on download verifies the cached copy: no network the second time.
    assert fetch(p, tmp_path) == path
    assert server.requests == ["/v1.2.3/demo.yaml.sha256", "/v1.2.3/demo.yaml"]


def test_a_file_with_no_checksum_at_all_is_refused_without_downloading(
        server: Server, tmp_path: Path) -> None:
    with pytest.raises(FetchError, match=r"demo v1\.2\.3 .*no pinned sha256.*scripts/pin_checksums\.py"):
        fetch(manifest(server), tmp_path)
    assert server.requests == []


def test_a_download_that_does_not_match_is_deleted_and_says_both_values(
        server: Server, tmp_path: Path) -> None:
    p = manifest(server, sha256="f" * 64)
    with pytest.raises(FetchError) as err:
        fetch(p, tmp_path)
    message = str(err.value)
    assert f"sha256 mismatch for {p.url}: expected {'f' * 64}, got {SHA}" in message
    assert isinstance(err.value, ClusterError)
    assert not cache_path(p, tmp_path).exists() and leftovers(tmp_path) == []


def test_a_tampered_cached_file_is_deleted_and_reported(server: Server, tmp_path: Path) -> None:
    p = manifest(server, sha256=SHA)
    path = fetch(p, tmp_path)
    path.write_bytes(BODY + b"# injected\n")
    got = file_sha256(path)
    with pytest.raises(FetchError, match=f"cached copy of {p.url} .*expected {SHA}, got {got}"):
        fetch(p, tmp_path)
    assert not path.exists()
    assert fetch(p, tmp_path).read_bytes() == BODY  # the next fetch downloads it again


def test_a_cached_file_checked_against_its_recorded_checksum(server: Server, tmp_path: Path) -> None:
    server.files["/sum"] = f"{SHA}  demo.yaml\n".encode()
    p = manifest(server, checksum="/sum")
    path = fetch(p, tmp_path)
    path.write_bytes(b"changed")
    with pytest.raises(FetchError, match=f"expected {SHA}"):
        fetch(p, tmp_path)
    assert not path.exists() and not Path(str(path) + ".sha256").exists()


def test_http_errors_name_the_url_and_the_status(server: Server, tmp_path: Path) -> None:
    p = Pin("gone", "v1.0.0", "manifest", server.url("/missing.yaml"), sha256=SHA)
    with pytest.raises(FetchError, match=rf"download of {p.url} failed: HTTP 404 Not Found"):
        fetch(p, tmp_path)


def test_a_checksum_file_without_our_file_is_an_error(server: Server, tmp_path: Path) -> None:
    server.files["/sum"] = f"{SHA}  else.yaml\n".encode()
    with pytest.raises(FetchError,
                       match=r"checksum file .*/sum: no entry for demo.yaml \(it lists else.yaml\)"):
        fetch(manifest(server, checksum="/sum"), tmp_path)


def test_an_unreachable_server_names_the_url_and_reason(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x.yaml"
    with pytest.raises(FetchError, match=rf"download of {url} failed: .*(refused|Errno)"):
        fetch(Pin("x", "v1.0.0", "manifest", url, sha256=SHA), tmp_path)


def test_a_server_that_never_answers_times_out(server: Server, tmp_path: Path) -> None:
    p = manifest(server, sha256=SHA)
    server.hang.add("/v1.2.3/demo.yaml")
    with pytest.raises(FetchError, match=rf"{p.url} .*no answer within 0\.2s"):
        fetch(p, tmp_path, timeout=0.2)
    assert leftovers(tmp_path) == []


def test_only_files_are_fetched(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="is a chart, not a file"):
        fetch(Pin("c", "1.0.0", "chart", "oci://e.test/c"), tmp_path)


def test_the_cache_follows_xdg_and_keeps_platforms_apart(monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache() == tmp_path / "xdg" / "kube-netlab"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache() == tmp_path / "home" / ".cache" / "kube-netlab"
    linux = Pin("kubectl", "v1.35.8", "binary", "https://dl.test/v1.35.8/bin/linux/amd64/kubectl")
    mac = Pin("kubectl", "v1.35.8", "binary", "https://dl.test/v1.35.8/bin/darwin/arm64/kubectl")
    assert cache_path(linux).name == cache_path(mac).name == "kubectl"
    assert cache_path(linux) != cache_path(mac)


@pytest.mark.parametrize(("text", "message"), [
    ("", "no checksum in it"),
    ("not-a-hash  demo.yaml\n", "does not start with a sha256"),
    (f"{SHA}\n{SHA}\n", "several bare checksums"),
])
def test_unreadable_checksum_files(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_checksum(text, "demo.yaml")


# ---- scripts/pin_checksums.py measure(): real downloads from the local server --------------------


def test_measure_downloads_and_cross_checks_the_published_checksum(server: Server) -> None:
    script = load_script("pin_checksums")
    server.files["/sum"] = f"{SHA}  demo.yaml\n".encode()
    plain = manifest(server)
    checked = Pin("demo", "v1.2.3", "manifest", plain.url, checksum_url=server.url("/sum"))
    assert script.measure({plain.url: plain}) == {plain.url: SHA}
    assert script.measure({checked.url: checked}) == {checked.url: SHA}
    server.files["/sum"] = f"{'e' * 64}  demo.yaml\n".encode()
    with pytest.raises(FetchError, match=f"downloaded sha256 {SHA} but .*/sum says {'e' * 64}"):
        script.measure({checked.url: checked})
