"""Lambda archives: a function's code plus its pinned pure-Python dependencies, as a reproducible zip.

Components call :func:`build_function_archive` while the program runs (``pulumi up``,
``pulumi preview``, ``dbenv plan``). The only network access is pip fetching wheels
from the configured package index; nothing is compiled and no sdist is built
(``--only-binary=:all:``), so the result does not depend on the build machine.

Reproducible: the same source gives byte-identical archives, hence the same
``source_code_hash``, so Pulumi updates a function only when its code or
dependencies really changed. Entries are sorted, timestamps fixed at
1980-01-01, permissions fixed, and the files whose content varies per install
(``__pycache__``, ``*.dist-info/RECORD``, ``INSTALLER``, ``REQUESTED``,
``direct_url.json``) are left out.

Archives are cached under ``<project>/.dbenv/build/`` by a hash of the function's
files and its requirements, so repeated plans and tests reuse them without
asking the index again.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path

import pulumi
from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

PROJECT_ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS_ROOT = PROJECT_ROOT / "functions"
DEFAULT_BUILD_ROOT = PROJECT_ROOT / ".dbenv" / "build"

HANDLER_FILE = "handler.py"
REQUIREMENTS_FILE = "requirements.txt"
# What the Lambda functions run on; pip selects wheels for exactly this target.
LAMBDA_PYTHON = "3.12"
LAMBDA_RUNTIME = "python3.12"
LAMBDA_ARCHITECTURE = "x86_64"
PIP_PLATFORM = "manylinux2014_x86_64"
# Bump when the archive layout changes, so old cache entries are not reused.
ARCHIVE_FORMAT = "1"

FIXED_DATE = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o644
SKIPPED_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
SKIPPED_SUFFIXES = (".pyc", ".pyo")
# dist-info files whose content differs between two installs of the same wheel.
VARIANT_DIST_INFO = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}
_PINNED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9_,.-]+\])?==[A-Za-z0-9.!+_-]+$")


class PackagingError(pulumi.RunError):
    """A function archive cannot be built; the message names the function and what to do.

    A ``RunError`` so that ``pulumi up`` and ``preview`` print the message alone, not a traceback.
    """


@dataclass(frozen=True)
class BuiltArchive:
    """A built Lambda zip and its base64 SHA-256 (the form ``source_code_hash`` expects)."""

    path: Path
    sha256_b64: str

    def names(self) -> list[str]:
        with zipfile.ZipFile(self.path) as archive:
            return archive.namelist()


def function_dir(name: str) -> Path:
    """The source folder of the function ``name`` under the project's ``functions/``."""
    return FUNCTIONS_ROOT / name


def build_function_archive(function_dir: Path, build_root: Path = DEFAULT_BUILD_ROOT,
                           extra_files: dict[str, Path] | None = None) -> BuiltArchive:
    """Build (or reuse from ``build_root``) the zip of the function in ``function_dir``.

    ``extra_files`` (archive name -> file) go into the zip beside the code, e.g. a CA bundle;
    their content is part of the cache key, so the same inputs give the same bytes.
    """
    function_dir = Path(function_dir).resolve()
    name = function_dir.name
    sources = _source_files(function_dir)
    requirements = _read_requirements(function_dir)
    extra = {arcname: Path(path) for arcname, path in sorted((extra_files or {}).items())}
    key = _source_key(function_dir, sources, extra)
    target = Path(build_root) / f"{name}-{key[:20]}.zip"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        _build(function_dir, sources, requirements, target, extra)
    return BuiltArchive(path=target, sha256_b64=_sha256_b64(target))


# ----------------------------------------------------------------- inputs


def _source_files(function_dir: Path) -> list[Path]:
    if not function_dir.is_dir():
        raise PackagingError(f"function {function_dir.name!r}: source folder {function_dir} does not exist")
    if not (function_dir / HANDLER_FILE).is_file():
        raise PackagingError(
            f"function {function_dir.name!r}: {HANDLER_FILE} is missing in {function_dir} "
            "(the Lambda handler is handler.lambda_handler)"
        )
    return sorted(_walk(function_dir), key=lambda p: p.relative_to(function_dir).as_posix())


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS and not d.startswith("."))
        for filename in sorted(filenames):
            if filename.endswith(SKIPPED_SUFFIXES) or filename.startswith("."):
                continue
            yield Path(dirpath) / filename


def _read_requirements(function_dir: Path) -> list[Requirement]:
    """The pinned requirements (``name==version``) of a function; anything unpinned is refused."""
    path = function_dir / REQUIREMENTS_FILE
    if not path.is_file():
        return []
    requirements = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"function {function_dir.name!r}: {REQUIREMENTS_FILE} line {number} ({line!r})"
        if line.startswith("-"):
            raise PackagingError(f"{where}: pip options are not supported; list one 'name==version' per line")
        try:
            requirement = Requirement(line)
        except InvalidRequirement as err:
            raise PackagingError(f"{where}: not a requirement: {err}") from None
        # Only exact pins make the archive reproducible.
        if not _PINNED.match(line.split(";", 1)[0].strip()):
            raise PackagingError(f"{where}: pin an exact version, e.g. '{requirement.name}==1.2.3'")
        requirements.append(requirement)
    return requirements


