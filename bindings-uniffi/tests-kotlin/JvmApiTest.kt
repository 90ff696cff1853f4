// Issue 22, the generated API's side: secrets absent from every string form, integers Java can
// pass (signed, checked), exceptions that say what happened, blocking transactions pinned to
// their thread, `verify` on multi-valued headers. Registered in TidingsTest.kt's `main`.

import dev.tidings.Auth
import dev.tidings.DeliveryOptions
import dev.tidings.EndpointOptions
import dev.tidings.EndpointUpdate
import dev.tidings.ExpectedVersion
import dev.tidings.InboxOptions
import dev.tidings.SqlValue
import dev.tidings.Store
import dev.tidings.StoreOptions
import dev.tidings.TidingsException
import dev.tidings.verify
import dev.tidings.verifySingleValued
import java.time.Instant
import java.util.concurrent.atomic.AtomicReference

/** Runs `block` on a new thread and returns what it threw (or null), waiting at most 30 s. */
fun onAnotherThread(block: () -> Unit): Throwable? {
    val thrown = AtomicReference<Throwable?>(null)
    val thread = Thread { try { block() } catch (e: Throwable) { thrown.set(e) } }
    thread.start()
    thread.join(30_000)
    check(!thread.isAlive) { "the other thread is still running after 30 s" }
    return thrown.get()
}

/** Milliseconds `block` took. */
fun millis(block: () -> Unit): Long {
    val started = System.nanoTime()
    block()
    return (System.nanoTime() - started) / 1_000_000
}

fun recordsNeverPrintSecrets() {
    val secret = "whsec_" + java.util.Base64.getEncoder().encodeToString(ByteArray(32) { 7 })
    val rotatedTo = "whsec_" + java.util.Base64.getEncoder().encodeToString(ByteArray(32) { 9 })
    val token = "tok-8f1e-SECRET"
    val apiKey = "key-77aa-SECRET"
    val basic = "Basic dXNlcjpTRUNSRVQ="
    val urlToken = "qtoken-SECRET"
    val seed = "SUAM-nkey-seed-SECRET"
    val creds = "-----BEGIN NATS USER JWT-----\neyJ-jwt-SECRET\n------END NATS USER JWT------\n" +
        "-----BEGIN USER NKEY SEED-----\n$seed\n------END USER NKEY SEED------\n"
    val hidden = listOf(secret, rotatedTo, token, apiKey, basic, urlToken, secret.removePrefix("whsec_"), creds, seed)
    Receiver().use { receiver ->
        openStore().use { store ->
            val options = EndpointOptions(
                secret = secret, auth = Auth.Bearer(token), headers = mapOf("Authorization-Extra" to basic),
                name = "Orders",
            )
            val ep = store.createEndpoint("${receiver.url}?token=$urlToken", options)
            checkEq(ep.secret, secret, "the secret is there to read explicitly")
            checkEq(ep.auth, Auth.Bearer(token), "so is the auth value")
            val second = store.createEndpoint(receiver.url, EndpointOptions(auth = Auth.ApiKey("X-Api-Key", apiKey)))
            store.append("order-1", "order.created", "{}")
            val shown = mutableListOf<String>()
            fun show(vararg values: Any?) = values.forEach { shown += it.toString(); shown += "$it" }
            show(ep, second, options, store.getEndpoint(ep.id), store.listEndpoints(), store.rotateSecret(ep.id, rotatedTo))
            show(store.updateEndpoint(ep.id, EndpointUpdate(auth = Auth.ApiKey("X-Api-Key", apiKey), headers = mapOf("A" to basic))))
            show(EndpointUpdate(url = "https://example.com/h?token=$urlToken", auth = Auth.Bearer(token)))
            show(Auth.Bearer(token), Auth.ApiKey("X-Api-Key", apiKey), store.disableEndpoint(ep.id), store.enableEndpoint(ep.id))
            val bus = store.createEndpoint("nats://127.0.0.1:4222", EndpointOptions(auth = Auth.NatsCredentials(creds), subject = "app.{type}"))
            checkEq(bus.auth, Auth.NatsCredentials(creds), "so are NATS credentials")
            show(bus, Auth.NatsCredentials(creds), EndpointUpdate(auth = Auth.NatsCredentials(creds), subject = "b.{type}"))
            show(InboxOptions("nats://u:$token@127.0.0.1:4222", "EVENTS", "app", auth = Auth.NatsCredentials(creds)))
            show(store.deliveries(), store.stats(), store.readAll(), store.sendTest(second.id), store.readStream("tidings.endpoint.${ep.id}"))
            val declared = EndpointOptions(name = "declared", secret = secret, auth = Auth.Bearer(token))
            val first = store.upsertEndpoint(receiver.url, declared)
            val again = store.upsertEndpoint(receiver.url, declared.copy(maxAttempts = 3))
            checkEq(first.created to again.created, true to false, "created, then brought to the new settings")
            checkEq(again.endpoint.id, first.endpoint.id, "the same endpoint")
            checkEq(again.endpoint.maxAttempts, 3L, "updated")
            show(first, again)
            store.saveSnapshot("order-1", 1, """{"n": 1}""")
            show(store.call(second.id, "access.request", "{}"), store.rateStats("t"), store.loadSnapshot("order-1"))
            store.begin().use { tx -> show(tx) }
            store.startDelivery(DeliveryOptions(workers = 1)).use { engine -> show(engine, store, DeliveryOptions()) }
            check("created=true" in first.toString() && "secret=<redacted>" in first.toString()) { "$first" }
            val unnamed = assertThrows<TidingsException.InvalidInput> { store.upsertEndpoint(receiver.url, EndpointOptions()) }
            checkEq(unnamed.field, "name", "upsert needs a name")
            val invalid = assertThrows<TidingsException.InvalidInput> {
                store.createEndpoint(receiver.url, EndpointOptions(secret = "whsec_$token!"))
            }
            show(invalid, invalid.message)
            for (text in shown) {
                for (value in hidden) check(value !in text) { "a secret in a string form: $text" }
            }
            val printed = ep.toString()
            check(printed.startsWith("Endpoint(id=${ep.id}") && "secret=<redacted>" in printed) { printed }
            check("auth=Bearer(token=<redacted>)" in printed && "Authorization-Extra=<redacted>" in printed) { printed }
            check("token=redacted" in printed && "name=Orders" in printed) { "the URL's query value is redacted: $printed" }
        }
    }
}

