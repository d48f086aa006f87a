"""The one pull request comment that shows an environment, and its one-line commit status.

The comment starts with a hidden marker so the service finds and edits it instead of posting a
new one per job. Everything that comes from a branch or a stack (branch names, outputs, policy
messages, the schema diff) is escaped or fenced, so it cannot inject Markdown, HTML or @mentions.
Long parts fold into ``<details>``; the body always fits GitHub's 65,536-character limit: the
largest parts are cut, with a note saying so, and rendering never fails for size.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from automation.github import identifiers

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "lost", "removed", "refused", "plan-only")
# GitHub counts the limit in characters; measuring UTF-8 bytes keeps us under it whatever it counts.
COMMENT_LIMIT = 65536
_BUDGET = COMMENT_LIMIT - 512  # room for the notes the cutting itself adds
STATUS_LINE_MAX = 140
VALUE_MAX = 300  # one output value or message, shown in a table cell
OUTPUTS_FOLD = 5
FAILURES_FOLD = 10

_HEADINGS = {
    "queued": "⏳ queued", "running": "🔄 running", "succeeded": "✅ ready", "failed": "❌ failed",
    "cancelled": "⏹️ cancelled", "lost": "⚠️ lost (the worker stopped; the job will be retried or needs a re-run)",
    "removed": "🗑️ removed", "refused": "🚫 refused", "plan-only": "📝 plan only",
}
_STATES = {"queued": "pending", "running": "pending", "succeeded": "success", "removed": "success",
           "plan-only": "success", "failed": "failure", "refused": "error", "cancelled": "error", "lost": "error"}
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!~:])")


@dataclass(frozen=True)
class Cost:
    """Estimated cost per month in ``currency``: idle (no load), asleep (stopped), active (the usage scenario)."""

    idle: float
    asleep: float
    active: float
    currency: str = "USD"


@dataclass(frozen=True)
class PolicyVerdict:
    """One policy's verdict; ``detail`` says what failed (resource and message)."""

    policy: str
    level: str  # "mandatory" or "advisory"
    passed: bool
    detail: str = ""


@dataclass(frozen=True)
class EnvironmentComment:
    """What the comment shows. Outputs must already be masked (secrets replaced) by the caller."""

    repo: str
    pr: int
    status: str
    stack: str | None = None
    branch: str | None = None
    sha: str | None = None
    parent: str | None = None
    outputs: Mapping[str, Any] = field(default_factory=dict)
    cost: Cost | None = None
    parent_cost: Cost | None = None
    policies: Sequence[PolicyVerdict] | None = None
    schema_diff: str | None = None
    expires_at: datetime | str | None = None
    job_url: str | None = None
    message: str | None = None  # why it failed, was refused, or is plan-only

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {self.status!r}")
        identifiers.repo_name(self.repo)
        identifiers.positive_number(self.pr)


def marker(repo: str, pr: int) -> str:
    """The hidden first line that identifies the environment comment of ``repo#pr``."""
    return f"<!-- dbenv:env:{identifiers.repo_name(repo)}#{identifiers.positive_number(pr)} -->"


def policy_verdicts(levels: Mapping[str, str], violations: Iterable[Any]) -> list[PolicyVerdict]:
    """Verdicts from a policy report: ``levels`` (policy -> level) and violations (.policy/.resource/.message)."""
    failures: dict[str, list[str]] = {}
    for violation in violations:
        failures.setdefault(violation.policy, []).append(f"{violation.resource}: {violation.message}")
    return [PolicyVerdict(policy, level, policy not in failures, "; ".join(failures.get(policy, [])))
            for policy, level in sorted(levels.items()) if level in ("mandatory", "advisory")]


def commit_state(status: str) -> str:
    """The commit status state (pending, success, failure, error) of a job status."""
    return _STATES[status]


def status_line(data: EnvironmentComment) -> str:
    """One line for the commit status description (at most 140 characters)."""
    parts = [data.status]
    if data.stack:
        parts.append(data.stack)
    if data.message and data.status in ("failed", "refused", "plan-only", "lost"):
        parts.append(_first_line(data.message))
    if data.cost is not None and data.status in ("succeeded", "plan-only"):
        parts.append(f"{_money(data.cost.idle, data.cost.currency)}/month idle")
    if data.policies:
        failed = sum(1 for v in data.policies if not v.passed and v.level == "mandatory")
        if failed:
            parts.append(f"{failed} mandatory polic{'y' if failed == 1 else 'ies'} failed")
    return _clip(" · ".join(parts), STATUS_LINE_MAX)


