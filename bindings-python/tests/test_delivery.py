"""End to end: signed deliveries to a receiver on 127.0.0.1, verified three ways, and every
delivery operation."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import Receiver, wait_until
from standardwebhooks import Webhook, WebhookVerificationError

import tidings


def test_signed_delivery_verifies_three_ways(store: tidings.Store, receiver: Receiver) -> None:
    ep = store.create_endpoint(
        receiver.url(), events=["order.*"], signature_header="X-Webhook-Signature", headers={"X-Team": "billing"}
    )
    with store.transaction() as tx:
        event = tx.append("order-42", "order.created", {"total": 9.99, "items": [1, 2]}, metadata={"actor": "a"})
    store.append("user-1", "user.created", {})  # not subscribed
    with store.start_delivery(workers=2) as delivery:
        assert delivery.running
        assert delivery.wait_idle(30.0)
    assert not delivery.running
    [request] = receiver.wait_for(1)
    headers, body = request.headers, request.body

    # 1. tidings.verify returns the parsed body.
    payload = tidings.verify(body, headers, ep.secret)
    assert payload["id"] == event.id
    assert payload["type"] == "order.created"
    assert payload["data"] == {"total": 9.99, "items": [1, 2]}
    assert payload["metadata"] == {"actor": "a"}
    assert (payload["stream"], payload["version"], payload["position"]) == ("order-42", 1, event.position)
    assert payload["source"] == "test-host"
    assert payload["tenant"] is None

    # 2. The Standard Webhooks reference library agrees.
    assert Webhook(ep.secret).verify(body, headers) == payload

    # 3. The sha256=<hex> header, keyed with the whole secret string (what GitHub-style receivers check).
    expected = hmac.new(ep.secret.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(f"sha256={expected}", headers["x-webhook-signature"])

    assert headers["webhook-id"] == event.id
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"].startswith("tidings/")
    assert headers["x-team"] == "billing"

    [record] = store.deliveries(endpoint_id=ep.id)
    assert (record.state, record.attempts, record.last_status_code) == ("succeeded", 1, 200)
    assert (record.event_id, record.event_type, record.endpoint_id) == (event.id, "order.created", ep.id)
    assert record.completed_at is not None and record.created_at <= record.completed_at
    assert repr(record).startswith(f"DeliveryRecord(id={record.id}, ") and "state='succeeded'" in repr(record)
    [attempt] = store.attempts(record.id)
    assert (attempt.number, attempt.status_code, attempt.error) == (1, 200, None)
    assert attempt.duration >= 0.0 and attempt.response_body == '{"ok":true}'


def test_verify_rejects_tampering_wrong_secret_and_old_timestamps(store: tidings.Store, receiver: Receiver) -> None:
    ep = store.create_endpoint(receiver.url())
    store.append("s", "a.b", {"x": 1})
    with store.start_delivery(workers=1) as delivery:
        assert delivery.wait_idle(30.0)
    [request] = receiver.wait_for(1)
    other = store.create_endpoint(receiver.url()).secret
    with pytest.raises(tidings.SignatureError) as info:
        tidings.verify(request.body + b" ", request.headers, ep.secret)
    assert info.value.reason == "no_match"
    with pytest.raises(WebhookVerificationError):
        Webhook(ep.secret).verify(request.body + b" ", request.headers)
    with pytest.raises(tidings.SignatureError):
        tidings.verify(request.body, request.headers, other)
    # Any one of several secrets (a rotation) is enough.
    assert tidings.verify(request.body, request.headers, [other, ep.secret])["data"] == {"x": 1}
    headers = dict(request.headers)
    headers["webhook-timestamp"] = str(int(headers["webhook-timestamp"]) - 3600)
    with pytest.raises(tidings.SignatureError) as info:
        tidings.verify(request.body, headers, ep.secret, tolerance=300)
    assert info.value.reason in ("timestamp_too_old", "no_match")
    with pytest.raises(tidings.SignatureError) as info:
        tidings.verify(request.body, {}, ep.secret)
    assert info.value.reason == "missing_header"


def test_standard_webhooks_test_vector() -> None:
    headers = {
        "webhook-id": "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
        "webhook-timestamp": "1649367553",
        "webhook-signature": "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
    }
    body = b'{"email":"test@example.com","username":"test_user"}'
    secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
    assert tidings.verify(body, headers, secret, tolerance=1e10) == {"email": "test@example.com", "username": "test_user"}
    with pytest.raises(tidings.SignatureError) as info:
        tidings.verify(body, headers, secret)
    assert info.value.reason == "timestamp_too_old"


def test_template_and_auth_reach_the_receiver(store: tidings.Store, receiver: Receiver) -> None:
    store.create_endpoint(
        receiver.url("/slack"),
        template='{"text": "Order {{data.id}} paid", "order": "{{data}}"}',
        auth=tidings.ApiKey("X-Api-Key", "k3y"),
    )
    store.append("o-1", "order.paid", {"id": 7})
    with store.start_delivery(workers=1) as delivery:
        assert delivery.wait_idle(30.0)
    [request] = receiver.wait_for(1)
    assert request.json() == {"text": "Order 7 paid", "order": {"id": 7}}
    assert request.headers["x-api-key"] == "k3y"


def test_failure_retry_recover_replay(store: tidings.Store, receiver: Receiver) -> None:
    receiver.status = 500
    ep = store.create_endpoint(receiver.url(), max_attempts=1, jitter=0.0)
    since = datetime.now(timezone.utc) - timedelta(minutes=1)
    event = store.append("s", "a.b", {})
    with store.start_delivery(workers=2) as delivery:
        assert delivery.wait_idle(30.0)
        [record] = store.deliveries(endpoint_id=ep.id)
        assert (record.state, record.last_status_code) == ("failed", 500)
        assert store.deliveries(state="failed")[0].id == record.id
        assert store.deliveries(event_id=event.id)[0].id == record.id
        assert store.deliveries(state="succeeded") == []
        assert store.delivery_counts(ep.id)["failed"] == 1

        receiver.status = 200
        retried = store.retry(record.id)
        assert retried.state == "pending"
        assert delivery.wait_idle(30.0)
        assert store.delivery(record.id).state == "succeeded"
        assert [a.number for a in store.attempts(record.id)] == [1, 2]

        # recover: every failed delivery since a time goes back to pending.
        receiver.status = 500
        store.append("s", "a.b", {})
        assert delivery.wait_idle(30.0)
        assert len(store.deliveries(endpoint_id=ep.id, state="failed")) == 1
        receiver.status = 200
        assert store.recover(ep.id, since) == 1
        assert delivery.wait_idle(30.0)
        assert store.delivery_counts(ep.id)["succeeded"] == 2

        # replay: finished deliveries in a position range go again, same webhook-id.
        before = len(receiver.requests)
        assert store.replay(ep.id, event.position, event.position) == 1
        assert delivery.wait_idle(30.0)
        again = receiver.wait_for(before + 1)[-1]
        assert again.headers["webhook-id"] == event.id

    stats = store.stats()
    assert stats["events"] == 2
    assert stats["by_state"]["succeeded"] == 2
    assert 0.0 < stats["success_rate"] <= 1.0
    assert isinstance(stats["p50"], float)
    [per] = stats["endpoints"]
    assert per["endpoint_id"] == ep.id and per["by_state"]["succeeded"] == 2

    with pytest.raises(tidings.InvalidInputError):
        store.recover(ep.id, datetime(2024, 1, 1))  # naive: refused
    with pytest.raises(tidings.InvalidInputError):
        store.deliveries(state="lost")
    with pytest.raises(tidings.NotFoundError):
        store.retry(10**9)


def test_send_test_and_call(store: tidings.Store, receiver: Receiver) -> None:
    receiver.replies["/access"] = (200, b'{"decision": "allow", "ttl": 60}')
    ep = store.create_endpoint(receiver.url("/access"))
    attempt = store.send_test(ep.id)
    assert (attempt.number, attempt.status_code, attempt.error) == (1, 200, None)
    [test_request] = receiver.wait_for(1)
    assert test_request.json()["type"] == "tidings.test"  # type: ignore[index]
    assert tidings.verify(test_request.body, test_request.headers, ep.secret)["type"] == "tidings.test"

    response = store.call(ep.id, "access.request", {"user": "alice", "door": 3}, timeout=5.0)
    assert response.status == 200
    assert response.json() == {"decision": "allow", "ttl": 60}
    assert isinstance(response.body, bytes) and b"allow" in response.body
    assert response.content_type == "application/json"
    sent = receiver.wait_for(2)[-1]
    assert sent.json()["data"] == {"user": "alice", "door": 3}  # type: ignore[index]
    assert store.read_all() == []  # nothing was stored

    with pytest.raises(tidings.NotFoundError):
        store.call("no-such-endpoint", "access.request", {})
    with pytest.raises(tidings.InvalidInputError):
        store.call(ep.id, "tidings.forbidden", {})


def test_egress_policy_refuses_loopback_by_default(tmp_path: Path, receiver: Receiver) -> None:
    with tidings.Store(tmp_path / "strict.db") as strict:
        # Refused at creation, with the policy's reason ...
        with pytest.raises(tidings.InvalidInputError, match="egress policy") as refused:
            strict.create_endpoint(receiver.url())
        assert refused.value.field == "url"
    # ... and at sending, for an endpoint created under a policy that allowed it.
    with tidings.Store(tmp_path / "strict.db", allow_private=True) as permissive:
        ep = permissive.create_endpoint(receiver.url())
    with tidings.Store(tmp_path / "strict.db") as strict:
        with pytest.raises(tidings.DeliveryError) as info:
            strict.call(ep.id, "access.request", {})
        assert info.value.kind == "egress_refused"
        attempt = strict.send_test(ep.id)
        assert attempt.status_code is None and attempt.error_kind == "egress_refused"
    with tidings.Store(tmp_path / "listed.db", allowed_networks=["127.0.0.0/8"]) as listed:
        ep = listed.create_endpoint(receiver.url())
        assert listed.send_test(ep.id).status_code == 200
    assert receiver.wait_for(1)


def test_rate_stats_and_enforced_limit(tmp_path: Path) -> None:
    rates = [tidings.TenantRate(2, tenant="acme", mode="enforce"), tidings.TenantRate(100)]
    assert (rates[0].per_minute, rates[0].tenant, rates[0].mode) == (2, "acme", "enforce")
    with tidings.Store(tmp_path / "rates.db", tenant_rates=rates) as store:
        with pytest.raises(tidings.RateLimitedError) as info:
            # The meter counts per minute: within five appends the limit of two is hit.
            for i in range(5):
                store.append(f"t-{i}", "a.b", {}, tenant="acme")
        assert (info.value.tenant, info.value.limit) == ("acme", 2)
        stats = store.rate_stats("acme")
        assert (stats["tenant"], stats["limit"], stats["mode"]) == ("acme", 2, "enforce")
        assert 1 <= stats["current"] <= 2
        other = store.rate_stats("globex")
        assert (other["limit"], other["mode"], other["current"], other["warnings"]) == (100, "warn", 0, 0)


def test_engine_stop_is_idempotent_and_dropping_stops_it(store: tidings.Store, receiver: Receiver) -> None:
    store.create_endpoint(receiver.url())
    engine = store.start_delivery()
    store.append("s", "a.b", {})
    assert wait_until(lambda: len(receiver.requests) == 1)
    engine.stop(timeout=5.0)
    engine.stop()
    assert engine.wait_idle(0.1) is False
    assert "running=False" in repr(engine)
    engine = store.start_delivery(workers=1)
    del engine
    with pytest.raises(tidings.InvalidInputError) as info:
        store.start_delivery(workers=0)
    assert info.value.field == "workers"
