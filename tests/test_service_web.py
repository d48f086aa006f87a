"""The web page of `dbenv serve`: sign-in, the environments table, a job page whose log follows live.

A real `dbenv serve` on loopback over a real PostgreSQL (the embedded one and the machine's); rows are
put in the service's tables with the store's own functions, as the jobs would leave them. Then a real
headless Chromium (Debian's, driven by Selenium and chromedriver) signs in through the form, reads the
table, watches lines appended to the database after the page loaded arrive in the log, and reports no
Content-Security-Policy violation; its screenshots are checked to be real, non-blank images.
"""

from __future__ import annotations

import asyncio
import os
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest

from automation.jobs import store
from tests import service_harness as harness

pytestmark = pytest.mark.db

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
HOSTILE_ERROR = "engine said: <script>alert('error')</script> & left"
HOSTILE_OUTPUT = "<img src=x onerror=alert(1)>"
HOSTILE_OWNER = "<b>mallory</b>"


# ------------------------------------------------------------------ the service and its rows


@dataclass
class Served:
    service: harness.Service
    conninfo: str
    read_token: str
    write_token: str
    rows: dict[str, Any]

    @property
    def base(self) -> str:
        return self.service.base

    def run(self, coroutine_function: Any, *args: Any) -> Any:
        async def go() -> Any:
            import psycopg

            async with await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True) as conn:
                return await coroutine_function(conn, *args)

        return asyncio.run(go())


async def finished_job(conn: Any, branch: str, kind: str, state: str, *, error: str | None = None,
                       outputs: dict[str, Any] | None = None, lines: tuple[str, ...] = ()) -> int:
    job_id = await store.insert_job(conn, kind=kind, branch=branch, stack=_stack(branch), requested_by="ci-bot",
                                    inputs={"recipes": "aurora-serverless", "ttl": "3d",
                                            "config": {"db-recipes:password": "hunter2"}})
    await store.add_event(conn, job_id, "queued", f"{kind} queued by ci-bot")
    await store.start_job(conn, job_id, "worker-1")
    await store.add_event(conn, job_id, "started", f"{kind} started on worker-1")
    for line in lines:
        await store.add_event(conn, job_id, "engine", line)
    await store.finish_job(conn, job_id, state, outcome={"duration_seconds": 42.0}, outputs=outputs, error=error)
    await store.add_event(conn, job_id, "finished", f"{state}{': ' + error if error else ''} (42.0s)",
                          {"state": state})
    return job_id


def _stack(branch: str) -> str:
    return "env-" + re.sub(r"[^a-z0-9]+", "-", branch.lower()).strip("-")


async def seed(conn: Any) -> dict[str, Any]:
    """Three environments a team would have, a hostile one, and a page's worth of bulk rows."""
    now = datetime.now(UTC)
    rows: dict[str, Any] = {}
    for i in range(52):
        branch = f"bulk/b{i:02d}"
        await store.upsert_environment(conn, branch, _stack(branch), recipes=["dynamodb-autoscaling"], status="ready",
                                       owner="bulk", ephemeral=True, created_at=now - timedelta(hours=1),
                                       expires_at=now + timedelta(days=1), cost_idle=1.0)
    up = await finished_job(conn, "feature/checkout", "up", "succeeded",
                            lines=("+ aws:rds:Cluster aurora create", "+ aws:rds:ClusterInstance writer create"))
    await store.upsert_environment(
        conn, "feature/checkout", _stack("feature/checkout"), recipes=["aurora-serverless", "rds-proxy"],
        status="ready", owner="alice", ephemeral=True, created_at=now - timedelta(hours=3, minutes=5),
        expires_at=now + timedelta(days=2, hours=1), asleep=False, cost_idle=123.45, cost_asleep=12.5,
        cost_active=310.0, drift="none", drift_checked_at=now - timedelta(hours=1), last_job_id=up)
    rows["up"] = up
    sleep = await finished_job(conn, "feature/search", "sleep", "succeeded")
    await store.upsert_environment(
        conn, "feature/search", _stack("feature/search"), recipes=["postgres-instance"], status="asleep",
        owner="bob", ephemeral=True, created_at=now - timedelta(days=4), expires_at=now - timedelta(hours=5),
        asleep=True, cost_idle=48.0, cost_asleep=9.75, cost_active=61.2, drift="1 update",
        last_job_id=sleep)
    failed = await finished_job(conn, "fix/escape", "up", "failed", error=HOSTILE_ERROR,
                                outputs={"note": HOSTILE_OUTPUT}, lines=("<b>not bold</b>",))
    await store.upsert_environment(
        conn, "fix/escape", _stack("fix/escape"), recipes=["dynamodb-autoscaling"], status="up failed",
        owner=HOSTILE_OWNER, ephemeral=True, created_at=now - timedelta(minutes=20),
        expires_at=now + timedelta(hours=30), outputs={"endpoint": HOSTILE_OUTPUT}, last_job_id=failed)
    rows["failed"] = failed
    return rows


