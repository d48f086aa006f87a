"""Webhook signatures: only the body signed with our secret, in GitHub's exact header format, passes."""

from __future__ import annotations

import pytest

from automation.github.signature import BadSignature, sign, verify

SECRET = b"It's a Secret to Everybody"
BODY = b'{"action":"opened","number":1}'


def test_good_signature_passes() -> None:
    verify(SECRET, BODY, sign(SECRET, BODY))


def test_github_documented_example() -> None:
    # The worked example of GitHub's "Validating webhook deliveries" page.
    header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    verify(SECRET, b"Hello, World!", header)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing"),
        ("", "missing"),
        ("sha256=" + "0" * 64, "does not match"),
        (sign(b"another secret", BODY), "does not match"),
        (sign(SECRET, BODY)[len("sha256="):], "not of the form"),
        ("sha1=" + "0" * 40, "not of the form"),
        (sign(SECRET, BODY).upper().replace("SHA256=", "sha256="), "not of the form"),
        (" " + sign(SECRET, BODY), "not of the form"),
        (sign(SECRET, BODY) + "\n", "not of the form"),
        (sign(SECRET, BODY)[:-1], "not of the form"),
        ("sha256=" + "é" * 64, "not of the form"),
    ],
    ids=["none", "empty", "wrong", "other-secret", "no-prefix", "sha1", "uppercase-hex", "leading-space",
         "trailing-newline", "short", "non-ascii"],
)
def test_bad_signatures_are_refused(header: str | None, reason: str) -> None:
    with pytest.raises(BadSignature, match=reason):
        verify(SECRET, BODY, header)


def test_body_changed_after_signing_is_refused() -> None:
    header = sign(SECRET, BODY)
    with pytest.raises(BadSignature, match="does not match"):
        verify(SECRET, BODY.replace(b"1", b"2"), header)


def test_no_secret_accepts_nothing() -> None:
    with pytest.raises(BadSignature, match="no webhook secret"):
        verify(b"", BODY, sign(b"", BODY))