def _source_key(function_dir: Path, sources: list[Path], extra: dict[str, Path] | None = None) -> str:
    digest = hashlib.sha256()
    for part in (ARCHIVE_FORMAT, LAMBDA_PYTHON, PIP_PLATFORM):
        digest.update(part.encode() + b"\x00")
    for path in sources:
        digest.update(path.relative_to(function_dir).as_posix().encode() + b"\x00")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    for arcname, path in (extra or {}).items():
        digest.update(b"extra\x00" + arcname.encode() + b"\x00")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


# ----------------------------------------------------------------- building


def _build(function_dir: Path, sources: list[Path], requirements: list[Requirement], target: Path,
           extra: dict[str, Path] | None = None) -> None:
    with tempfile.TemporaryDirectory(prefix=f".{function_dir.name}-", dir=target.parent) as work:
        deps = Path(work) / "deps"
        deps.mkdir()
        if requirements:
            _pip_install(function_dir, deps)
            _check_dependencies_listed(function_dir.name, deps, requirements)
        entries = _archive_entries(function_dir, sources, deps)
        for arcname, path in (extra or {}).items():
            if arcname in entries:
                raise PackagingError(f"function {function_dir.name!r}: {arcname} exists in the code or a dependency")
            entries[arcname] = path
        partial = Path(work) / "archive.zip"
        _write_zip(entries, partial)
        # Atomic: a concurrent build of the same source writes the same bytes.
        os.replace(partial, target)


def _pip_command(requirements_file: Path, deps: Path) -> list[str]:
    return [
        sys.executable, "-m", "pip", "install",
        "--target", str(deps),
        "--no-deps",  # the archive holds exactly the pinned list, checked below
        "--only-binary=:all:",  # never build an sdist: no compilers, no build-time code
        "--no-compile",
        "--platform", PIP_PLATFORM,
        "--python-version", LAMBDA_PYTHON,
        "--implementation", "cp",
        "--disable-pip-version-check",
        "--no-input",
        "-r", str(requirements_file),
    ]


def _pip_install(function_dir: Path, deps: Path) -> None:
    requirements_file = function_dir / REQUIREMENTS_FILE
    try:
        result = subprocess.run(
            _pip_command(requirements_file, deps), capture_output=True, text=True, check=False,
            env={**os.environ, "PIP_NO_INPUT": "1"},
        )
    except OSError as err:
        raise PackagingError(f"function {function_dir.name!r}: cannot run pip: {err}") from None
    if result.returncode != 0:
        raise PackagingError(_pip_failure(function_dir, result.stdout + result.stderr))


