// JetStream from Kotlin, against a real nats-server (installed by .ci/install-nats; the binary is
// $TIDINGS_NATS_SERVER, else .tools/nats/bin/nats-server): endpoints with a subject publish to a
// JetStream stream, and Store.relayIn (the inbox) consumes it into another store exactly once.
// Run on the JVM by .ci/test-kotlin with TidingsTest.kt's helpers (openStore, check, checkEq,
// countRows, runSuite). There is no NATS Java client here, so the test creates the stream and
// reads its message count by speaking the NATS text protocol over a socket (NatsClient).

import dev.tidings.Auth
import dev.tidings.DeliveryOptions
import dev.tidings.DeliveryState
import dev.tidings.EndpointOptions
import dev.tidings.EndpointUpdate
import dev.tidings.InboxOptions
import dev.tidings.SqlValue
import dev.tidings.Store
import dev.tidings.SubscriptionHandler
import dev.tidings.TidingsException
import java.io.BufferedInputStream
import java.io.ByteArrayOutputStream
import java.io.File
import java.net.InetSocketAddress
import java.net.ServerSocket
import java.net.Socket
import java.nio.file.Files
import java.util.concurrent.TimeUnit
import kotlin.system.exitProcess

/** A nats-server with JetStream on a free loopback port and a temporary store directory. */
class NatsServer : AutoCloseable {
    val port: Int = ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress()).use { it.localPort }
    val url = "nats://127.0.0.1:$port"
    private val dir: File = Files.createTempDirectory("tidings-nats").toFile()
    private val process: Process

    init {
        val binary = System.getenv("TIDINGS_NATS_SERVER")?.takeIf { it.isNotBlank() } ?: ".tools/nats/bin/nats-server"
        check(File(binary).canExecute()) { "no nats-server at $binary (run .ci/install-nats or set TIDINGS_NATS_SERVER)" }
        val config = File(dir, "nats.conf")
        val store = File(dir, "jetstream").path.replace("\\", "/")
        config.writeText("listen: \"127.0.0.1:$port\"\njetstream { store_dir: \"$store\" }\n")
        process = ProcessBuilder(binary, "-c", config.path)
            .redirectErrorStream(true)
            .redirectOutput(File(dir, "nats.log"))
            .start()
        val deadline = System.nanoTime() + 15_000_000_000L
        while (true) {
            val up = try {
                Socket().use { it.connect(InetSocketAddress("127.0.0.1", port), 200) }
                true
            } catch (e: java.io.IOException) {
                false
            }
            if (up) break
            if (!process.isAlive || System.nanoTime() > deadline) {
                val log = File(dir, "nats.log").takeIf { it.exists() }?.readText() ?: ""
                close()
                throw IllegalStateException("nats-server did not accept on port $port:\n$log")
            }
            Thread.sleep(50)
        }
    }

    override fun close() {
        process.destroy()
        if (!process.waitFor(5, TimeUnit.SECONDS)) {
            process.destroyForcibly()
            process.waitFor(5, TimeUnit.SECONDS)
        }
        dir.deleteRecursively()
    }
}

/** The NATS text protocol, just enough for JetStream API requests (one at a time). */
class NatsClient(port: Int) : AutoCloseable {
    private val socket = Socket("127.0.0.1", port).apply { soTimeout = 10_000 }
    private val input = BufferedInputStream(socket.getInputStream())
    private val output = socket.getOutputStream()

    init {
        val info = readLine()
        check(info.startsWith("INFO")) { "expected INFO, got $info" }
        send("CONNECT {\"verbose\":false,\"pedantic\":false}\r\nSUB _INBOX.t 1\r\n".toByteArray())
    }

    private fun send(bytes: ByteArray) {
        output.write(bytes)
        output.flush()
    }

    private fun readLine(): String {
        val line = ByteArrayOutputStream()
        while (true) {
            val b = input.read()
            check(b >= 0) { "the NATS server closed the connection" }
            if (b == '\n'.code) break
            if (b != '\r'.code) line.write(b)
        }
        return line.toString(Charsets.UTF_8)
    }

    private fun readBytes(n: Int): ByteArray {
        val bytes = ByteArray(n)
        var read = 0
        while (read < n) {
            val got = input.read(bytes, read, n - read)
            check(got >= 0) { "the NATS server closed the connection" }
            read += got
        }
        return bytes
    }

