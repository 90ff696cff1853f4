// Kotlin tests of the uniffi bindings, run on the JVM by .ci/test-kotlin (no Gradle, no JUnit):
// `main` runs every test in its own thread with a time limit and ends with "N passed, M failed".

import com.sun.net.httpserver.HttpServer
import dev.tidings.CircuitState
import dev.tidings.DeliveryEngine
import dev.tidings.DeliveryOptions
import dev.tidings.DeliveryState
import dev.tidings.EndpointOptions
import dev.tidings.EndpointUpdate
import dev.tidings.ExpectedVersion
import dev.tidings.NewEvent
import dev.tidings.SignatureFailure
import dev.tidings.SqlValue
import dev.tidings.Store
import dev.tidings.StoreOptions
import dev.tidings.TidingsException
import dev.tidings.verify
import java.io.File
import java.net.InetSocketAddress
import java.nio.file.Files
import java.time.Duration
import java.time.Instant
import java.util.Base64
import java.util.concurrent.ConcurrentLinkedQueue
import java.util.concurrent.CountDownLatch
import java.util.concurrent.Executors
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicInteger
import java.util.concurrent.atomic.AtomicReference
import javax.crypto.Mac
import javax.crypto.spec.SecretKeySpec
import kotlin.system.exitProcess

// ---------------------------------------------------------------------------------------------
// A tiny harness

val tempRoot: File = Files.createTempDirectory("tidings-kotlin").toFile()
var dbCounter = 0

/** Runs each test on its own thread with a time limit; prints "N passed, M failed"; returns M. */
fun runSuite(tests: List<Pair<String, () -> Unit>>): Int {
    var passed = 0
    var failed = 0
    for ((name, test) in tests) {
        var error: Throwable? = null
        val started = System.nanoTime()
        val runner = Thread({ try { test() } catch (e: Throwable) { error = e } }, "test: $name")
        runner.isDaemon = true
        runner.start()
        runner.join(120_000)
        val ms = (System.nanoTime() - started) / 1_000_000
        when {
            runner.isAlive -> { failed++; println("FAIL $name: timed out after $ms ms") }
            error != null -> { failed++; println("FAIL $name ($ms ms): $error"); error!!.printStackTrace(System.out) }
            else -> { passed++; println("ok   $name ($ms ms)") }
        }
    }
    println("$passed passed, $failed failed")
    return failed
}

/** A fresh database path in the suite's temp folder. */
fun freshPath(): String = File(tempRoot, "test-${++dbCounter}.db").path

fun check(condition: Boolean, what: () -> String) {
    if (!condition) throw AssertionError(what())
}

fun <T> checkEq(actual: T, expected: T, what: String) =
    check(actual == expected) { "$what: expected <$expected>, got <$actual>" }

inline fun <reified E : Throwable> assertThrows(block: () -> Unit): E {
    try {
        block()
    } catch (e: Throwable) {
        if (e is E) return e
        throw AssertionError("expected ${E::class.simpleName}, got $e", e)
    }
    throw AssertionError("expected ${E::class.simpleName}, nothing was thrown")
}

/** A store on a file, with loopback allowed so deliveries can reach the test's receiver. */
fun openStore(path: String = freshPath(), allowPrivate: Boolean = true): Store =
    Store(path, StoreOptions(source = "kotlin-test", allowPrivate = allowPrivate))

fun countRows(store: Store, sql: String): Long =
    (store.query(sql).single().single() as SqlValue.Integer).value

// ---------------------------------------------------------------------------------------------
// A webhook receiver inside the test: the JDK's HttpServer on 127.0.0.1

/** A request as received: `headers` lower-cased with their first values, `all` as the server has them. */
class Received(val headers: Map<String, String>, val all: Map<String, List<String>>, val body: ByteArray)

/** What a scripted receiver answers: a status and extra response headers. */
class Answer(val status: Int, val headers: Map<String, String> = emptyMap())

/**
 * Answers every request with `status` and `answer`, or, given a `script`, with what the script
 * returns for the request's number (1, 2, ... in order of arrival).
 */
