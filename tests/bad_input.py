"""A corpus of bad input for `dbenv`: hostile and broken files, and bad argument vectors.

Shared by tests/test_bad_input.py (every case through every command: exit 2, one line, nothing
created) and benchmarks/hostile_input.py (time and peak memory per file).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

MIB = 1024 * 1024

# A 2 KB "billion laughs": nine levels of ten aliases each.
_BOMB = ["config:", "  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
_BOMB += [f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
_BOMB += ["  db-recipes:recipes: *a8"]


def _yaml_deep() -> bytes:
    return b"config:\n  db-recipes:network: " + b"[" * 50_000 + b"]" * 50_000 + b"\n"


def _yaml_many_values() -> bytes:
    return b"config:\n  db-recipes:recipes: [" + b",".join([b"1"] * 2_400_000) + b"]\n"


def _json_many_values() -> bytes:
    return b'{"resources": [' + b",".join([b"{}"] * 1_700_000) + b"]}"


def _too_big(kind: str) -> bytes:
    filler = b"# " + b"x" * 78 + b"\n" if kind == "yaml" else b" " * 80
    body = filler * (5 * MIB // 80 + 10)
    return (b"config: {}\n" + body) if kind == "yaml" else (b'{"resources": []}' + body)


# name -> (kind, bytes); kind says which readers it is for: yaml (--config), json (--from,
# --policy-config), toml (dbenv.toml).
FILES: dict[str, tuple[str, Callable[[], bytes]]] = {
    "yaml-alias-bomb": ("yaml", lambda: "\n".join(_BOMB).encode() + b"\n"),
    "yaml-merge-alias": ("yaml", lambda: b"base: &b {x: 1}\nconfig:\n  <<: *b\n"),
    "yaml-deep": ("yaml", _yaml_deep),
    "yaml-many-values": ("yaml", _yaml_many_values),
    "yaml-too-big": ("yaml", lambda: _too_big("yaml")),
    "yaml-not-utf8": ("yaml", lambda: b"config:\n  aws:region: \xff\xfe\xfa\n"),
    "yaml-latin1": ("yaml", lambda: "config:\n  db-recipes:branch: caf\u00e9\n".encode("latin-1")),
    "yaml-bad-timestamp": ("yaml", lambda: b"config:\n  db-recipes:created: 2024-13-45\n"),
    "yaml-huge-int": ("yaml", lambda: b"config:\n  db-recipes:x: " + b"9" * 6000 + b"\n"),
    "yaml-python-tag": ("yaml", lambda: b"config: !!python/object/apply:os.system [echo pwned]\n"),
    "yaml-two-documents": ("yaml", lambda: b"config: {}\n---\nconfig: {}\n"),
    "yaml-not-mapping": ("yaml", lambda: b"- config\n- other\n"),
    "yaml-syntax": ("yaml", lambda: b"config: [unclosed\n"),
    "yaml-nul": ("yaml", lambda: b"config:\n  a: \x00\n"),
    "yaml-secure-value": ("yaml", lambda: b"config:\n  db-recipes:password:\n    secure: AAABAx==\n"),
    "yaml-unknown-recipe": ("yaml", lambda: b"config:\n  db-recipes:recipes: all,nope\n"),
    "yaml-bad-network": ("yaml", lambda: b"config:\n  db-recipes:recipes: aurora-serverless\n  db-recipes:network: 7\n"),
    "json-deep": ("json", lambda: b"[" * 100_000 + b"]" * 100_000),
    "json-many-values": ("json", _json_many_values),
    "json-too-big": ("json", lambda: _too_big("json")),
    "json-not-utf8": ("json", lambda: b'{"resources": ["\xc3\x28"]}'),
    "json-huge-int": ("json", lambda: b'{"resources": [' + b"9" * 6000 + b"]}"),
    "json-syntax": ("json", lambda: b'{"resources": [}'),
    "json-not-object": ("json", lambda: b"[1, 2, 3]"),
    "json-bad-level": ("json", lambda: b'{"all": "sometimes", "resources": [{"type": 1}]}'),
    "toml-deep": ("toml", lambda: b"a = " + b"[" * 20_000 + b"]" * 20_000 + b"\n"),
    "toml-too-big": ("toml", lambda: b"# " + b"x" * 300_000 + b"\n"),
    "toml-not-utf8": ("toml", lambda: b'region = "\xff"\n'),
    "toml-syntax": ("toml", lambda: b"target = \n"),
    "toml-unknown-key": ("toml", lambda: b'colour = "blue"\n'),
    "toml-branch-key": ("toml", lambda: b'branch = "main"\n'),
    "toml-bad-region": ("toml", lambda: b'region = "the moon"\n'),
    "toml-huge-ttl": ("toml", lambda: b'ttl = "' + b"9" * 5000 + b'd"\n'),
    "toml-bad-recipes": ("toml", lambda: b'recipes = "all,nope"\n'),
    "toml-wrong-types": ("toml", lambda: b"recipes = 7\nparallel = 1e400\n"),
    "toml-bad-budget": ("toml", lambda: b'budget = "lots"\n'),
    "toml-bad-sleep-after": ("toml", lambda: b'sleep_after = "' + b"9" * 500 + b'w"\n'),
    "toml-bad-hooks": ("toml", lambda: b"seed = 7\n"),
    "sql-not-utf8": ("sql", lambda: b"update users set email = '\xff';\n"),
    "sql-too-big": ("sql", lambda: b"select 1;\n" + b"-- " + b"x" * (MIB + 10) + b"\n"),
    "sql-empty": ("sql", lambda: b"-- nothing but a comment\n"),
    "sql-unterminated": ("sql", lambda: b"update users set name = 'open;\n"),
}


def write_files(directory: Path) -> dict[str, Path]:
    """Write every corpus file into ``directory``; also a FIFO and paths that are not files."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, (kind, make) in FILES.items():
        path = directory / f"{name}.{kind}"
        path.write_bytes(make())
        paths[name] = path
    fifo = directory / "a-fifo"
    if not fifo.exists():
        os.mkfifo(fifo)
    paths["fifo"] = fifo
    paths["directory"] = directory
    paths["missing"] = directory / "no-such-file"
    return paths