def render(data: EnvironmentComment) -> str:
    """The comment body: marker first, always under GitHub's size limit."""
    fixed = [marker(data.repo, data.pr), f"### dbenv: {_HEADINGS[data.status]}", "", *_summary_table(data)]
    if data.message:
        fixed += ["", "> " + _escape(_clip(data.message, 2000)).replace("\n", "<br>")]
    fixed += _cost_lines(data)
    fixed += _policy_summary(data.policies)
    foldable = [part for part in (_policy_failures(data.policies), _outputs(data.outputs), _schema_diff(data))
                if part is not None]
    _fit(foldable, _BUDGET - _size("\n".join(fixed)))
    body = "\n".join(fixed + [line for part in foldable for line in part.render()]) + "\n"
    # The parts above are already cut to fit; this only guards against a mistake in that arithmetic.
    return body if _size(body) <= COMMENT_LIMIT else _cut_bytes(body, _BUDGET) + "\n\n_(comment cut to fit)_\n"


# --- sections ------------------------------------------------------------------------------------


def _summary_table(data: EnvironmentComment) -> list[str]:
    rows: list[tuple[str, str]] = []
    if data.stack:
        rows.append(("Stack", _code(data.stack)))
    if data.branch:
        at = f" at {_code(data.sha[:12])}" if data.sha else ""
        rows.append(("Branch", _code(data.branch) + at))
    elif data.sha:
        rows.append(("Commit", _code(data.sha[:12])))
    if data.parent:
        rows.append(("Cloned from", _code(data.parent)))
    if data.expires_at:
        rows.append(("Expires", _escape(_when(data.expires_at))))
    if data.job_url:
        rows.append(("Job", _link("job log", data.job_url)))
    if not rows:
        return []
    return ["| | |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows)]


def _cost_lines(data: EnvironmentComment) -> list[str]:
    if data.cost is None:
        return []
    cost, parent = data.cost, data.parent_cost
    currency = cost.currency
    lines = ["", f"**Cost per month** ({_escape(currency)}, estimate)", "",
             "| | idle | asleep | active |", "|---|---:|---:|---:|",
             f"| this environment | {_money(cost.idle, currency)} | {_money(cost.asleep, currency)} | "
             f"{_money(cost.active, currency)} |"]
    if parent is not None:
        lines.append(f"| change against the parent | {_delta(cost.idle - parent.idle, currency)} | "
                     f"{_delta(cost.asleep - parent.asleep, currency)} | {_delta(cost.active - parent.active, currency)} |")
    return lines


def _policy_summary(verdicts: Sequence[PolicyVerdict] | None) -> list[str]:
    if verdicts is None:
        return []
    counts = []
    for level in ("mandatory", "advisory"):
        of_level = [v for v in verdicts if v.level == level]
        failed = sum(1 for v in of_level if not v.passed)
        mark = "❌" if failed and level == "mandatory" else "⚠️" if failed else "✅"
        counts.append(f"{mark} {level}: {len(of_level) - failed} passed, {failed} failed")
    return ["", "**Policies** · " + " · ".join(counts)]


@dataclass
class _Part:
    """A foldable section: its lines can be cut from the end (or a single line shortened) to fit."""

    summary: str
    lines: list[str]
    fold: bool
    fence: str | None = None  # a code fence around the lines
    note: str | None = None

    def render(self) -> list[str]:
        inner = [f"{self.fence}diff", *self.lines, self.fence] if self.fence else list(self.lines)
        if self.note:
            inner += ["", f"_{self.note}_"]
        if not self.fold:
            return ["", f"**{self.summary}**", "", *inner]
        return ["", f"<details><summary>{self.summary}</summary>", "", *inner, "", "</details>"]

    def size(self) -> int:
        return _size("\n".join(self.render()))


def _policy_failures(verdicts: Sequence[PolicyVerdict] | None) -> _Part | None:
    failing = [v for v in verdicts or () if not v.passed]
    if not failing:
        return None
    failing.sort(key=lambda v: (v.level != "mandatory", v.policy))
    lines = [f"- {'❌' if v.level == 'mandatory' else '⚠️'} {v.level} {_code(v.policy)}"
             + (f": {_escape(_clip(v.detail, VALUE_MAX))}" if v.detail else "") for v in failing]
    return _Part(f"Failing policies ({len(failing)})", lines, fold=len(failing) > FAILURES_FOLD)


def _outputs(outputs: Mapping[str, Any]) -> _Part | None:
    if not outputs:
        return None
    lines = ["| Output | Value |", "|---|---|"]
    lines += [f"| {_code(str(name))} | {_code(_clip(_plain(value), VALUE_MAX))} |" for name, value in sorted(
        outputs.items(), key=lambda item: str(item[0]))]
    return _Part(f"Outputs ({len(outputs)})", lines, fold=len(outputs) > OUTPUTS_FOLD)


def _schema_diff(data: EnvironmentComment) -> _Part | None:
    if not data.schema_diff:
        return None
    lines = data.schema_diff.rstrip("\n").split("\n")
    # The summary sits in a raw HTML block, where Markdown escapes would show: HTML-escape only.
    against = f" against <code>{_html_text(data.parent)}</code>" if data.parent else " against the parent"
    longest_ticks = max((len(run) for run in re.findall(r"`+", data.schema_diff)), default=0)
    return _Part(f"Schema diff{against} ({len(lines)} lines)", lines, fold=True, fence="`" * max(3, longest_ticks + 1))


def _fit(parts: list[_Part], budget: int) -> None:
    """Cut the largest parts until all fit ``budget`` bytes: each gets an equal share of what is left."""
    remaining = max(budget, 0)
    for index, part in enumerate(sorted(parts, key=_Part.size)):
        share = remaining // (len(parts) - index)
        if part.size() > share:
            _shrink(part, share)
        remaining -= part.size()


def _shrink(part: _Part, limit: int) -> None:
    total = len(part.lines)
    part.note = _cut_note(total, total)  # counted in the overhead, then set to the real figure below
    overhead = part.size() - _size("\n".join(part.lines))
    room = max(limit - overhead, 0)
    kept: list[str] = []
    used = 0
    for line in part.lines:
        cost = _size(line) + 1
        if used + cost > room:
            if not kept and room > 0:  # one huge line: keep its start rather than nothing
                kept.append(_cut_bytes(line, room - 1))
            break
        kept.append(line)
        used += cost
    part.lines = kept
    part.note = _cut_note(len(kept), total)


def _cut_note(kept: int, total: int) -> str:
    return f"cut to fit GitHub's comment limit: {kept} of {total} lines shown; the full text is on the job page"


# --- escaping and formatting -----------------------------------------------------------------------


def _escape(text: str) -> str:
    """Text that renders literally: no Markdown, no HTML, no @mentions, no table breaks."""
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", text)
    text = html.escape(text, quote=True).replace("|", "&#124;")
    return text.replace("@", "@\u200b").replace("\r", "").replace("\n", " ")


def _html_text(text: str) -> str:
    """Text for a raw HTML block (no Markdown is parsed there): HTML-escaped, mentions broken."""
    return html.escape(_clip(text, VALUE_MAX), quote=True).replace("@", "@\u200b").replace("\n", " ")


def _code(text: str) -> str:
    return f"<code>{_escape(_clip(text, VALUE_MAX))}</code>"


def _link(label: str, url: str) -> str:
    if not url.startswith(("https://", "http://")):
        return _escape(url)
    return f'<a href="{html.escape(url, quote=True)}">{_escape(label)}</a>'


def _plain(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)


def _money(amount: float, currency: str) -> str:
    symbol = "$" if currency == "USD" else f"{currency} "
    return f"{symbol}{amount:,.2f}"


def _delta(amount: float, currency: str) -> str:
    if round(amount, 2) == 0:
        return "±" + _money(0.0, currency)
    return ("+" if amount > 0 else "−") + _money(abs(amount), currency)


def _when(value: datetime | str) -> str:
    if isinstance(value, str):
        return _clip(value, 64)
    moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0].strip()


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def _cut_bytes(text: str, limit: int) -> str:
    return text.encode("utf-8")[:max(limit, 0)].decode("utf-8", errors="ignore")
