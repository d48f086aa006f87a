"""The pull request comment: marker first, escaped, folded, and always under GitHub's size limit."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from automation.github import comment
from automation.github.comment import Cost, EnvironmentComment, PolicyVerdict

SHA = "6dcb09b5b57875f334f61aebed695e2e4193db5e"


def full(**overrides: object) -> EnvironmentComment:
    values: dict[str, object] = dict(
        repo="acme/shop-db", pr=42, status="succeeded", stack="feature-orders-index-1a2b3c4d",
        branch="feature/orders-index", sha=SHA, parent="main-0f1e2d3c",
        outputs={"endpoint": "shop.cluster-abc.us-east-1.rds.amazonaws.com", "port": 5432, "password": "[secret]"},
        cost=Cost(idle=12.5, asleep=1.25, active=40.0), parent_cost=Cost(idle=10.0, asleep=1.25, active=45.0),
        policies=[PolicyVerdict("rds-encrypted", "mandatory", True),
                  PolicyVerdict("rds-tls", "mandatory", False, "shop-db: require_secure_transport is off"),
                  PolicyVerdict("tags", "advisory", False, "shop-db: no owner tag"),
                  PolicyVerdict("backup", "advisory", True)],
        schema_diff="--- main\n+++ feature\n+CREATE INDEX orders_customer ON orders (customer);\n",
        expires_at=datetime(2026, 12, 9, 10, 0, tzinfo=UTC), job_url="https://dbenv.example.com/jobs/17",
    )
    values.update(overrides)
    return EnvironmentComment(**values)  # type: ignore[arg-type]


def test_marker_comes_first() -> None:
    body = comment.render(full())
    assert body.startswith("<!-- dbenv:env:acme/shop-db#42 -->\n")
    assert comment.marker("acme/shop-db", 42) == "<!-- dbenv:env:acme/shop-db#42 -->"


def test_everything_is_shown() -> None:
    body = comment.render(full())
    assert "✅ ready" in body
    assert "feature\\-orders\\-index\\-1a2b3c4d" in body  # the stack, escaped
    assert "<code>6dcb09b5b578</code>" in body
    assert "2026\\-12\\-09 10:00 UTC".replace(":", "\\:") in body
    assert '<a href="https://dbenv.example.com/jobs/17">job log</a>' in body
    assert "| this environment | $12.50 | $1.25 | $40.00 |" in body
    assert "| change against the parent | +$2.50 | ±$0.00 | −$5.00 |" in body
    assert "❌ mandatory: 1 passed, 1 failed" in body and "⚠️ advisory: 1 passed, 1 failed" in body
    assert "<code>rds\\-tls</code>" in body and "require\\_secure\\_transport is off" in body
    assert "rds\\-encrypted" not in body  # passing policies are counted, not listed
    assert "<details><summary>Schema diff against <code>main-0f1e2d3c</code> (3 lines)</summary>" in body
    assert "+CREATE INDEX orders_customer ON orders (customer);" in body  # fenced: literal
    assert "**Outputs (3)**" in body and "\\[secret\\]" in body


def test_sections_that_are_absent_are_left_out() -> None:
    body = comment.render(EnvironmentComment(repo="acme/shop-db", pr=42, status="queued"))
    assert body.splitlines()[:2] == ["<!-- dbenv:env:acme/shop-db#42 -->", "### dbenv: ⏳ queued"]
    for absent in ("Cost", "Policies", "Outputs", "Schema diff", "<details>"):
        assert absent not in body


def test_no_parent_cost_no_change_row() -> None:
    assert "change against the parent" not in comment.render(full(parent_cost=None))


def test_many_outputs_and_failures_fold() -> None:
    outputs = {f"output_{n}": f"value {n}" for n in range(12)}
    failures = [PolicyVerdict(f"policy-{n}", "advisory", False, "x") for n in range(11)]
    body = comment.render(full(outputs=outputs, policies=failures))
    assert "<details><summary>Outputs (12)</summary>" in body
    assert "<details><summary>Failing policies (11)</summary>" in body


@pytest.mark.parametrize("hostile", [
    "feat/<img src=x onerror=alert(1)>",
    "feat/`code`|pipe",
    "@acme/everyone",
    "</details><script>x</script>",
    "[click](https://evil.example)",
    "line\nbreak | # heading",
])
def test_user_controlled_strings_are_escaped(hostile: str) -> None:
    body = comment.render(full(branch=hostile, stack=hostile, outputs={hostile: hostile},
                               policies=[PolicyVerdict(hostile, "mandatory", False, hostile)], message=hostile))
    assert "<img" not in body and "<script" not in body and "</details><script" not in body
    assert "](https" not in body
    assert "@acme" not in body  # no mention: a zero-width space follows every @
    for line in body.splitlines():
        if line.startswith("| "):
            assert line.count("|") - line.count("\\|") in (3, 5), line  # no cell split by a pipe in a value


def test_the_parent_in_the_raw_html_summary_is_html_escaped() -> None:
    body = comment.render(full(parent="<b>@x</b>"))
    assert "<summary>Schema diff against <code>&lt;b&gt;@\u200bx&lt;/b&gt;</code> (3 lines)</summary>" in body


def test_schema_diff_with_backticks_keeps_its_fence() -> None:
    diff = "+COMMENT ON TABLE t IS '```\n</details>\n```';"
    body = comment.render(full(schema_diff=diff))
    assert "````diff" in body and "\n````\n" in body


def test_a_200_kb_schema_diff_is_cut_to_fit() -> None:
    diff = "\n".join(f"+ALTER TABLE orders ADD COLUMN c{n} integer; -- {'x' * 40}" for n in range(3000))
    assert len(diff) > 200_000
    body = comment.render(full(schema_diff=diff))
    assert len(body.encode("utf-8")) <= comment.COMMENT_LIMIT
    assert body.startswith(comment.marker("acme/shop-db", 42))
    assert "of 3000 lines shown; the full text is on the job page" in body
    assert "| this environment | $12.50" in body  # the small parts survive whole
    assert body.count("```diff") == 1 and body.rstrip().endswith("</details>")


def test_several_huge_parts_are_all_cut_and_still_fit() -> None:
    outputs = {f"o{n}": "é" * 290 for n in range(800)}
    failures = [PolicyVerdict(f"p{n}", "mandatory", False, "ü" * 290) for n in range(800)]
    body = comment.render(full(outputs=outputs, policies=failures, schema_diff="+" + "x" * 300_000,
                               message="m" * 100_000))
    assert len(body.encode("utf-8")) <= comment.COMMENT_LIMIT
    assert body.count("cut to fit GitHub's comment limit") == 3


def test_status_line() -> None:
    line = comment.status_line(full())
    assert line == "succeeded · feature-orders-index-1a2b3c4d · $12.50/month idle · 1 mandatory policy failed"
    failed = comment.status_line(full(status="failed", message="engine error: " + "x" * 500 + "\nsecond line"))
    assert len(failed) == 140 and failed.endswith("…") and "second line" not in failed
    assert comment.commit_state("running") == "pending" and comment.commit_state("failed") == "failure"
    assert {comment.commit_state(s) for s in comment.STATUSES} <= {"pending", "success", "failure", "error"}


def test_policy_verdicts_from_a_report() -> None:
    violations = [SimpleNamespace(policy="rds-tls", resource="shop-db", message="TLS off"),
                  SimpleNamespace(policy="rds-tls", resource="shop-db-2", message="TLS off")]
    verdicts = comment.policy_verdicts({"rds-tls": "mandatory", "tags": "advisory", "old": "disabled"}, violations)
    assert verdicts == [PolicyVerdict("rds-tls", "mandatory", False, "shop-db: TLS off; shop-db-2: TLS off"),
                        PolicyVerdict("tags", "advisory", True, "")]


def test_bad_status_is_refused() -> None:
    with pytest.raises(ValueError, match="status must be one of"):
        EnvironmentComment(repo="acme/shop-db", pr=42, status="done")