def kind_of(name: str) -> str | None:
    return FILES[name][0] if name in FILES else None


HUGE = "9" * 400
# Argument vectors (and environment) that are bad input for the command they name.
ARGV: list[tuple[list[str], dict[str, str]]] = [
    (["up", "-b", "x", "-y", "--ttl", f"{HUGE}d"], {}),
    (["up", "-b", "x", "-y", "--ttl", "99999999999w"], {}),
    (["up", "-b", "x", "-y"], {"DBENV_TTL": f"{HUGE}h"}),
    (["up", "-b", "x", "-y", "--ttl", "forever"], {}),
    (["up", "-b", "x", "-y", "--ttl", "31d"], {}),
    (["config", "show"], {"DBENV_TTL": f"{HUGE}m"}),
    (["reap", "--dry-run", "--older-than", f"{HUGE}w"], {}),
    (["reap", "--older-than", "0d"], {}),
    (["reap", "--dry-run", "--older-than", "soon"], {}),
    (["local", "start", "--port", "70000"], {}),
    (["local", "start", "--port", "0"], {}),
    (["local", "start", "--port", "-1"], {}),
    (["local", "start", "--port", HUGE], {}),
    (["plan", "-b", "x", "--recipes", "all,nope"], {}),
    (["plan", "-b", "x", "--recipes", "all,aurora-serverless"], {}),
    (["plan", "-b", "x", "--recipes", ","], {}),
    (["policy", "check", "-b", "x", "--recipes", "nope"], {}),
    (["preview", "-b", "x", "--recipes", "all,nope"], {}),
    (["up", "-b", "x", "-y", "--recipes", "all,nope"], {}),
    (["plan", "-b", "bad..branch", "--recipes", "all"], {}),
    (["plan", "-b", "x"], {"DBENV_RECIPES": "all", "DBENV_REGION": "nowhere"}),
    (["plan", "-b", "x", "--recipes", "all", "--target", "gcp"], {}),
    (["plan", "--recipes", "all"], {"DBENV_BRANCH": "-leading-dash"}),
    (["plan", "-b", "x", "--recipes", "all"], {"DBENV_DURABLE": "maybe"}),
    (["ls"], {"DBENV_PARALLEL": HUGE}),
    (["ls"], {"DBENV_TARGET": "gcp"}),
    (["outputs", "-b", "x"], {"DBENV_ORG": "a/b"}),
    (["down", "-b", "x"], {"PULUMI_BACKEND_URL": "ftp://x"}),
    (["cancel", "--stack", "bad name!"], {}),
    (["cancel", "--stack", "s", "--branch", "x"], {}),
    (["install-pulumi", "--version", "1.0.0"], {}),
    (["install-pulumi", "--version", "latest"], {}),
    (["db", "connect", "-b", "x", "--recipe", "nope", "--user", "app"], {}),
    (["db", "connect", "-b", "x", "--recipe", "aurora-serverless", "--user", "bad user"], {}),
    (["db", "query", "-b", "x", "   "], {}),
    (["db", "query", "-b", "x", "select 1", "--param", "novalue"], {}),
    (["db", "query", "-b", "x", "select 1", "--param", "bad-name=2"], {}),
    (["policy", "check", "--from", "x.json", "--recipes", "all"], {}),
    (["cost", "-b", "x", "--recipes", "all,nope"], {}),
    (["cost", "-b", "x", "--recipes", "all", "--target", "gcp"], {}),
    (["up", "-b", "x", "-y", "--recipes", "all", "--budget", "lots"], {}),
    (["up", "-b", "x", "-y", "--recipes", "all"], {"DBENV_BUDGET": "-5"}),
    (["preview", "-b", "x", "--recipes", "all"], {"DBENV_BUDGET": HUGE}),
    (["preview", "-b", "x", "--recipes", "all"], {"DBENV_BUDGET": "nan"}),
    (["reap", "--dry-run"], {"DBENV_SLEEP_AFTER": "soon"}),
    (["sleep", "-b", "bad..branch"], {}),
    (["wake", "-b", "bad..branch"], {}),
    (["db", "diff", "-b", "x"], {}),
    (["db", "diff", "-b", "x", "--against", "x"], {}),
    (["db", "diff", "-b", "x", "--url-branch", "not a url", "--url-parent", "mysql://h/db"], {}),
    (["db", "diff", "-b", "x", "--url-branch", "oracle://h/db", "--url-parent", "mysql://h/db"], {}),
]

