"""Endpoint CRUD: create with every option, get, list, update, delete, rotate, disable, enable."""

from __future__ import annotations

import pytest

import tidings

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def test_create_with_defaults(store: tidings.Store) -> None:
    ep = store.create_endpoint("https://example.com/hook")
    assert ep.secret.startswith("whsec_")
    assert ep.url == "https://example.com/hook"
    defaults = tidings._tidings._core_defaults()["Store.create_endpoint"]  # test_defaults.py
    assert {name: getattr(ep, name) for name in defaults} == defaults
    assert (ep.auth, ep.template, ep.templates) == (None, None, {})
    assert ep.created_at.tzinfo is not None and ep.updated_at >= ep.created_at
    assert (ep.disabled_reason, ep.consecutive_failures, ep.unhealthy, ep.last_success_at) == (None, 0, False, None)
    assert ep.secret not in repr(ep)


def test_create_with_every_option(store: tidings.Store) -> None:
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    ep = store.create_endpoint(
        "https://example.com/orders",
        events=["order.*", "refund.created"],
        name="Orders",
        tenant="acme",
        secret=secret,
        headers={"X-Team": "billing"},
        auth=tidings.Bearer("t0ken"),
        timeout=3.5,
        max_attempts=3,
        initial_delay=0.5,
        max_delay=60.0,
        multiplier=2.0,
        jitter=0.0,
        rate_limit=10.0,
        burst=5,
        max_in_flight=2,
        ordered=True,
        verify_tls=False,
        ca_cert=None,
        signature_header="X-Webhook-Signature",
        template='{"text": "Order {{data.id}}", "raw": "{{data}}"}',
        keepalive=30.0,
        final_statuses=[400, 422],
        enabled=False,
    )
    assert ep.secret == secret
    assert ep.events == ["order.*", "refund.created"]
    assert (ep.name, ep.tenant, ep.headers) == ("Orders", "acme", {"X-Team": "billing"})
    assert ep.auth == tidings.Bearer("t0ken")
    assert (ep.timeout, ep.max_attempts, ep.initial_delay, ep.max_delay) == (3.5, 3, 0.5, 60.0)
    assert (ep.multiplier, ep.jitter, ep.rate_limit, ep.burst, ep.max_in_flight) == (2.0, 0.0, 10.0, 5, 2)
    assert (ep.ordered, ep.verify_tls, ep.signature_header) == (True, False, "X-Webhook-Signature")
    assert ep.template == '{"text": "Order {{data.id}}", "raw": "{{data}}"}'
    assert ep.templates == {"*": ep.template}
    assert (ep.keepalive, ep.final_statuses, ep.enabled) == (30.0, [400, 422], False)
    assert store.get_endpoint(ep.id) == ep

    key = store.create_endpoint(
        "https://example.com/k",
        auth=tidings.ApiKey("X-Api-Key", "s3cret"),
        template={"order.*": '{"o": "{{data}}"}', "*": '{"any": "{{type}}"}'},
        ca_cert=PEM,
    )
    assert key.auth == tidings.ApiKey("X-Api-Key", "s3cret")
    assert "s3cret" not in repr(key.auth)
    assert key.template == {"order.*": '{"o": "{{data}}"}', "*": '{"any": "{{type}}"}'}
    assert key.ca_cert == PEM


def test_get_list_update_delete(store: tidings.Store) -> None:
    a = store.create_endpoint("https://a.example.com/", tenant="acme")
    b = store.create_endpoint("https://b.example.com/")
    assert [e.id for e in store.list_endpoints()] == [a.id, b.id]
    assert [e.id for e in store.list_endpoints(tenant="acme")] == [a.id]

    changed = store.update_endpoint(a.id, name="A", events=["user.*"], timeout=2.0, rate_limit=1.5, burst=3)
    assert (changed.name, changed.events, changed.timeout, changed.rate_limit, changed.burst) == (
        "A", ["user.*"], 2.0, 1.5, 3
    )
    assert changed.secret == a.secret
    with pytest.raises(tidings.InvalidInputError) as info:
        store.update_endpoint(a.id, rate_limit=None)  # burst is still set
    assert info.value.field == "burst"
    cleared = store.update_endpoint(
        a.id, name=None, rate_limit=None, burst=None, auth=tidings.Bearer("x"), template='{"a": 1}'
    )
    assert (cleared.name, cleared.rate_limit, cleared.burst, cleared.template) == (None, None, None, '{"a": 1}')
    assert cleared.auth == tidings.Bearer("x")
    assert store.update_endpoint(a.id) == store.get_endpoint(a.id)
    with pytest.raises(TypeError):
        store.update_endpoint(a.id, colour="blue")
    with pytest.raises(TypeError):
        store.update_endpoint(a.id, secret="whsec_x")
    with pytest.raises(tidings.InvalidInputError) as info:
        store.update_endpoint(a.id, url=None)
    assert info.value.field == "url"

    store.delete_endpoint(a.id)
    with pytest.raises(tidings.NotFoundError) as nf:
        store.get_endpoint(a.id)
    assert (nf.value.kind, nf.value.id) == ("endpoint", a.id)
    assert [e.id for e in store.list_endpoints()] == [b.id]
    with pytest.raises(tidings.NotFoundError):
        store.delete_endpoint(a.id)


def test_rotate_disable_enable(store: tidings.Store) -> None:
    ep = store.create_endpoint("https://example.com/")
    rotated = store.rotate_secret(ep.id)
    assert rotated.secret != ep.secret and rotated.secret.startswith("whsec_")
    chosen = "whsec_" + "C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
    assert store.rotate_secret(ep.id, secret=chosen).secret == chosen
    with pytest.raises(tidings.InvalidInputError) as info:
        store.rotate_secret(ep.id, secret="not-a-secret")
    assert info.value.field == "secret"

    off = store.disable_endpoint(ep.id, reason="maintenance")
    assert (off.enabled, off.disabled_reason) == (False, "maintenance")
    store.append("o", "order.created", {})
    assert store.deliveries(endpoint_id=ep.id) == []
    on = store.enable_endpoint(ep.id)
    assert on.enabled and on.disabled_reason is None
    # catch_up (the default) queues what was appended while disabled.
    assert len(store.deliveries(endpoint_id=ep.id)) == 1

    store.disable_endpoint(ep.id)
    store.append("o", "order.paid", {})
    store.enable_endpoint(ep.id, catch_up=False)
    assert len(store.deliveries(endpoint_id=ep.id)) == 1