def _pip_failure(function_dir: Path, output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    missing = re.search(r"No matching distribution found for (\S+)", output)
    where = f"function {function_dir.name!r}: "
    if missing:
        return (
            f"{where}dependency {missing.group(1)} (in {REQUIREMENTS_FILE}) is not available as a wheel for "
            f"Python {LAMBDA_PYTHON} on the package index. Check the name and version on the index, "
            "choose a release that ships a wheel (sdists are not built), or check that the index is "
            "reachable (pip's index-url setting)."
        )
    errors = [line for line in lines if line.startswith("ERROR")] or lines[-3:]
    return f"{where}pip could not install {REQUIREMENTS_FILE}: {' '.join(errors) or 'no output'}"


def _check_dependencies_listed(name: str, deps: Path, requirements: list[Requirement]) -> None:
    """With ``--no-deps`` a forgotten transitive dependency would only fail at import time in AWS."""
    listed = {canonicalize_name(r.name) for r in requirements}
    environment = {**default_environment(), "python_version": LAMBDA_PYTHON, "python_full_version":
                   f"{LAMBDA_PYTHON}.0", "sys_platform": "linux", "platform_system": "Linux",
                   "platform_machine": "x86_64", "os_name": "posix", "implementation_name": "cpython",
                   "platform_python_implementation": "CPython", "extra": ""}
    for metadata in sorted(deps.glob("*.dist-info/METADATA")):
        headers = HeaderParser().parsestr(metadata.read_text(encoding="utf-8", errors="replace"))
        for line in headers.get_all("Requires-Dist") or []:
            needed = Requirement(line)
            if needed.marker is not None and not needed.marker.evaluate(environment):
                continue
            if canonicalize_name(needed.name) not in listed:
                owner = headers.get("Name", metadata.parent.name)
                raise PackagingError(
                    f"function {name!r}: dependency {needed.name} (required by {owner}) is missing from "
                    f"{REQUIREMENTS_FILE}; dependencies are installed without resolution, so add a "
                    f"pinned line such as '{needed.name}==<version>'"
                )


def _archive_entries(function_dir: Path, sources: list[Path], deps: Path) -> dict[str, Path]:
    entries: dict[str, Path] = {}
    for path in sources:
        arcname = path.relative_to(function_dir).as_posix()
        if arcname != REQUIREMENTS_FILE:
            entries[arcname] = path
    for path in _walk(deps):
        arcname = path.relative_to(deps).as_posix()
        parts = arcname.split("/")
        if parts[0].endswith(".dist-info") and parts[-1] in VARIANT_DIST_INFO:
            continue
        if parts[0] == "bin":
            continue  # console scripts have the build machine's interpreter path baked in
        if arcname in entries:
            raise PackagingError(
                f"function {function_dir.name!r}: {arcname} exists both in the function's code and in a "
                "dependency; rename the function's file"
            )
        entries[arcname] = path
    return entries


def _write_zip(entries: dict[str, Path], destination: Path) -> None:
    with zipfile.ZipFile(destination, "w") as archive:
        for arcname in sorted(entries):
            info = zipfile.ZipInfo(arcname, date_time=FIXED_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix, so the mode bits below are honoured
            info.external_attr = (0o100000 | FILE_MODE) << 16
            archive.writestr(info, entries[arcname].read_bytes(), compresslevel=9)


def _sha256_b64(path: Path) -> str:
    return base64.b64encode(hashlib.sha256(path.read_bytes()).digest()).decode("ascii")


def clean_cache(build_root: Path = DEFAULT_BUILD_ROOT) -> None:
    """Remove every cached archive (the next build asks the package index again)."""
    shutil.rmtree(build_root, ignore_errors=True)


# ----------------------------------------------------------------- RDS CA bundle

# The RDS certificate bundle for all AWS Regions (RDS User Guide, "Using SSL/TLS to encrypt a
# connection to a DB instance or cluster": "Certificate bundles for all AWS Regions").
# Lambda's system trust store does not hold the RDS CAs, so verify-full needs this file.
RDS_CA_BUNDLE_URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
CA_BUNDLE_NAME = "global-bundle.pem"
CA_BUNDLE_MAX_BYTES = 4 * 1024 * 1024
_PEM_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"
_download_failures: dict[tuple[str, Path], str] = {}


@dataclass(frozen=True)
class CaBundle:
    """The CA bundle to ship, or why there is none."""

    path: Path | None
    problem: str | None = None


def _check_pem(data: bytes, where: str) -> None:
    if len(data) > CA_BUNDLE_MAX_BYTES or _PEM_CERTIFICATE not in data:
        raise ValueError(f"{where} is not a PEM certificate bundle")


def rds_ca_bundle(configured: str | None, build_root: Path = DEFAULT_BUILD_ROOT,
                  url: str = RDS_CA_BUNDLE_URL, timeout: float = 15.0) -> CaBundle:
    """``configured`` (a local PEM file: air-gapped builds), else the bundle downloaded once into
    ``build_root/ca``. A bad configured file is an error; a failed download is reported, not raised."""
    if configured:
        path = Path(configured).expanduser()
        path = path if path.is_absolute() else PROJECT_ROOT / path
        try:
            _check_pem(path.read_bytes()[:CA_BUNDLE_MAX_BYTES + 1], f"ca_bundle: {configured}")
        except OSError as err:
            raise PackagingError(f"ca_bundle: cannot read {configured}: {err.strerror or err}") from None
        except ValueError as err:
            raise PackagingError(str(err)) from None
        return CaBundle(path)
    cached = Path(build_root) / "ca" / CA_BUNDLE_NAME
    if cached.is_file():
        return CaBundle(cached)
    if _under_mocks():  # the offline plan (dbenv plan, policy check) never touches the network
        return CaBundle(None, f"the offline plan does not download it; `dbenv up` fetches it once from {url}")
    remembered = _download_failures.get((url, cached))
    if remembered:
        return CaBundle(None, remembered)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - a fixed https URL
            data = response.read(CA_BUNDLE_MAX_BYTES + 1)
        _check_pem(data, url)
    except (OSError, ValueError) as err:
        problem = f"cannot download the RDS CA bundle from {url} ({err})"
        _download_failures[(url, cached)] = problem
        return CaBundle(None, problem)
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(f".{os.getpid()}.part")
    partial.write_bytes(data)
    os.replace(partial, cached)
    return CaBundle(cached)


def missing_ca_bundle(function: str, problem: str) -> None:
    """No CA bundle: a warning where nothing is deployed (preview, offline plan), an error at ``up``."""
    message = (
        f"function {function!r}: the archive ships no RDS CA bundle ({problem}), so its verify-full TLS "
        f"connections fail on AWS. Give a local copy of {CA_BUNDLE_NAME} as ca_bundle, or allow the download"
    )
    if pulumi.runtime.is_dry_run() or _under_mocks():
        pulumi.log.warn(message)
        return
    raise PackagingError(message)


def _under_mocks() -> bool:
    from pulumi.runtime import mocks, settings

    return isinstance(settings.SETTINGS.monitor, mocks.MockMonitor)