# Commands and the option through which each reads a file of a kind ({} is the path).
FILE_SLOTS: dict[str, list[list[str]]] = {
    "yaml": [
        ["plan", "-b", "x", "--config", "{}"],
        ["policy", "check", "-b", "x", "--config", "{}"],
        ["preview", "-b", "x", "--config", "{}"],
        ["up", "-b", "x", "-y", "--config", "{}"],
        ["shared", "up", "--config", "{}"],
        ["cost", "-b", "x", "--config", "{}"],
        ["cost", "-b", "x", "--recipes", "aurora-serverless", "--usage", "{}"],
    ],
    "json": [
        ["cost", "-b", "x", "--recipes", "aurora-serverless", "--against", "{}"],
        ["policy", "check", "--from", "{}"],
        ["policy", "check", "--from", "{}", "--policy-config", "{}"],
    ],
    "sql": [
        ["up", "-b", "x", "-y", "--recipes", "aurora-serverless", "--seed", "{}"],
        ["up", "-b", "x", "-y", "--recipes", "aurora-serverless", "--post-clone", "{}"],
    ],
    "pem": [
        ["db", "connect", "-b", "x", "--recipe", "aurora-serverless", "--user", "app", "--ca-bundle", "{}"],
    ],
}

# Every command, run in a project whose dbenv.toml is a corpus file.
EVERY_COMMAND: list[list[str]] = [
    ["plan", "-b", "x"], ["up", "-b", "x", "-y"], ["preview", "-b", "x"], ["down", "-b", "x"],
    ["ls"], ["outputs", "-b", "x"], ["reap", "--dry-run"], ["reap"], ["cancel", "-b", "x"],
    ["policy", "check", "-b", "x"], ["shared", "up"], ["shared", "down"], ["shared", "outputs"],
    ["local", "start"], ["local", "stop"], ["local", "status"], ["config", "show"],
    ["db", "connect", "-b", "x", "--recipe", "aurora-serverless", "--user", "app"],
    ["db", "query", "-b", "x", "select 1"],
    ["cost", "-b", "x"], ["sleep", "-b", "x"], ["wake", "-b", "x"],
    ["db", "diff", "-b", "x", "--against", "staging"],
]