class Receiver(
    private val status: Int = 200,
    private val answer: String = "",
    private val script: ((Int) -> Answer)? = null,
) : AutoCloseable {
    val requests = ConcurrentLinkedQueue<Received>()
    @Volatile var arrived = CountDownLatch(0)
    private val numbered = AtomicInteger(0)
    private val pool = Executors.newFixedThreadPool(4)
    private val server: HttpServer = HttpServer.create(InetSocketAddress("127.0.0.1", 0), 0)

    init {
        server.executor = pool
        server.createContext("/hook") { exchange ->
            val body = exchange.requestBody.readAllBytes()
            val headers = exchange.requestHeaders.entries.associate { (k, v) -> k.lowercase() to v.first() }
            requests.add(Received(headers, exchange.requestHeaders.toMap(), body))
            val scripted = script?.invoke(numbered.incrementAndGet()) ?: Answer(status)
            val reply = answer.toByteArray()
            exchange.responseHeaders.add("content-type", "application/json")
            for ((name, value) in scripted.headers) exchange.responseHeaders.add(name, value)
            exchange.sendResponseHeaders(scripted.status, if (reply.isEmpty()) -1 else reply.size.toLong())
            if (reply.isNotEmpty()) exchange.responseBody.use { it.write(reply) }
            exchange.close()
            arrived.countDown()
        }
        server.start()
    }

    val url: String get() = "http://127.0.0.1:${server.address.port}/hook"

    fun expect(n: Int) {
        arrived = CountDownLatch(n)
    }

    override fun close() {
        server.stop(0)
        pool.shutdownNow()
    }
}

/** Polls `condition` every 20 ms until it holds or `seconds` passed; returns whether it held. */
fun waitUntil(seconds: Double, condition: () -> Boolean): Boolean {
    val deadline = System.nanoTime() + (seconds * 1e9).toLong()
    while (System.nanoTime() < deadline) {
        if (condition()) return true
        Thread.sleep(20)
    }
    return condition()
}

/** The circuit events (`tidings.endpoint.circuit_*`) of an endpoint's system stream, in order. */
fun circuitEvents(store: Store, endpointId: String): List<String> =
    store.readStream("tidings.endpoint.$endpointId").map { it.eventType }.filter { it.startsWith("tidings.endpoint.circuit_") }

/** The Standard Webhooks v1 signature, computed here with javax.crypto (not by tidings). */
fun standardSignature(secret: String, id: String, timestamp: String, body: ByteArray): String {
    val key = Base64.getDecoder().decode(secret.removePrefix("whsec_"))
    val mac = Mac.getInstance("HmacSHA256")
    mac.init(SecretKeySpec(key, "HmacSHA256"))
    mac.update("$id.$timestamp.".toByteArray(Charsets.UTF_8))
    mac.update(body)
    return "v1," + Base64.getEncoder().encodeToString(mac.doFinal())
}

// ---------------------------------------------------------------------------------------------
// Tests

fun signatureHelperMatchesTheStandardVector() {
    val sig = standardSignature(
        "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
        "1649367553",
        """{"email":"test@example.com","username":"test_user"}""".toByteArray(),
    )
    checkEq(sig, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=", "test vector")
}

fun transactionCommitsAppRowsAndEventsTogether() {
    openStore().use { store ->
        store.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, total REAL)")
        store.begin().use { tx ->
            tx.execute("INSERT INTO orders (id, total) VALUES (?, ?)", listOf(SqlValue.Integer(42), SqlValue.Real(9.99)))
            val seen = tx.query("SELECT total FROM orders WHERE id = ?", listOf(SqlValue.Integer(42)))
            checkEq(seen, listOf(listOf<SqlValue>(SqlValue.Real(9.99))), "row seen inside the transaction")
            val ev = tx.append("order-42", "order.created", """{"total": 9.99}""",
                expectedVersion = ExpectedVersion.NoStream, metadata = """{"actor": "alice"}""")
            checkEq(ev.version, 1L, "version")
            checkEq(ev.stream, "order-42", "stream")
            tx.setCheckpoint("projector", ev.position)
            tx.commit()
            check(!tx.isOpen()) { "committed transaction still open" }
            assertThrows<TidingsException.Closed> { tx.execute("SELECT 1") }
        }
        checkEq(countRows(store, "SELECT count(*) FROM orders"), 1L, "app rows")
        val events = store.readStream("order-42")
        checkEq(events.size, 1, "events")
        checkEq(events[0].eventType, "order.created", "type")
        checkEq(events[0].data, """{"total":9.99}""", "data as JSON text")
        checkEq(events[0].metadata, """{"actor":"alice"}""", "metadata as JSON text")
        checkEq(store.streamVersion("order-42"), 1L, "stream version")
        checkEq(store.checkpoint("projector"), events[0].position, "checkpoint")
        checkEq(store.readAll(fromPosition = 1L, types = listOf("order.*")).map { it.id }, listOf(events[0].id), "readAll")
    }
}

