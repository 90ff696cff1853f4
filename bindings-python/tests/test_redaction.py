"""Webhook URLs often carry their credential (``?token=...``): ``repr`` of an endpoint shows the
URL redacted, while ``Endpoint.url`` keeps it whole; no other repr or error message shows it."""

from __future__ import annotations

import socket

import pytest

import tidings

SECRET_URL = "https://hooks.example.com/in?token=abc123"


def test_endpoint_repr_redacts_the_query_and_url_keeps_it(store: tidings.Store) -> None:
    ep = store.create_endpoint(SECRET_URL)
    shown = repr(ep)
    assert "abc123" not in shown
    assert "token=redacted" in shown
    assert "hooks.example.com/in" in shown
    assert ep.url == SECRET_URL
    assert store.get_endpoint(ep.id).url == SECRET_URL


@pytest.mark.parametrize(
    "url,hidden,shown",
    [
        ("https://hooks.example.com/in?token=abc123&team=t9", ["abc123", "t9"], "?token=redacted&team=redacted"),
        ("https://hooks.example.com/in#sig=abc123", ["abc123"], "#redacted"),
        ("https://hooks.example.com/services/plain", [], "https://hooks.example.com/services/plain"),
    ],
    ids=["query", "fragment", "plain"],
)
def test_endpoint_repr_shows_the_redacted_form(store: tidings.Store, url: str, hidden: list[str], shown: str) -> None:
    ep = store.create_endpoint(url)
    for part in hidden:
        assert part not in repr(ep)
    assert shown in repr(ep)
    assert ep.url == url


def test_updated_and_listed_endpoints_are_redacted_too(store: tidings.Store) -> None:
    ep = store.create_endpoint("https://hooks.example.com/in")
    updated = store.update_endpoint(ep.id, url=SECRET_URL)
    with store.transaction() as tx:
        in_tx = tx.get_endpoint(ep.id)
    for shown in (repr(updated), repr(store.list_endpoints()), repr(in_tx)):
        assert "abc123" not in shown and "token=redacted" in shown


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_failed_sends_do_not_show_the_token(store: tidings.Store) -> None:
    ep = store.create_endpoint(f"http://127.0.0.1:{closed_port()}/in?token=abc123", timeout=2.0)
    attempt = store.send_test(ep.id)
    assert attempt.error is not None
    for text in (repr(attempt), attempt.error, attempt.error_kind or ""):
        assert "abc123" not in text
    with pytest.raises(tidings.DeliveryError) as info:
        store.call(ep.id, "a.b", {}, timeout=2.0)
    assert "abc123" not in str(info.value) and "abc123" not in repr(info.value)
    assert "abc123" not in info.value.reason
    store.append("s", "a.b", {})
    for delivery in store.deliveries(endpoint_id=ep.id):
        assert "abc123" not in repr(delivery)
