"""Lambda archives: reproducible zips of code plus pinned wheels, fetched by pip from the package index."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from components import packaging
from components.packaging import BuiltArchive, PackagingError, build_function_archive

PURE_DEPENDENCY = "PyMySQL==1.1.1"


def make_function(root: Path, name: str = "fn", requirements: str | None = PURE_DEPENDENCY + "\n",
                  handler: str = "def lambda_handler(event, context):\n    return {'ok': True}\n") -> Path:
    directory = root / name
    (directory / "lib").mkdir(parents=True)
    (directory / "handler.py").write_text(handler)
    (directory / "lib" / "util.py").write_text("ANSWER = 42\n")
    # Byte-code and caches must never reach the archive or its hash.
    (directory / "__pycache__").mkdir()
    (directory / "__pycache__" / "handler.cpython-312.pyc").write_bytes(b"\x00junk")
    if requirements is not None:
        (directory / "requirements.txt").write_text(requirements)
    return directory


class PipSpy:
    """Wraps subprocess.run: records each command and runs the real one (or refuses, when offline)."""

    def __init__(self, allow: bool = True) -> None:
        self.commands: list[list[str]] = []
        self.allow = allow
        self._run = subprocess.run

    def __call__(self, command: list[str], **kwargs: Any) -> Any:
        self.commands.append(command)
        if not self.allow:
            raise AssertionError(f"unexpected subprocess: {command}")
        return self._run(command, **kwargs)


@pytest.fixture
def pip_spy(monkeypatch: pytest.MonkeyPatch) -> Callable[[bool], PipSpy]:
    def install(allow: bool = True) -> PipSpy:
        spy = PipSpy(allow)
        monkeypatch.setattr(packaging.subprocess, "run", spy)
        return spy
    return install


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, BuiltArchive]:
    root = tmp_path_factory.mktemp("functions")
    build_root = tmp_path_factory.mktemp("build")
    source = make_function(root)
    return source, build_root, build_function_archive(source, build_root)


def test_archive_holds_code_and_dependency_without_variant_files(built: tuple[Path, Path, BuiltArchive]) -> None:
    _, _, archive = built
    names = archive.names()
    assert names == sorted(names)
    assert {"handler.py", "lib/util.py", "pymysql/__init__.py", "pymysql/connections.py",
            "PyMySQL-1.1.1.dist-info/METADATA", "PyMySQL-1.1.1.dist-info/WHEEL"} <= set(names)
    assert "requirements.txt" not in names
    for name in names:
        assert "__pycache__" not in name and not name.endswith((".pyc", ".pyo")), name
        assert name.rsplit("/", 1)[-1] not in ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json"), name
    assert {n.split("/")[0] for n in names} == {"handler.py", "lib", "pymysql", "PyMySQL-1.1.1.dist-info"}


def test_entries_have_fixed_time_and_mode(built: tuple[Path, Path, BuiltArchive]) -> None:
    with zipfile.ZipFile(built[2].path) as archive:
        infos = archive.infolist()
        assert archive.read("lib/util.py") == b"ANSWER = 42\n"
        assert archive.testzip() is None
    assert infos
    for info in infos:
        assert info.date_time == (1980, 1, 1, 0, 0, 0)
        assert (info.external_attr >> 16) & 0o777 == 0o644
        assert info.compress_type == zipfile.ZIP_DEFLATED


def test_hash_is_base64_sha256_of_the_zip(built: tuple[Path, Path, BuiltArchive]) -> None:
    archive = built[2]
    digest = hashlib.sha256(archive.path.read_bytes()).digest()
    assert archive.sha256_b64 == base64.b64encode(digest).decode()
    assert archive.path.parent == built[1]
    assert archive.path.name.startswith("fn-") and archive.path.suffix == ".zip"


def test_same_source_reuses_the_cache_without_pip(built: tuple[Path, Path, BuiltArchive],
                                                  pip_spy: Callable[[bool], PipSpy]) -> None:
    source, build_root, first = built
    spy = pip_spy(False)
    again = build_function_archive(source, build_root)
    assert again == first
    assert spy.commands == []


def test_same_source_gives_the_same_bytes_after_the_cache_is_gone(
    built: tuple[Path, Path, BuiltArchive], tmp_path: Path, pip_spy: Callable[[bool], PipSpy]
) -> None:
    source, build_root, first = built
    first_bytes = first.path.read_bytes()
    # A fresh cache in another place, and a copy of the source somewhere else: same archive.
    copy = make_function(tmp_path / "elsewhere")
    spy = pip_spy(True)
    rebuilt = build_function_archive(copy, tmp_path / "fresh-cache")
    assert rebuilt.sha256_b64 == first.sha256_b64
    assert rebuilt.path.read_bytes() == first_bytes
    # The only process started is pip, fetching pinned wheels only, for the Lambda target.
    [command] = spy.commands
    assert command[1:4] == ["-m", "pip", "install"]
    for flag in ("--no-deps", "--only-binary=:all:", "--no-compile"):
        assert flag in command
    assert command[command.index("--platform") + 1] == "manylinux2014_x86_64"
    assert command[command.index("--python-version") + 1] == "3.12"
    assert command[command.index("--implementation") + 1] == "cp"
    assert Path(command[command.index("-r") + 1]) == (copy / "requirements.txt").resolve()
    packaging.clean_cache(tmp_path / "fresh-cache")
    assert not (tmp_path / "fresh-cache").exists()
    spy.commands.clear()
    assert build_function_archive(copy, tmp_path / "fresh-cache").sha256_b64 == first.sha256_b64
    assert len(spy.commands) == 1


def test_changed_code_gives_another_archive(built: tuple[Path, Path, BuiltArchive], tmp_path: Path) -> None:
    _, build_root, first = built
    changed = make_function(tmp_path, requirements=None, handler="def lambda_handler(e, c):\n    return 2\n")
    other = build_function_archive(changed, build_root)
    assert other.path != first.path and other.sha256_b64 != first.sha256_b64


def test_function_without_requirements_needs_no_pip(tmp_path: Path, pip_spy: Callable[[bool], PipSpy]) -> None:
    spy = pip_spy(False)
    archive = build_function_archive(make_function(tmp_path, requirements=None), tmp_path / "build")
    assert archive.names() == ["handler.py", "lib/util.py"]
    assert spy.commands == []


def test_comments_and_blank_lines_are_fine(tmp_path: Path, pip_spy: Callable[[bool], PipSpy]) -> None:
    spy = pip_spy(False)
    source = make_function(tmp_path, requirements="# nothing to install\n\n   \n")
    assert build_function_archive(source, tmp_path / "build").names() == ["handler.py", "lib/util.py"]
    assert spy.commands == []


def test_a_dependency_missing_on_the_index_is_a_clear_error(tmp_path: Path) -> None:
    source = make_function(tmp_path, name="orders",
                           requirements="db-recipes-no-such-package-zq==1.0.0\n")
    with pytest.raises(PackagingError) as caught:
        build_function_archive(source, tmp_path / "build")
    message = str(caught.value)
    assert "function 'orders'" in message
    assert "db-recipes-no-such-package-zq==1.0.0" in message
    assert "not available as a wheel" in message and "index" in message
    assert not list((tmp_path / "build").glob("*.zip"))


def test_an_unlisted_transitive_dependency_is_a_clear_error(tmp_path: Path) -> None:
    # pg8000 needs scramp (and python-dateutil); --no-deps would leave them out silently.
    source = make_function(tmp_path, name="pg", requirements="pg8000==1.31.6\n")
    with pytest.raises(PackagingError, match=r"function 'pg': dependency (scramp|python-dateutil) "
                                             r"\(required by pg8000\) is missing from requirements.txt"):
        build_function_archive(source, tmp_path / "build")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("PyMySQL>=1.1", r"line 2 \('PyMySQL>=1.1'\): pin an exact version, e.g. 'PyMySQL==1.2.3'"),
        ("PyMySQL", r"pin an exact version"),
        ("--index-url https://example.invalid/simple", r"pip options are not supported"),
        ("PyMySQL==1.1.1 ===", r"not a requirement"),
    ],
)
def test_unpinned_or_odd_requirements_are_refused(tmp_path: Path, line: str, message: str,
                                                  pip_spy: Callable[[bool], PipSpy]) -> None:
    spy = pip_spy(False)
    source = make_function(tmp_path, name="loose", requirements=f"# drivers\n{line}\n")
    with pytest.raises(PackagingError, match=r"function 'loose': requirements.txt .*" + message):
        build_function_archive(source, tmp_path / "build")
    assert spy.commands == []


def test_missing_handler_or_folder(tmp_path: Path) -> None:
    with pytest.raises(PackagingError, match=r"function 'ghost': source folder .* does not exist"):
        build_function_archive(tmp_path / "ghost", tmp_path / "build")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PackagingError, match=r"function 'empty': handler.py is missing"):
        build_function_archive(tmp_path / "empty", tmp_path / "build")


def test_packaging_error_is_a_clean_pulumi_failure() -> None:
    import pulumi

    assert issubclass(PackagingError, pulumi.RunError)


def test_cache_lives_in_the_project_not_the_working_directory(monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    project = Path(packaging.__file__).resolve().parent.parent
    monkeypatch.chdir(tmp_path)
    assert packaging.DEFAULT_BUILD_ROOT == project / ".dbenv" / "build"
    assert packaging.function_dir("rotation") == project / "functions" / "rotation"


@pytest.mark.parametrize("name", ["proxy_client", "rotation"])
def test_project_functions_build(name: str, tmp_path: Path) -> None:
    source = packaging.function_dir(name)
    if not (source / "handler.py").is_file():
        pytest.skip(f"functions/{name} is not in this tree")
    archive = build_function_archive(source)
    names = set(archive.names())
    assert "handler.py" in names and "pymysql/__init__.py" in names
    assert not any(n.endswith("/RECORD") or "__pycache__" in n for n in names)
    assert archive == build_function_archive(source)