fun rolledBackTransactionLeavesNothing() {
    openStore().use { store ->
        store.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
        // Explicit rollback.
        store.begin().use { tx ->
            tx.execute("INSERT INTO orders (id) VALUES (1)")
            tx.append("order-1", "order.created", "{}")
            tx.rollback()
        }
        // An exception inside use {}: close() rolls back.
        val boom = assertThrows<IllegalStateException> {
            store.begin().use { tx ->
                tx.execute("INSERT INTO orders (id) VALUES (2)")
                tx.append("order-2", "order.created", "{}")
                throw IllegalStateException("boom")
            }
        }
        checkEq(boom.message, "boom", "the app's exception propagates")
        checkEq(countRows(store, "SELECT count(*) FROM orders"), 0L, "app rows after rollback")
        checkEq(store.streamVersion("order-1"), null, "stream after rollback")
        checkEq(store.streamVersion("order-2"), null, "stream after close")
        checkEq(store.lastPosition(), 0L, "log after rollback")
        checkEq(store.deliveries().size, 0, "outbox after rollback")
    }
}

fun concurrencyConflictCarriesTheActualVersion() {
    openStore().use { store ->
        store.appendEvents("order-7", listOf(NewEvent("order.created", "{}"), NewEvent("order.paid", "{}")))
        val e = assertThrows<TidingsException.Concurrency> {
            store.append("order-7", "order.shipped", "{}", expectedVersion = ExpectedVersion.Exact(1L))
        }
        checkEq(e.stream, "order-7", "stream")
        checkEq(e.actual, 2L, "actual version")
        checkEq(e.expected, ExpectedVersion.Exact(1L), "expected version")
        check(e.message!!.contains("actual=2")) { "message: ${e.message}" }
        // The sealed class lets callers branch on the kind.
        val caught: TidingsException = e
        val kind = when (caught) {
            is TidingsException.Concurrency -> "concurrency"
            else -> "other"
        }
        checkEq(kind, "concurrency", "sealed branch")
        assertThrows<TidingsException.Concurrency> {
            store.append("order-7", "order.created", "{}", expectedVersion = ExpectedVersion.NoStream)
        }
        checkEq(store.streamVersion("order-7"), 2L, "nothing written by the conflicts")
        store.append("order-7", "order.shipped", "{}", expectedVersion = ExpectedVersion.Exact(2L))
        checkEq(store.streamVersion("order-7"), 3L, "append at the right version")
    }
}

fun invalidInputIsItsOwnExceptionAndChangesNothing() {
    openStore().use { store ->
        store.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
        val bad = assertThrows<TidingsException.InvalidInput> { store.append("s", "order.created", "{not json") }
        checkEq(bad.field, "data", "field of invalid JSON")
        val meta = assertThrows<TidingsException.InvalidInput> { store.append("s", "order.created", "{}", metadata = "[1]") }
        checkEq(meta.field, "metadata", "field of non-object metadata")
        val reserved = assertThrows<TidingsException.InvalidInput> { store.append("s", "tidings.hack", "{}") }
        checkEq(reserved.field, "type", "reserved type")
        val url = assertThrows<TidingsException.InvalidInput> { store.createEndpoint("ftp://example.com/x") }
        check(url.field.isNotEmpty()) { "invalid url names a field" }
        val timeout = assertThrows<TidingsException.InvalidInput> {
            store.createEndpoint("https://example.com/x", EndpointOptions(timeout = -1.0))
        }
        checkEq(timeout.field, "timeout", "negative seconds")
        // Inside a transaction, the failed append leaves the transaction usable.
        store.begin().use { tx ->
            tx.execute("INSERT INTO orders (id) VALUES (1)")
            assertThrows<TidingsException.InvalidInput> { tx.append("s", "order.created", "nope") }
            tx.append("s", "order.created", "{}")
            tx.commit()
        }
        checkEq(store.lastPosition(), 1L, "only the valid event was written")
        checkEq(store.listEndpoints().size, 0, "no endpoint created")
        assertThrows<TidingsException.NotFound> { store.getEndpoint("00000000-0000-0000-0000-000000000000") }
    }
}

fun aFileThatIsNotATidingsStoreIsRefusedAndLeftAlone() {
    val text = File(freshPath())
    text.writeText("plain text, long enough to be read as a database header\n")
    val e = assertThrows<TidingsException.Incompatible> { Store(text.path, StoreOptions()) }
    checkEq(e.found, null, "no schema version in a text file")
    check(e.supported > 0L) { "the library's schema version: ${e.supported}" }
    checkEq(text.readText(), "plain text, long enough to be read as a database header\n", "the file is unchanged")
}

