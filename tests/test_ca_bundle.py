"""The rotation function ships the RDS CA bundle: downloaded once, or a local file; reproducible."""

from __future__ import annotations

import http.server
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from components import packaging
from tests.conftest import make_plan

# A real PEM bundle of this machine stands in for the RDS one.
SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
pytestmark = pytest.mark.skipif(not SYSTEM_BUNDLE.is_file(), reason="no system CA bundle to serve")


@pytest.fixture
def server() -> Iterator[tuple[str, list[str]]]:
    hits: list[str] = []
    body = SYSTEM_BUNDLE.read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}/global/global-bundle.pem", hits
    finally:
        httpd.shutdown()


def test_bundle_is_downloaded_once_into_the_build_cache(server: tuple[str, list[str]], tmp_path: Path) -> None:
    url, hits = server
    first = packaging.rds_ca_bundle(None, build_root=tmp_path, url=url)
    second = packaging.rds_ca_bundle(None, build_root=tmp_path, url=url)
    assert first.path == second.path == tmp_path / "ca" / packaging.CA_BUNDLE_NAME
    assert first.path.read_bytes() == SYSTEM_BUNDLE.read_bytes()
    assert hits == ["/global/global-bundle.pem"]


def test_a_local_bundle_wins_and_no_download_happens(server: tuple[str, list[str]], tmp_path: Path) -> None:
    url, hits = server
    bundle = packaging.rds_ca_bundle(str(SYSTEM_BUNDLE), build_root=tmp_path, url=url)
    assert bundle.path == SYSTEM_BUNDLE and not hits


def test_a_bad_local_bundle_is_an_error(tmp_path: Path) -> None:
    not_pem = tmp_path / "bundle.pem"
    not_pem.write_text("hello")
    with pytest.raises(packaging.PackagingError, match=r"ca_bundle: .*bundle\.pem is not a PEM certificate bundle"):
        packaging.rds_ca_bundle(str(not_pem), build_root=tmp_path)


def test_failed_download_is_reported_not_raised(tmp_path: Path) -> None:
    bundle = packaging.rds_ca_bundle(None, build_root=tmp_path, url="http://127.0.0.1:9/global-bundle.pem",
                                     timeout=2)
    assert bundle.path is None and "cannot download the RDS CA bundle" in (bundle.problem or "")


def test_archive_carries_the_bundle_beside_the_handler_and_is_reproducible(tmp_path: Path) -> None:
    source = packaging.function_dir("rotation")
    one = packaging.build_function_archive(source, tmp_path / "a", {packaging.CA_BUNDLE_NAME: SYSTEM_BUNDLE})
    two = packaging.build_function_archive(source, tmp_path / "b", {packaging.CA_BUNDLE_NAME: SYSTEM_BUNDLE})
    assert one.path.read_bytes() == two.path.read_bytes()
    with zipfile.ZipFile(one.path) as archive:
        # The handler trusts global-bundle.pem next to handler.py (BUNDLED_CA).
        assert archive.read(packaging.CA_BUNDLE_NAME) == SYSTEM_BUNDLE.read_bytes()
        assert "handler.py" in archive.namelist()
    other = tmp_path / "other.pem"
    other.write_bytes(SYSTEM_BUNDLE.read_bytes() + b"\n")
    three = packaging.build_function_archive(source, tmp_path / "a", {packaging.CA_BUNDLE_NAME: other})
    assert three.sha256_b64 != one.sha256_b64


def test_handler_looks_for_the_bundle_under_the_shipped_name() -> None:
    text = (packaging.function_dir("rotation") / "handler.py").read_text()
    assert f'with_name("{packaging.CA_BUNDLE_NAME}")' in text


def test_offline_plan_warns_and_builds_without_a_bundle(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(packaging, "RDS_CA_BUNDLE_URL", "http://127.0.0.1:9/global-bundle.pem")
    monkeypatch.setattr(packaging.rds_ca_bundle, "__defaults__",
                        (tmp_path, "http://127.0.0.1:9/global-bundle.pem", 2.0))
    plan = make_plan(["secret-rotation"])
    function = plan.by_name("secret-rotation-function")
    assert function.inputs["sourceCodeHash"]


def test_configured_bundle_reaches_the_deployed_archive() -> None:
    plan = make_plan(["secret-rotation"], secret_rotation={"ca_bundle": str(SYSTEM_BUNDLE)})
    expected = packaging.build_function_archive(packaging.function_dir("rotation"),
                                                extra_files={packaging.CA_BUNDLE_NAME: SYSTEM_BUNDLE})
    assert plan.by_name("secret-rotation-function").inputs["sourceCodeHash"] == expected.sha256_b64


def test_without_a_bundle_a_real_update_stops_with_the_fix() -> None:
    # Outside preview and outside the offline plan, a missing bundle is an error, not a warning.
    with pytest.raises(packaging.PackagingError, match=r"ships no RDS CA bundle .* Give a local copy"):
        packaging.missing_ca_bundle("rotation", "offline")
