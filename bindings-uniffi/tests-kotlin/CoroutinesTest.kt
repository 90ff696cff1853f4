// Tests of the hand-written Kotlin companion (bindings-uniffi/kotlin/dev/tidings): the
// transaction blocks, the suspending calls and the Flow of the log. Run on the JVM by
// .ci/test-kotlin after TidingsTest.kt, with its helpers (openStore, check, checkEq, ...).

import dev.tidings.SqlValue
import dev.tidings.Store
import dev.tidings.TidingsException
import dev.tidings.awaitDrained
import dev.tidings.awaitIdle
import dev.tidings.follow
import dev.tidings.suspending
import dev.tidings.transaction
import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.CopyOnWriteArrayList
import kotlin.system.exitProcess
import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.cancelAndJoin
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.take
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.launch
import kotlinx.coroutines.newSingleThreadContext
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withContext
import kotlinx.coroutines.withTimeout
import kotlinx.coroutines.yield

/** Thrown by test blocks to see it come back out unchanged. */
class Boom : RuntimeException("boom")

fun eventCount(store: Store, stream: String): Int = store.readStream(stream).size

// ---------------------------------------------------------------------------------------------
// The blocking transaction block

fun transactionBlockCommitsAndReturnsItsValue() {
    openStore().use { store ->
        store.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
        val version = store.transaction { tx ->
            tx.execute("INSERT INTO orders (id) VALUES (?)", listOf(SqlValue.Integer(42)))
            tx.append("order-42", "order.created", "{}").version
        }
        checkEq(version, 1L, "the block's value")
        checkEq(countRows(store, "SELECT count(*) FROM orders"), 1L, "the app row committed")
        checkEq(eventCount(store, "order-42"), 1, "the event committed")
        // A block that commits itself is left alone.
        store.transaction { tx -> tx.append("order-42", "order.paid", "{}"); tx.commit() }
        checkEq(eventCount(store, "order-42"), 2, "events after a block that committed itself")
    }
}

fun transactionBlockRollsBackOnThrow() {
    openStore().use { store ->
        store.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
        val boom = Boom()
        val thrown = assertThrows<Boom> {
            store.transaction { tx ->
                tx.execute("INSERT INTO orders (id) VALUES (?)", listOf(SqlValue.Integer(1)))
                tx.append("order-1", "order.created", "{}")
                throw boom
            }
        }
        check(thrown === boom) { "the block's own exception comes out: $thrown" }
        checkEq(countRows(store, "SELECT count(*) FROM orders"), 0L, "no app row")
        checkEq(store.streamVersion("order-1"), null, "no stream")
        // The writer is free at once: a write on this thread neither waits nor is refused.
        val started = System.nanoTime()
        store.append("order-1", "order.created", "{}")
        check(System.nanoTime() - started < 1_000_000_000L) { "the writer was released by the rollback" }
    }
}

// ---------------------------------------------------------------------------------------------
// Suspending transactions

/**
 * A transaction that suspends (delay, yield, withContext) and resumes on other threads commits
 * everything it wrote, while other coroutines (suspending appends, other transaction blocks) and
 * plain threads (blocking appends) write to the same store: every event is there exactly once.
 */