fun secondTransactionOnOneThreadIsRefused() {
    openStore().use { store ->
        store.begin().use { tx ->
            assertThrows<TidingsException.TransactionOpen> { store.append("s", "a.b", "{}") }
            tx.append("s", "a.b", "{}")
            tx.commit()
        }
        checkEq(store.streamVersion("s"), 1L, "the transaction's append")
    }
}

fun sqlValuesRoundTrip() {
    Store.openInMemory().use { store ->
        store.execute("CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n)")
        val values = listOf(
            SqlValue.Integer(Long.MIN_VALUE), SqlValue.Real(-0.5), SqlValue.Text("héllo"),
            SqlValue.Blob(byteArrayOf(0, 1, -1)), SqlValue.Null,
        )
        checkEq(store.execute("INSERT INTO t VALUES (?, ?, ?, ?, ?)", values), 1L, "rows changed")
        val row = store.query("SELECT i, r, s, b, n FROM t").single()
        checkEq(row[0], values[0], "integer")
        checkEq(row[1], values[1], "real")
        checkEq(row[2], values[2], "text")
        check((row[3] as SqlValue.Blob).value.contentEquals(byteArrayOf(0, 1, -1))) { "blob" }
        checkEq(row[4], SqlValue.Null, "null")
    }
}

fun endpointsCanBeManaged() {
    openStore().use { store ->
        val ep = store.createEndpoint("https://example.com/orders",
            EndpointOptions(events = listOf("order.*"), name = "Orders", rateLimit = 10.0, headers = mapOf("X-Team" to "a")))
        check(ep.secret.startsWith("whsec_")) { "a secret is generated" }
        checkEq(ep.events, listOf("order.*"), "events")
        checkEq(ep.timeout, 15.0, "default timeout")
        checkEq(ep.maxAttempts, 12L, "default attempts")
        checkEq(ep.enabled, true, "enabled")
        checkEq(store.getEndpoint(ep.id).name, "Orders", "get")
        checkEq(store.listEndpoints().map { it.id }, listOf(ep.id), "list")
        val changed = store.updateEndpoint(ep.id, EndpointUpdate(maxAttempts = 3L, clear = listOf("rateLimit", "name")))
        checkEq(changed.maxAttempts, 3L, "updated attempts")
        checkEq(changed.rateLimit, null, "cleared rate limit")
        checkEq(changed.name, null, "cleared name")
        checkEq(changed.headers, mapOf("X-Team" to "a"), "headers kept")
        val rotated = store.rotateSecret(ep.id)
        check(rotated.secret != ep.secret) { "rotated secret differs" }
        val disabled = store.disableEndpoint(ep.id, reason = "maintenance")
        checkEq(disabled.enabled, false, "disabled")
        checkEq(disabled.disabledReason, "maintenance", "reason")
        checkEq(store.enableEndpoint(ep.id).enabled, true, "enabled again")
        store.deleteEndpoint(ep.id)
        val gone = assertThrows<TidingsException.NotFound> { store.getEndpoint(ep.id) }
        checkEq(gone.kind, "endpoint", "not found kind")
    }
}