@pytest.fixture(scope="module", params=["embedded", "machine"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp(f"web-{request.param}")
    project = harness.make_project(tmp, with_pulumi=False)  # no job runs here: the rows are put in by hand
    url = harness.machine_database() if request.param == "machine" else None
    try:
        read_token = harness.make_token(project, "reader", "read", url)
        write_token = harness.make_token(project, "writer", "write", url)
        # No workers: nothing runs the rows put in by hand, and no schedule reaps the expired one.
        with harness.running(project, tmp, workers=0, database_url=url) as service:
            if url is None:
                from automation.jobs import database

                runtime_dir = tmp / "runtime"
                runtime_dir.mkdir(mode=0o700)
                with mock.patch.dict(os.environ, {"XDG_RUNTIME_DIR": str(runtime_dir)}):  # only for this call
                    conninfo = database.embedded(project.root / ".dbenv").conninfo  # joins the server `serve` started
            else:
                conninfo = url
            served = Served(service, conninfo, read_token, write_token, {})
            served.rows = served.run(seed)
            yield served
    finally:
        if url is not None:
            harness.drop_machine_database(url)


def signed_in(served: Served) -> httpx.Client:
    client = httpx.Client(base_url=served.base, timeout=30)
    client.cookies.set("dbenv_token", served.read_token)
    return client


# ------------------------------------------------------------------ reading pages as a person would


class Page(HTMLParser):
    """The table's cell texts, the links, the forms, and every tag with its attributes."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_bodies: list[str] = []
        self.rows: list[list[str]] = []
        self.links: list[str] = []
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self._in_script = False
        self.text_parts: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "a":
            self.links.append(dict(attrs).get("href") or "")
        elif tag == "script":
            self._in_script = True
            self.script_bodies.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None
        elif tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_bodies[-1] += data
        if self._cell is not None:
            self._cell.append(data)
        self.text_parts.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.text_parts).split())

    def table(self) -> dict[str, dict[str, str]]:
        """Body rows keyed by branch (the first word of the first cell), cells keyed by column heading."""
        if not self.rows:
            return {}
        heading, *body = self.rows
        return {row[0].split()[0]: dict(zip(heading, row, strict=True)) for row in body}


def assert_page_is_strict(response: httpx.Response) -> Page:
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    page = Page(response.text)
    for tag, attrs in page.tags:
        assert tag != "style", "a <style> element: styles live in /static"
        assert "style" not in attrs, f"a style= attribute on <{tag}>"
        handlers = [name for name in attrs if name.startswith("on")]
        assert not handlers, f"an inline event handler {handlers} on <{tag}>"
        if tag == "script":
            assert (attrs.get("src") or "").startswith("/static/"), f"a script that is not a file of this site: {attrs}"
        for name in ("href", "src", "action"):
            assert not (attrs.get(name) or "").lower().startswith("javascript:"), f"{name}= javascript: on <{tag}>"
    assert all(not body.strip() for body in page.script_bodies), "an inline script"
    return page


# ------------------------------------------------------------------ HTTP: sign-in


def test_without_a_cookie_every_page_asks_for_the_token(served: Served) -> None:
    with httpx.Client(base_url=served.base, timeout=30) as client:
        for path in ("/", f"/jobs/{served.rows['up']}", "/?owner=alice"):
            response = client.get(path)
            assert response.status_code == 401
            page = assert_page_is_strict(response)
            forms = [attrs for tag, attrs in page.tags if tag == "form"]
            assert {"method": "post", "action": "/login"} in forms
            fields = {attrs.get("name"): attrs for tag, attrs in page.tags if tag == "input"}
            assert fields["token"]["type"] == "password"
            assert fields["next"]["value"] == path, "after signing in, the page asked for"
            assert "feature/checkout" not in response.text


def test_a_bad_token_gets_the_form_again_with_an_error_and_401(served: Served) -> None:
    with httpx.Client(base_url=served.base, timeout=30) as client:
        for token in ("dbenv_not-a-real-token", "", "x" * 150):
            response = client.post("/login", data={"token": token, "next": "/"})
            assert response.status_code == 401
            page = assert_page_is_strict(response)
            assert "unknown or revoked" in page.text
            assert "set-cookie" not in response.headers
            assert any(attrs.get("name") == "token" for tag, attrs in page.tags if tag == "input")


@pytest.mark.parametrize("which", ["read", "write"])
def test_a_good_token_sets_a_strict_http_only_cookie_and_goes_to_the_page_asked(served: Served, which: str) -> None:
    token = served.read_token if which == "read" else served.write_token
    wanted = f"/jobs/{served.rows['up']}"
    with httpx.Client(base_url=served.base, timeout=30) as client:
        response = client.post("/login", data={"token": token, "next": wanted})
        assert response.status_code == 303
        assert response.headers["location"] == wanted
        cookie = response.headers["set-cookie"]
        parts = [part.strip().lower() for part in cookie.split(";")]
        assert parts[0] == f"dbenv_token={token}".lower()
        assert "httponly" in parts
        assert "samesite=strict" in parts
        assert "path=/" in parts
        assert "secure" not in parts, "plain http on loopback: a Secure cookie would never come back"
        page = client.get(wanted)
        assert page.status_code == 200
        assert f"Job {served.rows['up']}" in Page(page.text).text


def test_behind_an_https_proxy_the_cookie_is_secure(served: Served) -> None:
    # uvicorn trusts X-Forwarded-Proto from loopback (its forwarded_allow_ips default): a TLS proxy here.
    with httpx.Client(base_url=served.base, timeout=30) as client:
        response = client.post("/login", data={"token": served.read_token},
                               headers={"X-Forwarded-Proto": "https"})
        assert response.status_code == 303
        assert "secure" in [part.strip().lower() for part in response.headers["set-cookie"].split(";")]


def test_the_sign_in_page_on_its_own(served: Served) -> None:
    with httpx.Client(base_url=served.base, timeout=30) as client:
        response = client.get("/login")
        assert response.status_code == 200
        page = assert_page_is_strict(response)
        assert {attrs.get("name"): attrs.get("value") for tag, attrs in page.tags if tag == "input"}["next"] == "/"
    with signed_in(served) as client:
        assert client.get("/login").headers["location"] == "/"


def test_sign_in_never_sends_anyone_elsewhere_and_refuses_other_sites_forms(served: Served) -> None:
    with httpx.Client(base_url=served.base, timeout=30) as client:
        for elsewhere in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"):
            response = client.post("/login", data={"token": served.read_token, "next": elsewhere})
            assert response.status_code == 303
            assert response.headers["location"] == "/"
        for elsewhere in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site", "Origin": "null"}):
            forged = client.post("/login", data={"token": served.read_token, "next": "/"}, headers=elsewhere)
            assert forged.status_code == 403
            assert "set-cookie" not in forged.headers


def test_sign_out_clears_the_cookie(served: Served) -> None:
    with httpx.Client(base_url=served.base, timeout=30) as client:
        assert client.post("/login", data={"token": served.read_token}).status_code == 303
        assert client.get("/").status_code == 200
        response = client.post("/logout")
        assert response.status_code == 303
        cookie = response.headers["set-cookie"].lower()
        assert cookie.startswith('dbenv_token="";') or cookie.startswith("dbenv_token=;")
        assert "max-age=0" in cookie
        assert client.get("/").status_code == 401


def test_the_cookie_reads_the_api_but_never_changes_anything(served: Served) -> None:
    with signed_in(served) as client:
        assert client.get("/v1/environments/feature/checkout").status_code == 200
        refused = client.post("/v1/environments/feature/checkout/sleep")
        assert refused.status_code == 401
    with httpx.Client(base_url=served.base, timeout=30) as client:
        client.cookies.set("dbenv_token", served.write_token)
        assert client.delete("/v1/environments/feature/checkout").status_code == 401


# ------------------------------------------------------------------ HTTP: the table


def test_the_table_lists_environments_with_cost_status_age_and_last_job(served: Served) -> None:
    with signed_in(served) as client:
        response = client.get("/")
        assert response.status_code == 200
        page = assert_page_is_strict(response)
    table = page.table()
    checkout = table["feature/checkout"]
    assert checkout["Status"] == "ready"
    assert checkout["Recipes"] == "aurora-serverless, rds-proxy"
    assert checkout["Owner"] == "alice"
    assert checkout["Age"] == "3h"
    assert checkout["Expires"] == "expires in 2d"
    assert checkout["Asleep"] == "awake"
    assert checkout["Drift"].startswith("none")
    assert checkout["Cost / month"] == "$123.45 asleep $12.50 · active $310.00"
    assert checkout["Last job"] == f"#{served.rows['up']} up succeeded"
    assert f"/jobs/{served.rows['up']}" in page.links
    search = table["feature/search"]
    assert (search["Status"], search["Asleep"], search["Expires"]) == ("asleep", "asleep", "expired 5h ago")
    assert search["Cost / month"].startswith("$48.00")
    assert search["Drift"] == "1 update"
    escape = table["fix/escape"]
    assert escape["Status"] == "up failed"
    assert escape["Owner"] == HOSTILE_OWNER, "shown as text"
    assert escape["Cost / month"] == "— asleep — · active —"
    assert "<b>mallory</b>" not in response.text
    assert "&lt;b&gt;mallory&lt;/b&gt;" in response.text


def test_filters_are_plain_links_and_forms(served: Served) -> None:
    with signed_in(served) as client:
        def branches(query: str) -> set[str]:
            response = client.get("/" + query)
            assert response.status_code == 200, response.text
            return set(assert_page_is_strict(response).table())

        assert branches("?owner=alice") == {"feature/checkout"}
        assert branches("?status=asleep") == {"feature/search"}
        assert branches("?expired=yes") == {"feature/search"}
        assert "feature/search" not in branches("?expired=no")
        assert branches("?owner=alice&status=asleep") == set()
        home = assert_page_is_strict(client.get("/"))
        assert "/?owner=alice" in home.links and "/?status=asleep" in home.links
        assert [attrs for tag, attrs in home.tags if tag == "form" and attrs.get("method") == "get"]
        bad = client.get("/?expired=maybe")
        assert bad.status_code == 400
        assert "expired: use yes, no" in assert_page_is_strict(bad).text


def test_pages_follow_the_api_cursor(served: Served) -> None:
    with signed_in(served) as client:
        first = assert_page_is_strict(client.get("/?owner=bulk"))
        assert len(first.table()) == 50
        following = [link for link in first.links if "cursor=" in link]
        assert len(following) == 1
        second = assert_page_is_strict(client.get(following[0]))
        assert len(second.table()) == 2
        assert set(first.table()) | set(second.table()) == {f"bulk/b{i:02d}" for i in range(52)}
        assert not [link for link in second.links if "cursor=" in link]
        assert "/?owner=bulk" in second.links, "back to the first page, filters kept"
        forged = client.get("/?cursor=not-a-time|x")
        assert forged.status_code == 400


# ------------------------------------------------------------------ HTTP: the job page


def test_the_job_page_shows_facts_and_the_whole_log_with_user_data_escaped(served: Served) -> None:
    with signed_in(served) as client:
        response = client.get(f"/jobs/{served.rows['failed']}")
        assert response.status_code == 200
        page = assert_page_is_strict(response)
    text = page.text
    for fact in ("Kind up", "Branch fix/escape", "State failed", "Asked by ci-bot", "Duration"):
        assert fact in text
    assert HOSTILE_ERROR in text, "the error, as text"
    assert "<script>alert" not in response.text
    assert "&lt;script&gt;alert(&#39;error&#39;)&lt;/script&gt; &amp; left" in response.text
    assert HOSTILE_OUTPUT in text and "<img" not in response.text
    assert "<b>not bold</b>" in text and "<b>not bold" not in response.text
    assert "hunter2" not in response.text, "secret inputs are masked"
    assert "[secret]" in text
    log = [attrs for tag, attrs in page.tags if tag == "li"]
    assert [entry["data-seq"] for entry in log] == ["1", "2", "3", "4"]
    scripts = [attrs["src"] for tag, attrs in page.tags if tag == "script"]
    assert scripts == ["/static/job.js"]
    assert any(attrs.get("data-live") == "no" for tag, attrs in page.tags if tag == "ol"), "a finished job: no stream"


def test_unknown_jobs_and_static_files(served: Served) -> None:
    with signed_in(served) as client:
        for path in ("/jobs/999999", "/jobs/abc", "/jobs/" + "9" * 40):
            response = client.get(path)
            assert response.status_code == 404
            assert "There is no job" in assert_page_is_strict(response).text
        script = client.get("/static/job.js")
        assert script.status_code == 200
        assert script.headers["content-type"].startswith(("text/javascript", "application/javascript"))
        assert script.headers["x-content-type-options"] == "nosniff"
        assert client.get("/static/dbenv.css").headers["content-type"].startswith("text/css")


# ------------------------------------------------------------------ a real browser


def browser(tmp: Path) -> Any:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: the browser tests need Debian's chromium and chromium-driver; "
                    ".ci/run installs them (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,900", f"--user-data-dir={tmp / 'chromium-profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))


def png_pixels(path: Path) -> tuple[int, int, set[bytes], float]:
    """(width, height, distinct colours, share of the commonest colour) of an 8-bit RGB(A) PNG, by the stdlib."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    offset, idat, header = 8, b"", b""
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        chunk = data[offset + 8:offset + 8 + length]
        if kind == b"IHDR":
            header = chunk
        elif kind == b"IDAT":
            idat += chunk
        offset += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert (depth, interlace) == (8, 0) and colour in (2, 6), f"an unexpected PNG layout {depth=} {colour=}"
    channels = 3 if colour == 2 else 4
    stride = width * channels
    raw = zlib.decompress(idat)
    previous = bytearray(stride)
    counts: dict[bytes, int] = {}
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        _unfilter(kind, line, previous, channels)
        for x in range(0, stride, channels * 7):  # every 7th pixel: plenty to tell a page from a blank
            pixel = bytes(line[x:x + 3])
            counts[pixel] = counts.get(pixel, 0) + 1
        previous = line
    return width, height, set(counts), max(counts.values()) / sum(counts.values())


def _unfilter(kind: int, line: bytearray, above: bytearray, bpp: int) -> None:
    if kind == 0:
        return
    if kind == 2:
        line[:] = bytes((a + b) & 0xFF for a, b in zip(line, above, strict=True))
        return
    for i in range(len(line)):
        left = line[i - bpp] if i >= bpp else 0
        up = above[i]
        if kind == 1:
            line[i] = (line[i] + left) & 0xFF
        elif kind == 3:
            line[i] = (line[i] + ((left + up) >> 1)) & 0xFF
        else:
            corner = above[i - bpp] if i >= bpp else 0
            estimate = left + up - corner
            pa, pb, pc = abs(estimate - left), abs(estimate - up), abs(estimate - corner)
            line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF


def assert_real_screenshot(path: Path) -> None:
    width, height, colours, commonest = png_pixels(path)
    assert width >= 800 and height >= 600, (width, height)
    assert len(colours) > 20, f"only {len(colours)} colours: a blank page?"
    assert commonest < 0.97, f"one colour covers {commonest:.0%} of the screenshot"


def csp_reports(driver: Any) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser")
            if "Content Security Policy" in entry["message"] or "Refused to" in entry["message"]]


def test_a_person_signs_in_reads_the_table_and_watches_a_job_live(served: Served, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    async def running_job(conn: Any) -> int:
        job_id = await store.insert_job(conn, kind="up", branch="feature/live", stack=_stack("feature/live"),
                                        requested_by="alice", inputs={"recipes": "dynamodb-autoscaling"})
        await store.add_event(conn, job_id, "queued", "up queued by alice")
        await store.start_job(conn, job_id, "worker-2")
        await store.add_event(conn, job_id, "started", "up started on worker-2")
        return job_id

    async def add(conn: Any, job_id: int, kind: str, line: str) -> None:
        await store.add_event(conn, job_id, kind, line)

    async def finish(conn: Any, job_id: int) -> None:
        await store.finish_job(conn, job_id, "succeeded", outcome={"duration_seconds": 3.2})
        await store.add_event(conn, job_id, "finished", "succeeded (3.2s)", {"state": "succeeded"})

    driver = browser(tmp_path)
    try:
        driver.get(served.base + "/")
        driver.find_element(By.ID, "token").send_keys(served.read_token)
        driver.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()
        harness.wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "table.environments tbody tr"), "the table",
                 lambda: driver.page_source)
        assert driver.title == "Environments · dbenv"
        headings = [th.text for th in driver.find_elements(By.CSS_SELECTOR, "table.environments thead th")]
        assert headings == ["BRANCH", "STATUS", "RECIPES", "OWNER", "AGE", "EXPIRES", "ASLEEP", "DRIFT",
                            "COST / MONTH", "LAST JOB"], "shown upper-case by the style sheet"
        seen = {}
        for row in driver.find_elements(By.CSS_SELECTOR, "table.environments tbody tr"):
            cells = [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
            seen[cells[0].splitlines()[0]] = cells
        checkout = seen["feature/checkout"]
        assert checkout[1:7] == ["ready", "aurora-serverless, rds-proxy", "alice", "3h", "expires in 2d", "awake"]
        assert checkout[7].startswith("none")
        assert checkout[8].splitlines() == ["$123.45", "asleep $12.50 · active $310.00"]
        assert " ".join(checkout[9].split()) == f"#{served.rows['up']} up succeeded"
        assert seen["feature/search"][5] == "expired 5h ago"
        assert seen["fix/escape"][3] == HOSTILE_OWNER
        badge = driver.find_element(By.CSS_SELECTOR, "a.badge.status-ready")
        assert badge.value_of_css_property("border-radius") != "0px", "the style sheet applies"
        assert csp_reports(driver) == []
        driver.save_screenshot(str(tmp_path / "environments.png"))
        assert_real_screenshot(tmp_path / "environments.png")

        job_id = served.run(running_job)
        driver.get(f"{served.base}/jobs/{job_id}")
        lines = lambda: [li.text for li in driver.find_elements(By.CSS_SELECTOR, "#log li")]  # noqa: E731
        assert len(lines()) == 2, "the stored lines, rendered by the server"
        status = driver.find_element(By.ID, "log-status")
        harness.wait_for(lambda: status.text == "following live", "the live stream opening")
        served.run(add, job_id, "engine", "+ aws:dynamodb:Table orders create")
        harness.wait_for(lambda: any("aws:dynamodb:Table orders create" in line for line in lines()), "a line added later")
        served.run(add, job_id, "step", "<i>seed</i> 12 rows")
        harness.wait_for(lambda: any("<i>seed</i> 12 rows" in line for line in lines()), "a second line added later")
        served.run(finish, job_id)
        harness.wait_for(lambda: status.text == "finished", "the end of the job")
        harness.wait_for(lambda: driver.find_element(By.ID, "job-state").text == "succeeded", "the state updated")
        assert driver.find_element(By.ID, "fact-duration").text != "—"
        assert [line.split()[1] for line in lines()] == ["queued", "started", "engine", "step", "finished"], \
            "each line once, in order"
        assert driver.find_elements(By.CSS_SELECTOR, "#log i") == [], "log text is text, never markup"
        assert csp_reports(driver) == [], "no Content-Security-Policy violation on either page"
        driver.save_screenshot(str(tmp_path / "job.png"))
        assert_real_screenshot(tmp_path / "job.png")

        # The policy is enforced, and a violation would be seen by the check above.
        driver.execute_script("const s = document.createElement('script'); s.textContent = 'window.ran = 1';"
                              "document.body.append(s);")
        assert driver.execute_script("return window.ran === undefined")
        harness.wait_for(lambda: csp_reports(driver), "the refused inline script reported")
    finally:
        driver.quit()