fun suspendingTransactionResumesElsewhereAndCommits() {
    openStore().use { store ->
        val threadsSeen = ConcurrentHashMap.newKeySet<String>()
        val other = newSingleThreadContext("tx-other-thread")
        val plain = (1..2).map { t ->
            Thread { repeat(25) { i -> store.append("plain-$t", "e.plain", """{"i": $i}""") } }
        }
        runBlocking {
            plain.forEach { it.start() }
            val writers = (1..4).map { c ->
                async(Dispatchers.Default) { repeat(25) { i -> store.suspending.append("co-$c", "e.co", """{"i": $i}""") } }
            }
            val transactions = (1..4).map { t ->
                async(Dispatchers.Default) {
                    store.suspending.withTransaction { tx ->
                        threadsSeen.add(Thread.currentThread().name)
                        tx.append("tx-$t", "e.tx", """{"step": 1}""")
                        delay(20)
                        yield()
                        withContext(other) {
                            threadsSeen.add(Thread.currentThread().name)
                            tx.append("tx-$t", "e.tx", """{"step": 2}""")
                        }
                        delay(5)
                        threadsSeen.add(Thread.currentThread().name)
                        tx.append("tx-$t", "e.tx", """{"step": 3}""")
                        t
                    }
                }
            }
            checkEq(transactions.awaitAll(), listOf(1, 2, 3, 4), "each block's value")
            writers.awaitAll()
        }
        plain.forEach { it.join() }
        other.close()
        check(threadsSeen.size >= 2 && "tx-other-thread" in threadsSeen) { "the blocks ran on several threads: $threadsSeen" }
        val all = store.readAll(limit = 10_000)
        checkEq(all.size, 2 * 25 + 4 * 25 + 4 * 3, "events in the log")
        checkEq(all.map { it.id }.toSet().size, all.size, "distinct event ids")
        for (t in 1..4) {
            val steps = store.readStream("tx-$t").map { it.data.filter(Char::isDigit) }
            checkEq(steps, listOf("1", "2", "3"), "transaction $t's events, in order")
        }
        for (c in 1..4) checkEq(store.readStream("co-$c").map { it.version }, (1L..25L).toList(), "stream co-$c")
        for (t in 1..2) checkEq(eventCount(store, "plain-$t"), 25, "stream plain-$t")
    }
}

fun suspendingTransactionRollsBackOnThrowAndOnCancel() {
    openStore().use { store ->
        runBlocking {
            val boom = Boom()
            val thrown = runCatching {
                store.suspending.withTransaction { tx ->
                    tx.append("thrown", "e.x", "{}")
                    delay(10)
                    throw boom
                }
            }.exceptionOrNull()
            check(thrown === boom) { "the block's exception comes out: $thrown" }

            val inside = CompletableDeferred<Unit>()
            val job = launch(Dispatchers.Default) {
                store.suspending.withTransaction { tx ->
                    tx.append("cancelled", "e.x", "{}")
                    inside.complete(Unit)
                    delay(60_000)
                }
            }
            inside.await()
            job.cancelAndJoin()
        }
        checkEq(store.streamVersion("thrown"), null, "a throwing block wrote nothing")
        checkEq(store.streamVersion("cancelled"), null, "a cancelled block wrote nothing")
        val started = System.nanoTime()
        store.append("after", "e.x", "{}")
        check(System.nanoTime() - started < 1_000_000_000L) { "the writer is free after both" }
    }
}

fun writingToTheStoreInsideASuspendingTransactionIsRefused() {
    openStore().use { store ->
        runBlocking {
            val started = System.nanoTime()
            store.suspending.withTransaction { tx ->
                tx.append("s", "e.x", "{}")
                val e = runCatching { store.suspending.append("s", "e.y", "{}") }.exceptionOrNull()
                check(e is TidingsException.TransactionOpen) { "a suspending write inside the block: $e" }
                val nested = runCatching { store.suspending.withTransaction { } }.exceptionOrNull()
                check(nested is TidingsException.TransactionOpen) { "a nested block: $nested" }
            }
            check(System.nanoTime() - started < 2_000_000_000L) { "refused at once, not after the busy timeout" }
        }
        checkEq(eventCount(store, "s"), 1, "the block's own write committed")
    }
}

// ---------------------------------------------------------------------------------------------
// The Flow of the log

fun followStartsAtItsPositionInclusiveAndSeesNewCommits() {
    openStore().use { store ->
        repeat(5) { i -> store.append("s", "e.x", """{"i": $i}""") }
        val first = runBlocking { withTimeout(10_000) { store.follow(fromPosition = 3).take(3).toList() } }
        checkEq(first.map { it.position }, listOf(3L, 4L, 5L), "positions from 3, inclusive")
        val live = runBlocking {
            withTimeout(10_000) {
                val collected = async(Dispatchers.Default) { store.suspending.follow(fromPosition = 6, types = listOf("e.live")).take(2).toList() }
                delay(100) // the flow is waiting now
                Thread { store.append("s", "e.skipped", "{}"); store.append("s", "e.live", "{}"); store.append("t", "e.live", "{}") }.start()
                collected.await()
            }
        }
        checkEq(live.map { it.stream to it.eventType }, listOf("s" to "e.live", "t" to "e.live"), "live events, filtered")
    }
}

