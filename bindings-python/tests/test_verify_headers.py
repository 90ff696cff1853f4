"""``tidings.verify`` takes the received headers as any web framework hands them over: a
``dict``, ``http.server``'s ``email.message.Message``, or a read-only case-insensitive mapping
like Starlette's ``Headers`` (the stub types the argument as a Protocol with ``items()``, so
``mypy --strict`` accepts each of these)."""

from __future__ import annotations

import email.message
import json
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone

import pytest
from standardwebhooks import Webhook

import tidings

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BODY = json.dumps({"type": "order.created", "data": {"ref": "A-1"}})


def signed_headers() -> dict[str, str]:
    now = datetime.now(timezone.utc)
    signature = Webhook(SECRET).sign("msg_1", now, BODY)
    return {"Webhook-Id": "msg_1", "Webhook-Timestamp": str(int(now.timestamp())), "Webhook-Signature": signature}


class FrameworkHeaders(Mapping[str, str]):
    """A read-only, case-insensitive header mapping, as Starlette's ``Headers`` is."""

    def __init__(self, raw: dict[str, str]) -> None:
        self._raw = {k.lower(): v for k, v in raw.items()}

    def __getitem__(self, key: str) -> str:
        return self._raw[key.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)


def test_dict_message_and_mapping_headers_all_verify() -> None:
    message = email.message.Message()
    for name, value in signed_headers().items():
        message[name] = value
    for headers in (signed_headers(), message, FrameworkHeaders(signed_headers())):
        assert tidings.verify(BODY.encode(), headers, SECRET) == {"type": "order.created", "data": {"ref": "A-1"}}


def test_a_tampered_body_fails_whatever_the_header_type() -> None:
    message = email.message.Message()
    for name, value in signed_headers().items():
        message[name] = value
    with pytest.raises(tidings.SignatureError) as info:
        tidings.verify(BODY.replace("A-1", "A-2").encode(), message, SECRET)
    assert info.value.reason == "no_match"