fun integersAreSignedAndChecked() {
    openStore().use { store ->
        store.append("s", "a.b", "{}")
        val refused: List<Pair<String, () -> Unit>> = listOf(
            "limit" to { store.readStream("s", limit = -1) },
            "from_version" to { store.readStream("s", fromVersion = -2) },
            "from_position" to { store.readAll(fromPosition = -1) },
            "expected_version" to { store.append("s", "a.b", "{}", expectedVersion = ExpectedVersion.Exact(-1)) },
            "position" to { store.setCheckpoint("c", -5) },
            "limit" to { store.deliveries(limit = -1) },
            "id" to { store.delivery(-1) },
            "workers" to { store.startDelivery(DeliveryOptions(workers = -1)).close() },
            "max_attempts" to { store.createEndpoint("https://example.com/h", EndpointOptions(maxAttempts = -3)) },
            "max_attempts" to { store.createEndpoint("https://example.com/h", EndpointOptions(maxAttempts = 1L shl 40)) },
            "final_statuses" to { store.createEndpoint("https://example.com/h", EndpointOptions(finalStatuses = listOf(70000))) },
            "max_event_size" to { Store.openInMemory(StoreOptions(maxEventSize = -1)).close() },
        )
        for ((field, call) in refused) {
            val e = assertThrows<TidingsException.InvalidInput> { call() }
            checkEq(e.field, field, "the argument named by ${e.message}")
        }
        checkEq(store.streamVersion("s"), 1L, "nothing written by the refused calls")
    }
    // What Java sees: no JVM name mangled by an unsigned (inline class) type, and a plain
    // constructor for every record.
    val classes = listOf(
        "Store", "Transaction", "DeliveryEngine", "Event", "DeliveryRecord", "Attempt", "Endpoint", "EndpointOptions",
        "EndpointUpdate", "DeliveryOptions", "StoreOptions", "Stats", "EndpointStats", "RateStats", "Snapshot",
        "TenantRate", "RetentionRule", "Verified", "Response", "NewEvent", "ExpectedVersion\$Exact",
        "TidingsException\$Concurrency", "TidingsException\$RateLimited", "Tidings_uniffiKt",
    ).map { Class.forName("dev.tidings.$it") }
    for (cls in classes) {
        val mangled = cls.methods.map { it.name }.filter { '-' in it }
        checkEq(mangled, emptyList<String>(), "mangled JVM names in ${cls.simpleName}")
        val unsigned = cls.methods.flatMap { m -> m.parameterTypes.toList() + m.returnType }
            .filter { it.name.startsWith("kotlin.U") }
        checkEq(unsigned, emptyList<Class<*>>(), "unsigned types in ${cls.simpleName}")
    }
    for (cls in classes.filter { it.simpleName !in setOf("Store", "Transaction", "DeliveryEngine", "Tidings_uniffiKt") }) {
        val plain = cls.constructors.filter { c -> !c.isSynthetic && c.parameterTypes.none { it.name.endsWith("DefaultConstructorMarker") } }
        check(plain.isNotEmpty()) { "${cls.simpleName} has no constructor Java can call" }
    }
}