    /** Publishes [json] on [subject] with the reply subject `_INBOX.t`; returns the reply's body. */
    fun request(subject: String, json: String): String {
        val body = json.toByteArray()
        send("PUB $subject _INBOX.t ${body.size}\r\n".toByteArray() + body + "\r\n".toByteArray())
        while (true) {
            val line = readLine()
            val words = line.split(' ')
            when (words[0]) {
                "PING" -> send("PONG\r\n".toByteArray())
                "MSG" -> {
                    val payload = readBytes(words.last().toInt())
                    readLine()
                    return payload.toString(Charsets.UTF_8)
                }
                "HMSG" -> { // headers first (their length is the second-last word), then the body
                    val all = readBytes(words.last().toInt())
                    readLine()
                    return all.copyOfRange(words[words.size - 2].toInt(), all.size).toString(Charsets.UTF_8)
                }
                "-ERR" -> throw IllegalStateException("NATS: $line")
                else -> {} // +OK, PONG, INFO
            }
        }
    }

    /** Creates JetStream stream [name] over [subjects]. */
    fun createStream(name: String, subjects: String) {
        val reply = request("\$JS.API.STREAM.CREATE.$name", """{"name":"$name","subjects":["$subjects"]}""")
        check("\"error\"" !in reply) { "creating stream $name: $reply" }
    }

    /** How many messages stream [name] holds (`state.messages`). */
    fun messages(name: String): Long {
        val reply = request("\$JS.API.STREAM.INFO.$name", "")
        val state = reply.substringAfter("\"state\":", "")
        return Regex("\"messages\":(\\d+)").find(state)?.groupValues?.get(1)?.toLong()
            ?: throw IllegalStateException("no state.messages in $reply")
    }

    override fun close() = socket.close()
}

/** Runs [block] with a fresh server whose stream `EVENTS` takes `tidings.>`. */
fun withJetStream(block: (NatsServer, NatsClient) -> Unit) {
    NatsServer().use { server ->
        NatsClient(server.port).use { client ->
            client.createStream("EVENTS", "tidings.>")
            block(server, client)
        }
    }
}

/** Waits up to [seconds] for [condition]. */
fun eventually(seconds: Double, condition: () -> Boolean): Boolean {
    val deadline = System.nanoTime() + (seconds * 1e9).toLong()
    while (System.nanoTime() < deadline) {
        if (condition()) return true
        Thread.sleep(50)
    }
    return condition()
}

/** Appends [n] `order.created` events to streams `order-1` … and returns their ids. */
fun appendOrders(store: Store, n: Int): List<String> =
    (1..n).map { store.append("order-$it", "order.created", """{"n":$it}""").id }

fun anEndpointWithASubjectPublishesEveryEventToTheStream() {
    withJetStream { server, client ->
        openStore().use { store ->
            val ep = store.createEndpoint(server.url, EndpointOptions(subject = "tidings.{type}", events = listOf("order.*")))
            checkEq(ep.subject, "tidings.{type}", "the endpoint's subject")
            appendOrders(store, 7)
            store.startDelivery(DeliveryOptions(workers = 2)).use { engine ->
                check(engine.drain(30.0)) { "the engine drained: ${store.deliveries()}" }
                engine.shutdown(5.0)
            }
            checkEq(client.messages("EVENTS"), 7L, "messages in the JetStream stream")
            checkEq(store.deliveries(endpointId = ep.id).map { it.state }.toSet(), setOf(DeliveryState.SUCCEEDED), "delivered")
        }
    }
}

fun aBadSubjectIsRefusedAndCreatesNothing() {
    openStore().use { store ->
        val e = assertThrows<TidingsException.InvalidInput> {
            store.createEndpoint("nats://127.0.0.1:4222", EndpointOptions(subject = "tidings.>"))
        }
        checkEq(e.field, "subject", "the field named")
        checkEq(store.listEndpoints(), listOf(), "no endpoint was created")
        val ep = store.createEndpoint("nats://127.0.0.1:4222", EndpointOptions())
        checkEq(ep.subject, null, "no subject: the default")
        val set = store.updateEndpoint(ep.id, EndpointUpdate(subject = "orders.{partition:4}.{stream}"))
        checkEq(set.subject, "orders.{partition:4}.{stream}", "a subject set by an update")
        val bad = assertThrows<TidingsException.InvalidInput> { store.updateEndpoint(ep.id, EndpointUpdate(subject = "a..b")) }
        checkEq(bad.field, "subject", "an update's bad subject")
        checkEq(store.updateEndpoint(ep.id, EndpointUpdate(clear = listOf("subject"))).subject, null, "cleared")
    }
}