fun signedDeliveriesArriveAndVerify() {
    Receiver().use { receiver ->
        openStore().use { store ->
            store.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, total REAL)")
            val ep = store.createEndpoint(receiver.url, EndpointOptions(events = listOf("order.*"), jitter = 0.0))
            receiver.expect(3)
            store.begin().use { tx ->
                tx.execute("INSERT INTO orders (id, total) VALUES (?, ?)", listOf(SqlValue.Integer(42), SqlValue.Real(9.99)))
                tx.append("order-42", "order.created", """{"total": 9.99}""")
                tx.append("order-42", "order.paid", """{"total": 9.99}""")
                tx.append("invoice-1", "invoice.created", "{}") // not matched by order.*
                tx.append("order-42", "order.shipped", "{}")
                tx.commit()
            }
            checkEq(store.deliveries(endpointId = ep.id).size, 3, "outbox rows, one per matching event")
            val counts = store.deliveryCounts(endpointId = ep.id)
            checkEq(counts.keys, DeliveryState.values().map { it.name.lowercase() }.toSet(), "every state counted")
            checkEq(counts.filterValues { it != 0L }, mapOf("pending" to 3L), "counts before sending")
            store.startDelivery(DeliveryOptions(workers = 4L)).use { delivery ->
                check(receiver.arrived.await(30, TimeUnit.SECONDS)) { "only ${receiver.requests.size} of 3 requests arrived" }
                check(delivery.waitIdle(10.0)) { "delivery did not become idle" }
                val sent = store.deliveries(endpointId = ep.id)
                check(sent.all { it.state == DeliveryState.SUCCEEDED }) { "states: ${sent.map { it.state }}" }
                checkEq(store.attempts(sent[0].id).single().statusCode, 200, "attempt status")
                delivery.shutdown(5.0)
                check(!delivery.isRunning()) { "still running after shutdown" }
                checkEq(delivery.waitIdle(0.1), false, "waitIdle after shutdown")
                delivery.shutdown(5.0) // twice is fine
            }
            val ids = store.readAll().associateBy { it.id }
            checkEq(receiver.requests.size, 3, "requests")
            for (req in receiver.requests) {
                val id = req.headers.getValue("webhook-id")
                val ts = req.headers.getValue("webhook-timestamp")
                val expected = standardSignature(ep.secret, id, ts, req.body)
                val offered = req.headers.getValue("webhook-signature").split(" ")
                check(expected in offered) { "signature $offered does not contain $expected" }
                checkEq(req.headers["content-type"], "application/json", "content type")
                val body = String(req.body, Charsets.UTF_8)
                val event = ids.getValue(id)
                check(body.contains("\"type\":\"${event.eventType}\"")) { "body names its type: $body" }
                check(body.contains("\"source\":\"kotlin-test\"")) { "body names the source: $body" }
                check(event.eventType.startsWith("order.")) { "only order events were sent" }
                // And the binding's own verify agrees.
                val verified = verify(req.body, req.all, listOf(ep.secret))
                checkEq(verified.id, id, "verified id")
                checkEq(verified.timestamp.epochSecond.toString(), ts, "verified timestamp")
                checkEq(verified.payload, body, "verified payload")
            }
            val tampered = receiver.requests.first()
            val e = assertThrows<TidingsException.Signature> {
                verify(tampered.body + ' '.code.toByte(), tampered.all, listOf(ep.secret))
            }
            checkEq(e.failure, SignatureFailure.NO_MATCH, "tampered body")
            val stats = store.stats()
            checkEq(stats.byState["succeeded"], 3L, "stats")
        }
    }
}

fun synchronousCallAndSendTest() {
    Receiver(answer = """{"allow": true}""").use { receiver ->
        openStore().use { store ->
            val ep = store.createEndpoint(receiver.url)
            val response = store.call(ep.id, "access.request", """{"user": "alice"}""", timeout = 5.0)
            checkEq(response.status, 200, "call status")
            checkEq(String(response.body, Charsets.UTF_8), """{"allow": true}""", "call body")
            val attempt = store.sendTest(ep.id)
            checkEq(attempt.statusCode, 200, "send test status")
            checkEq(receiver.requests.size, 2, "requests")
            checkEq(store.lastPosition(), 0L, "nothing stored")
        }
        // The default egress policy refuses loopback: at creation, and at every send (an
        // endpoint made under a policy that allowed it, here another store on the same file).
        val path = freshPath()
        val made = openStore(path).use { it.createEndpoint(receiver.url) }
        openStore(path, allowPrivate = false).use { store ->
            val refused = assertThrows<TidingsException.InvalidInput> { store.createEndpoint(receiver.url) }
            checkEq(refused.field, "url", "refused at creation")
            val e = assertThrows<TidingsException.Delivery> { store.call(made.id, "access.request", "{}") }
            checkEq(e.kind, "egress_refused", "refused kind")
            checkEq(store.sendTest(made.id).errorKind, "egress_refused", "send test refused")
        }
        checkEq(receiver.requests.size, 2, "no request got past the egress policy")
    }
}

fun objectsAreAutoCloseable() {
    val path = freshPath()
    val store = openStore(path)
    store.use { it.append("s", "a.b", "{}") }
    assertThrows<TidingsException.Closed> { store.lastPosition() } // released by use {}
    openStore(path).use { reopened ->
        checkEq(reopened.streamVersion("s"), 1L, "data survives reopening")
        val tx = reopened.begin()
        tx.use { it.append("s", "a.b", "{}") } // not committed: close() rolls back and frees the writer
        assertThrows<TidingsException.Closed> { tx.isOpen() }
        reopened.append("s", "a.b", "{}") // the writer is free again on this thread
        checkEq(reopened.streamVersion("s"), 2L, "rolled-back append left no version")
        val delivery: DeliveryEngine = reopened.startDelivery(DeliveryOptions(workers = 1L))
        delivery.use { check(it.isRunning()) { "running" } } // close() stops the engine
        assertThrows<TidingsException.Closed> { delivery.isRunning() }
    }
}