fun exceptionsSayWhatHappened() {
    openStore().use { store ->
        store.appendEvents("order-7", List(2) { dev.tidings.NewEvent("order.created", "{}") })
        val conflict = assertThrows<TidingsException.Concurrency> {
            store.append("order-7", "order.shipped", "{}", expectedVersion = ExpectedVersion.Exact(1))
        }
        val expected: ExpectedVersion = conflict.expected // not nullable
        checkEq(expected, ExpectedVersion.Exact(1), "expected")
        checkEq(conflict.message, "stream=order-7, expected=version 1, actual=2", "message")
        checkEq(conflict.toString(), "concurrency conflict on stream \"order-7\": expected version 1, actual version 2", "core's words")
        checkEq(ExpectedVersion.NoStream.toString(), "no stream", "NoStream reads")
        checkEq("${ExpectedVersion.StreamExists}", "an existing stream", "StreamExists reads")

        val tx = store.begin()
        val open = assertThrows<TidingsException.TransactionOpen> { store.append("s", "a.b", "{}") }
        checkEq(open.toString(), "this thread already holds an open transaction on this store; use it instead", "TransactionOpen")
        check(open.message!!.startsWith("reason=this thread already holds")) { "message: ${open.message}" }
        tx.commit()
        val ended = assertThrows<TidingsException.Closed> { tx.execute("SELECT 1") }
        check(ended.message!!.contains("committed or rolled back")) { "message: ${ended.message}" }

        store.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, ref TEXT UNIQUE)")
        store.begin().use { t ->
            t.execute("INSERT INTO orders (id, ref) VALUES (1, 'A-1')")
            val dup = assertThrows<TidingsException.Integrity> { t.execute("INSERT INTO orders (id, ref) VALUES (2, 'A-1')") }
            checkEq(dup.code, 2067, "SQLITE_CONSTRAINT_UNIQUE")
            checkEq(dup.constraint, "orders.ref", "constraint")
            checkEq(dup.toString(), "integrity error: UNIQUE constraint failed: orders.ref", "core's words")
            t.execute("INSERT INTO orders (id, ref) VALUES (2, 'A-2')") // still usable
            t.commit()
        }
        checkEq(countRows(store, "SELECT count(*) FROM orders"), 2L, "the rows around the refused one")

        val memory = assertThrows<TidingsException.InvalidInput> { Store(":memory:") }
        checkEq(memory.field, "path", "field")
        check("openInMemory()" in memory.reason) { "points to openInMemory: ${memory.reason}" }
        // Core refuses an empty list of secrets as input, before any header is read.
        val noSecrets = assertThrows<TidingsException.InvalidInput> { verify(ByteArray(0), emptyMap(), emptyList()) }
        checkEq(noSecrets.field, "secrets", "field")
    }
    val path = freshPath()
    Store(path, StoreOptions(busyTimeout = 0.2)).use { store ->
        store.append("s", "a.b", "{}")
        store.begin().use { tx ->
            tx.append("s", "a.b", "{}")
            val thrown = onAnotherThread { store.append("s", "a.b", "{}") }
            val busy = thrown as? TidingsException.Busy ?: throw AssertionError("another thread's write: $thrown")
            checkEq(busy.toString(), "the database is busy (locked past the busy timeout)", "Busy")
            check(busy.message!!.isNotEmpty()) { "an empty message" }
            tx.rollback()
        }
    }
}