fun relayInAppendsEveryEventOnceAndASecondConsumerFindsDuplicates() {
    withJetStream { server, client ->
        val published = openStore().use { source ->
            source.createEndpoint(server.url, EndpointOptions(events = listOf("order.*")))
            val ids = appendOrders(source, 10)
            source.startDelivery(DeliveryOptions(workers = 2)).use { engine ->
                check(engine.drain(30.0)) { "the source drained" }
                engine.shutdown(5.0)
            }
            ids
        }
        checkEq(client.messages("EVENTS"), 10L, "published")
        openStore().use { sink ->
            sink.execute("CREATE TABLE seen (event_id TEXT NOT NULL)")
            val handler = SubscriptionHandler { tx, events ->
                for (e in events) tx.execute("INSERT INTO seen (event_id) VALUES (?)", listOf(SqlValue.Text(e.id)))
            }
            sink.relayIn(InboxOptions(server.url, "EVENTS", "sink-1", batch = 4), handler).use { inbox ->
                check(eventually(30.0) { inbox.status().appended == 10L }) { "appended: ${inbox.status()}" }
                Thread.sleep(300) // nothing more arrives
                val status = inbox.status()
                checkEq(status.appended to status.duplicates, 10L to 0L, "status (appended, duplicates)")
                checkEq(status.rejected, 0L, "rejected")
                check(status.running) { "still running" }
                inbox.stop()
                check(!inbox.status().running) { "stopped" }
            }
            val events = sink.readAll().filter { it.eventType == "order.created" }
            checkEq(events.map { it.id }.sorted(), published.sorted(), "every event once, with its id")
            checkEq(countRows(sink, "SELECT count(*) FROM seen"), 10L, "one row per event")
            checkEq(countRows(sink, "SELECT count(DISTINCT event_id) FROM seen"), 10L, "each event once")
            sink.relayIn(InboxOptions(server.url, "EVENTS", "sink-2"), handler).use { again ->
                check(eventually(30.0) { again.status().duplicates == 10L }) { "duplicates: ${again.status()}" }
                checkEq(again.status().appended, 0L, "nothing new appended")
            }
            checkEq(sink.readAll().count { it.eventType == "order.created" }, 10, "no event added")
            checkEq(countRows(sink, "SELECT count(*) FROM seen"), 10L, "the handler saw no duplicate")
        }
    }
}

fun natsCredentialsNeverPrint() {
    val seed = "SUAKQ7EXAMPLESEEDSECRET"
    val jwt = "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.SECRETPAYLOAD.SIG"
    val creds = "-----BEGIN NATS USER JWT-----\n$jwt\n------END NATS USER JWT------\n\n" +
        "-----BEGIN USER NKEY SEED-----\n$seed\n------END USER NKEY SEED------\n"
    openStore().use { store ->
        val options = EndpointOptions(auth = Auth.NatsCredentials(creds), name = "bus")
        val ep = store.createEndpoint("nats://127.0.0.1:4222", options)
        checkEq(ep.auth, Auth.NatsCredentials(creds), "the credentials are there to read explicitly")
        val upserted = store.upsertEndpoint("nats://127.0.0.1:4222", options)
        val inbox = InboxOptions("nats://127.0.0.1:4222", "EVENTS", "app", auth = Auth.NatsCredentials(creds))
        val shown = listOf(
            ep, upserted, options, store.getEndpoint(ep.id), store.listEndpoints(), Auth.NatsCredentials(creds),
            EndpointUpdate(auth = Auth.NatsCredentials(creds)), inbox,
        ).flatMap { listOf(it.toString(), "$it") }
        for (text in shown) {
            for (secret in listOf(creds, jwt, seed, "SECRET")) check(secret !in text) { "credentials in a string form: $text" }
        }
        check("auth=NatsCredentials(creds=<redacted>)" in ep.toString()) { "$ep" }
    }
}

object JetStreamTest {
    /** The entry point .ci/test-kotlin runs (`java … JetStreamTest`). */
    @JvmStatic
    fun main(args: Array<String>) {
        val failed = runSuite(listOf(
            "an endpoint with a subject publishes every event to the stream" to ::anEndpointWithASubjectPublishesEveryEventToTheStream,
            "a bad subject is refused and creates nothing" to ::aBadSubjectIsRefusedAndCreatesNothing,
            "relayIn appends every event once; a second consumer finds duplicates" to ::relayInAppendsEveryEventOnceAndASecondConsumerFindsDuplicates,
            "NATS credentials never print" to ::natsCredentialsNeverPrint,
        ))
        tempRoot.deleteRecursively()
        System.out.flush()
        exitProcess(if (failed == 0) 0 else 1)
    }
}