fun aClosedObjectThrowsClosed() {
    // uniffi's close() frees the object and refuses later calls in Kotlin; the bundled
    // uniffi-bindgen makes that refusal the library's own `Closed`, naming the class.
    val memory = Store.openInMemory()
    memory.append("s", "a.b", "{}")
    memory.close()
    val e = assertThrows<TidingsException.Closed> { memory.append("s", "a.b", "{}") }
    checkEq(e.reason, "Store was closed", "reason")
    assertThrows<TidingsException.Closed> { memory.readAll() }
    assertThrows<TidingsException.Closed> { memory.lastPosition() }
    memory.close() // closing twice changes nothing
    assertThrows<TidingsException.Closed> { memory.begin() }

    openStore().use { store ->
        val tx = store.begin()
        tx.append("s", "a.b", "{}")
        tx.close() // rolls back
        val t = assertThrows<TidingsException.Closed> { tx.append("s", "a.b", "{}") }
        checkEq(t.reason, "Transaction was closed", "transaction reason")
        assertThrows<TidingsException.Closed> { tx.commit() }
        checkEq(store.lastPosition(), 0L, "the closed transaction wrote nothing")

        val delivery = store.startDelivery(DeliveryOptions(workers = 1L))
        delivery.close()
        val d = assertThrows<TidingsException.Closed> { delivery.waitIdle(1.0) }
        checkEq(d.reason, "DeliveryEngine was closed", "engine reason")
        assertThrows<TidingsException.Closed> { delivery.isRunning() }
        store.append("s", "a.b", "{}") // the store itself is still open
    }
}

fun drainWaitsForRetriesWhereWaitIdleDoesNot() {
    // 503 with Retry-After: 1 twice, then 200; every request after the third fails the same way.
    val later = Answer(503, mapOf("Retry-After" to "1"))
    Receiver(script = { n -> if (n == 3) Answer(200) else later }).use { receiver ->
        openStore().use { store ->
            val ep = store.createEndpoint(receiver.url, EndpointOptions(jitter = 0.0))
            store.append("order-1", "order.created", "{}")
            store.startDelivery(DeliveryOptions(workers = 2L)).use { delivery ->
                check(delivery.waitIdle(30.0)) { "waitIdle timed out" }
                checkEq(receiver.requests.size, 1, "requests when waitIdle returns (the retry waits a second)")
                checkEq(store.deliveries(endpointId = ep.id).single().state, DeliveryState.RETRYING, "state after waitIdle")

                var started = System.nanoTime()
                check(delivery.drain(30.0)) { "drain timed out" }
                val drainedAfter = Duration.ofNanos(System.nanoTime() - started)
                checkEq(receiver.requests.size, 3, "requests when drain returns")
                check(drainedAfter >= Duration.ofMillis(1500)) { "drain waited two Retry-After seconds, took $drainedAfter" }
                val row = store.deliveries(endpointId = ep.id).single()
                checkEq(row.state, DeliveryState.SUCCEEDED, "state after drain")
                checkEq(store.deliveries(state = DeliveryState.SUCCEEDED).map { it.id }, listOf(row.id), "filtered by state")
                checkEq(store.deliveries(state = DeliveryState.FAILED).size, 0, "none failed")
                checkEq(store.attempts(row.id).map { it.statusCode?.toInt() }, listOf(503, 503, 200), "attempts")

                // A delivery that keeps failing: drain says so when its timeout passes.
                store.append("order-2", "order.created", "{}")
                started = System.nanoTime()
                checkEq(delivery.drain(0.5), false, "drain while a delivery keeps failing")
                val tookMs = (System.nanoTime() - started) / 1_000_000
                check(tookMs >= 500) { "drain(0.5) returned after only $tookMs ms" }
                check(delivery.waitIdle(10.0)) { "waitIdle with a retry waiting" }
                val failing = store.deliveries(endpointId = ep.id).first { it.id != row.id }
                check(failing.state in setOf(DeliveryState.PENDING, DeliveryState.SENDING, DeliveryState.RETRYING)) {
                    "the failing delivery is unfinished: ${failing.state}"
                }
                checkEq(failing.lastStatusCode?.toInt(), 503, "the failing delivery's last status")

                // shutdown on one thread ends a drain blocking on another at once, with false.
                val result = AtomicReference<Boolean?>(null)
                val drainer = Thread { result.set(delivery.drain(60.0)) }
                drainer.start()
                Thread.sleep(300)
                check(drainer.isAlive) { "drain(60.0) returned early: ${result.get()}" }
                started = System.nanoTime()
                delivery.shutdown(1.0)
                drainer.join(10_000)
                val stopMs = (System.nanoTime() - started) / 1_000_000
                check(!drainer.isAlive) { "drain still blocked 10 s after shutdown" }
                checkEq(result.get(), false, "drain interrupted by shutdown")
                check(stopMs < 5_000) { "shutdown waited for the drain: $stopMs ms" }
                checkEq(delivery.drain(5.0), false, "drain after shutdown")
            }
        }
    }
}