/** Cancelling a flow that waits for events returns within 100 ms (median of 7 runs), its read included. */
fun followIsCancelledWithin100Milliseconds() {
    openStore().use { store ->
        val times = CopyOnWriteArrayList<Long>()
        runBlocking {
            repeat(7) { run ->
                val started = CompletableDeferred<Unit>()
                val job = launch(Dispatchers.Default, start = CoroutineStart.UNDISPATCHED) {
                    started.complete(Unit)
                    store.follow().collect { }
                }
                started.await()
                // The flow's read is blocked waiting for a commit now; cancel at different points
                // of core's 50 ms checking rhythm, not in step with it.
                delay(300L + 13L * run)
                val t0 = System.nanoTime()
                job.cancelAndJoin() // returns only once the blocking read has returned
                times.add((System.nanoTime() - t0) / 1_000_000)
            }
        }
        val median = times.sorted()[times.size / 2]
        println("     cancellation of a waiting follow, ms: $times (median $median)")
        check(median < 100) { "median cancellation took $median ms (runs: $times)" }
        check(times.max() < 1_000) { "no run blocked for long: $times" }
    }
}

fun awaitIdleSuspendsUntilDelivered() {
    Receiver().use { receiver ->
        openStore().use { store ->
            store.createEndpoint(receiver.url)
            store.startDelivery().use { engine ->
                runBlocking { repeat(3) { store.suspending.append("s", "e.x", "{}") } }
                check(runBlocking { engine.awaitIdle(10.0) }) { "idle within 10 s" }
                checkEq(receiver.requests.size, 3, "requests received when idle")
                engine.shutdown()
            }
        }
    }
}

/** `awaitDrained` on deliveries that keep retrying is cancelled within 100 ms (median of 5 runs). */
fun awaitDrainedIsCancelledWithin100Milliseconds() {
    Receiver(status = 500).use { receiver ->
        openStore().use { store ->
            store.createEndpoint(receiver.url)
            store.append("s", "e.x", "{}")
            store.startDelivery().use { engine ->
                val times = runBlocking {
                    (0 until 5).map { run ->
                        val job = launch(Dispatchers.Default) { engine.awaitDrained(60.0) }
                        delay(200L + 13L * run) // a retry is waiting for its backoff: not drained
                        val t0 = System.nanoTime()
                        job.cancelAndJoin()
                        (System.nanoTime() - t0) / 1_000_000
                    }
                }
                check(receiver.requests.isNotEmpty()) { "the delivery was attempted" }
                check(!engine.drain(0.0)) { "still not drained: the delivery retries" }
                val median = times.sorted()[times.size / 2]
                check(median < 100) { "median cancellation took $median ms (runs: $times)" }
                engine.shutdown()
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------


object CoroutinesTest {
    /** The entry point .ci/test-kotlin runs (`java … CoroutinesTest`). */
    @JvmStatic
    fun main(args: Array<String>) {
        val failed = runSuite(listOf(
            "transaction block commits and returns its value" to ::transactionBlockCommitsAndReturnsItsValue,
            "transaction block rolls back on throw" to ::transactionBlockRollsBackOnThrow,
            "suspending transaction resumes elsewhere and commits" to ::suspendingTransactionResumesElsewhereAndCommits,
            "suspending transaction rolls back on throw and on cancel" to ::suspendingTransactionRollsBackOnThrowAndOnCancel,
            "writing to the store inside a suspending transaction is refused" to ::writingToTheStoreInsideASuspendingTransactionIsRefused,
            "follow starts at its position (inclusive) and sees new commits" to ::followStartsAtItsPositionInclusiveAndSeesNewCommits,
            "follow is cancelled within 100 ms" to ::followIsCancelledWithin100Milliseconds,
            "awaitIdle suspends until delivered" to ::awaitIdleSuspendsUntilDelivered,
            "awaitDrained is cancelled within 100 ms" to ::awaitDrainedIsCancelledWithin100Milliseconds,
        ))
        tempRoot.deleteRecursively()
        System.out.flush()
        exitProcess(if (failed == 0) 0 else 1)
    }
}