fun beginIsPinnedToItsThread() {
    openStore().use { store -> // busyTimeout: the default 5 s
        val tx = store.begin()
        tx.append("pinned", "a.b", "{}")
        var elsewhere: Throwable? = null
        val tookMs = millis { elsewhere = onAnotherThread { tx.append("pinned", "a.b", "{}") } }
        check(elsewhere is TidingsException.WrongThread) { "used from another thread: $elsewhere" }
        check(tookMs < 1_000) { "WrongThread took $tookMs ms" }
        checkEq(
            elsewhere.toString(),
            "this transaction belongs to the thread that began it and was used from another thread",
            "WrongThread",
        )
        val commitElsewhere = onAnotherThread { tx.commit() }
        check(commitElsewhere is TidingsException.WrongThread) { "commit from another thread: $commitElsewhere" }
        check(tx.isOpen()) { "a refused commit leaves the transaction open" }
        // The thread that began it is not left waiting for the writer it holds.
        val ownMs = millis { assertThrows<TidingsException.TransactionOpen> { store.append("other", "a.b", "{}") } }
        check(ownMs < 1_000) { "TransactionOpen took $ownMs ms (the busy timeout is 5 s)" }
        tx.commit()
        checkEq(store.streamVersion("pinned"), 1L, "only the owner's append")
    }
}

fun aTransactionLeftOpenByAThreadThatEndsIsRolledBack() {
    openStore().use { store ->
        val leaked = AtomicReference<dev.tidings.Transaction?>(null)
        val thrown = onAnotherThread {
            val tx = store.begin()
            tx.append("leaked", "a.b", "{}")
            leaked.set(tx) // the thread ends without commit, rollback or close
        }
        checkEq(thrown, null, "the leaking thread")
        val tx = leaked.get() ?: throw AssertionError("no transaction")
        val writeMs = millis { store.append("after", "a.b", "{}") }
        check(writeMs < 1_000) { "the writer was held for $writeMs ms after its thread ended" }
        checkEq(tx.isOpen(), false, "rolled back at its thread's exit")
        assertThrows<TidingsException.Closed> { tx.execute("SELECT 1") }
        checkEq(store.streamVersion("leaked"), null, "the leaked append")
        tx.close()
    }
}

fun verifyTakesMultiValuedHeadersAndReturnsThePayload() {
    val secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
    val body = """{"b":1,"a":"é/x"}"""
    val now = Instant.now().epochSecond
    val signature = standardSignature(secret, "msg_1", now.toString(), body.toByteArray())
    val headers = mapOf(
        "Webhook-Id" to listOf("msg_1"),
        "Webhook-Timestamp" to listOf(now.toString()),
        "Webhook-Signature" to listOf("v1,AAAA $signature"),
        "Accept" to listOf("application/json", "text/plain"),
    )
    val verified = verify(body.toByteArray(), headers, listOf(secret))
    checkEq(verified.id, "msg_1", "id")
    checkEq(verified.timestamp, Instant.ofEpochSecond(now), "timestamp as an Instant")
    checkEq(verified.payload, body, "the payload as received, key order kept")
    val single = verifySingleValued(body.toByteArray(), headers.mapValues { it.value.first() }, listOf(secret))
    checkEq(single, verified, "the single-valued form")
    val notJson = "plain".toByteArray()
    val signedText = mapOf(
        "webhook-id" to listOf("msg_2"), "webhook-timestamp" to listOf(now.toString()),
        "webhook-signature" to listOf(standardSignature(secret, "msg_2", now.toString(), notJson)),
    )
    val e = assertThrows<TidingsException.InvalidInput> { verify(notJson, signedText, listOf(secret)) }
    checkEq(e.field, "body", "a signed body that is not JSON")
}

fun jsonCrossesAsText() {
    Store.openInMemory().use { store ->
        val event = store.append("j", "a.b", """{"b": 1, "a": "é/x", "n": 1.50}""")
        checkEq(event.data, """{"a":"é/x","b":1,"n":1.5}""", "compact, keys sorted, UTF-8 kept, numbers normalised")
        val bad = assertThrows<TidingsException.InvalidInput> { store.append("j", "a.b", "{'single': 1}") }
        checkEq(bad.field, "data", "field")
        check(bad.reason.startsWith("not valid JSON: ") && "line 1 column 2" in bad.reason) { "reason: ${bad.reason}" }
        store.execute("CREATE TABLE t (x)")
        checkEq(store.query("SELECT 1").single(), listOf<SqlValue>(SqlValue.Integer(1)), "query")
    }
}