fun circuitOpensAfterFailuresInARow() {
    Receiver(status = 500).use { receiver ->
        openStore().use { store ->
            val ep = store.createEndpoint(receiver.url, EndpointOptions(initialDelay = 0.05, multiplier = 1.0, jitter = 0.0))
            for (fresh in listOf(ep, store.getEndpoint(ep.id))) {
                checkEq(fresh.circuit, CircuitState.CLOSED, "a new endpoint's circuit")
                checkEq(fresh.concurrency, 1L, "a new endpoint's concurrency")
                checkEq(fresh.circuitUntil, null, "circuitUntil while closed")
            }
            val fresh = store.stats().endpoints.single { it.endpointId == ep.id }
            checkEq(fresh.circuit to fresh.concurrency, CircuitState.CLOSED to 1L, "stats of a new endpoint")

            store.append("order-1", "order.created", "{}")
            store.startDelivery(DeliveryOptions(workers = 2L, circuitAfter = 2L, circuitCooldown = 60.0)).use { delivery ->
                check(waitUntil(30.0) { store.getEndpoint(ep.id).circuit == CircuitState.OPEN }) {
                    "the circuit did not open: ${store.getEndpoint(ep.id).circuit}, ${receiver.requests.size} requests"
                }
                val opened = store.getEndpoint(ep.id)
                val now = Instant.now()
                val until = opened.circuitUntil ?: throw AssertionError("an open circuit has no circuitUntil")
                check(until.isAfter(now.plusSeconds(50)) && !until.isAfter(now.plusSeconds(61))) {
                    "the probe is due about 60 s after opening: $until, now $now"
                }
                checkEq(opened.consecutiveFailures, 2L, "failures that opened it")
                checkEq(opened.unhealthy, false, "not unhealthy yet (unhealthyAfter = 5)")
                checkEq(opened.concurrency, 1L, "concurrency after failures")
                val stats = store.stats().endpoints.single { it.endpointId == ep.id }
                checkEq(stats.circuit, CircuitState.OPEN, "circuit in stats")
                checkEq(stats.concurrency, 1L, "concurrency in stats")
                checkEq(stats.consecutiveFailures, 2L, "failures in stats")
                // Open: nothing more is sent although the retry is due after 50 ms.
                checkEq(delivery.drain(1.0), false, "drain with an open circuit")
                checkEq(receiver.requests.size, 2, "requests sent (none while open)")
                checkEq(circuitEvents(store, ep.id), listOf("tidings.endpoint.circuit_opened"), "circuit events")
                delivery.shutdown(1.0)
            }
        }
    }
}

fun circuitClosesAfterASuccessfulProbe() {
    Receiver(script = { n -> Answer(if (n <= 2) 500 else 200) }).use { receiver ->
        openStore().use { store ->
            val ep = store.createEndpoint(receiver.url, EndpointOptions(initialDelay = 0.05, multiplier = 1.0, jitter = 0.0))
            store.append("order-1", "order.created", "{}")
            store.startDelivery(DeliveryOptions(workers = 2L, circuitAfter = 2L, circuitCooldown = 0.2)).use { delivery ->
                check(delivery.drain(30.0)) { "drain timed out: ${circuitEvents(store, ep.id)}" }
                checkEq(receiver.requests.size, 3, "two failures and the probe")
                checkEq(
                    circuitEvents(store, ep.id),
                    listOf("tidings.endpoint.circuit_opened", "tidings.endpoint.circuit_half_opened", "tidings.endpoint.circuit_closed"),
                    "circuit events",
                )
                val closed = store.getEndpoint(ep.id)
                checkEq(closed.circuit, CircuitState.CLOSED, "closed by the probe")
                checkEq(closed.circuitUntil, null, "circuitUntil once closed")
                checkEq(closed.concurrency, 1L, "a closed circuit starts again at one request")
                checkEq(closed.consecutiveFailures, 0L, "failures reset")

                // Each success allows one more request in flight, up to maxInFlight (4).
                store.appendEvents("order-2", List(3) { NewEvent("order.created", "{}") })
                check(delivery.drain(30.0)) { "second drain timed out" }
                checkEq(receiver.requests.size, 6, "requests")
                checkEq(store.getEndpoint(ep.id).concurrency, 4L, "concurrency after three more successes")
                checkEq(store.stats().endpoints.single { it.endpointId == ep.id }.concurrency, 4L, "concurrency in stats")
            }
        }
    }
}

fun deliveryOptionsAreChecked() {
    val defaults = DeliveryOptions()
    checkEq(defaults.maxWorkers, null, "default maxWorkers (256, or workers if more)")
    checkEq(defaults.circuitAfter, 5L, "default circuitAfter")
    checkEq(defaults.circuitCooldown, 30.0, "default circuitCooldown")
    openStore().use { store ->
        val refused = listOf(
            DeliveryOptions(workers = 8L, maxWorkers = 4L) to "max_workers",
            DeliveryOptions(maxWorkers = 5000L) to "max_workers",
            DeliveryOptions(circuitAfter = 0L) to "circuit_after",
            DeliveryOptions(circuitCooldown = -1.0) to "circuit_cooldown",
            DeliveryOptions(circuitCooldown = 0.001) to "circuit_cooldown",
        )
        for ((options, field) in refused) {
            val e = assertThrows<TidingsException.InvalidInput> { store.startDelivery(options).close() }
            checkEq(e.field, field, "field refused in $options")
        }
        store.startDelivery(DeliveryOptions(workers = 2L, maxWorkers = 2L, circuitAfter = 1L, circuitCooldown = 0.01)).use {
            check(it.isRunning()) { "maxWorkers = workers is allowed" }
        }
    }
}

fun main() {
    val tests: List<Pair<String, () -> Unit>> = listOf(
        "signature helper matches the Standard Webhooks vector" to ::signatureHelperMatchesTheStandardVector,
        "transaction commits app rows and events together" to ::transactionCommitsAppRowsAndEventsTogether,
        "rolled-back transaction leaves nothing" to ::rolledBackTransactionLeavesNothing,
        "concurrency conflict carries the actual version" to ::concurrencyConflictCarriesTheActualVersion,
        "invalid input is its own exception and changes nothing" to ::invalidInputIsItsOwnExceptionAndChangesNothing,
        "a file that is not a tidings store is refused and left alone" to ::aFileThatIsNotATidingsStoreIsRefusedAndLeftAlone,
        "second transaction on one thread is refused" to ::secondTransactionOnOneThreadIsRefused,
        "SQL values round-trip" to ::sqlValuesRoundTrip,
        "endpoints can be managed" to ::endpointsCanBeManaged,
        "signed deliveries arrive and verify" to ::signedDeliveriesArriveAndVerify,
        "synchronous call and send test obey egress" to ::synchronousCallAndSendTest,
        "objects are AutoCloseable" to ::objectsAreAutoCloseable,
        "a closed Store, Transaction or DeliveryEngine throws Closed" to ::aClosedObjectThrowsClosed,
        "drain waits for retries where waitIdle does not" to ::drainWaitsForRetriesWhereWaitIdleDoesNot,
        "circuit opens after failures in a row" to ::circuitOpensAfterFailuresInARow,
        "circuit closes after a successful probe" to ::circuitClosesAfterASuccessfulProbe,
        "delivery options are checked" to ::deliveryOptionsAreChecked,
        // JvmApiTest.kt (issue 22)
        "records never print secrets" to ::recordsNeverPrintSecrets,
        "integers are signed and checked" to ::integersAreSignedAndChecked,
        "exceptions say what happened" to ::exceptionsSayWhatHappened,
        "begin() is pinned to its thread" to ::beginIsPinnedToItsThread,
        "a transaction left open by a thread that ends is rolled back" to ::aTransactionLeftOpenByAThreadThatEndsIsRolledBack,
        "verify takes multi-valued headers and returns the payload" to ::verifyTakesMultiValuedHeadersAndReturnsThePayload,
        "JSON crosses as text" to ::jsonCrossesAsText,
    )
    val failed = runSuite(tests)
    tempRoot.deleteRecursively()
    System.out.flush()
    exitProcess(if (failed == 0) 0 else 1)
}
