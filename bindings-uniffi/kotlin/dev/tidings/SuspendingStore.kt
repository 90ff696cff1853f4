// Hand-written companion of the generated bindings: `suspend` versions of the blocking calls,
// run on Dispatchers.IO, and a transaction block that may suspend.
@file:JvmName("Suspending")

package dev.tidings

import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.withContext

/**
 * The `suspend` face of a [Store]: `store.suspending.append(…)`. Each call runs the blocking call
 * of the same name on `Dispatchers.IO`, so it is safe from any dispatcher (the main thread
 * included). Writes queue per store without blocking threads (see [withTransaction]); reads run
 * at once. Calls not listed here are reached with [read] and [write], e.g.
 * `store.suspending.read { deliveries(beforeId = lastSeen) }`.
 */
class SuspendingStore internal constructor(
    /** The store every call goes to. */
    val store: Store,
) {
    private val gate = WriteGate.of(store)

    /** Runs [call] on the store on `Dispatchers.IO`: for reads and other calls that do not write. */
    suspend fun <T> read(call: Store.() -> T): T = withContext(Dispatchers.IO) { store.call() }

    /**
     * Runs [call], a single write, on `Dispatchers.IO`, queued behind any [withTransaction] block
     * on this store. Inside such a block it throws [TidingsException.TransactionOpen]: write
     * through the block's `Transaction` there.
     */
    suspend fun <T> write(call: Store.() -> T): T {
        refuseInsideTransaction(store)
        return gate.shared { withContext(Dispatchers.IO) { store.call() } }
    }

    /**
     * Runs [block] in one write transaction that may suspend (`delay`, `withContext`, other
     * `suspend` calls) and resume on another thread: it commits when [block] returns normally and
     * rolls back when it throws or the coroutine is cancelled. [block] starts on `Dispatchers.IO`.
     *
     * One such block runs at a time per `Store` object; the others (and this store's other
     * suspending writes) wait by suspending, not by blocking a thread. Blocking writes from other
     * threads wait for the commit, up to the store's `busyTimeout`, so keep the block short.
     * Inside it, write through `tx` only: a suspending write to the same store, or a nested
     * block, throws [TidingsException.TransactionOpen]; a blocking `store.append` would wait
     * for the block itself until `Busy`.
     */
    suspend fun <T> withTransaction(block: suspend (Transaction) -> T): T {
        refuseInsideTransaction(store)
        return gate.exclusive {
            withContext(Dispatchers.IO + InTransaction(store)) {
                store.beginDetached().use { tx -> runCommitting(tx) { block(tx) } }
            }
        }
    }

    /** [Store.append] on `Dispatchers.IO`. */
    suspend fun append(
        stream: String,
        eventType: String,
        data: String,
        expectedVersion: ExpectedVersion? = null,
        metadata: String? = null,
        tenant: String? = null,
        eventId: String? = null,
    ): Event = write { append(stream, eventType, data, expectedVersion, metadata, tenant, eventId) }

    /** [Store.appendEvents] on `Dispatchers.IO`. */
    suspend fun appendEvents(stream: String, events: List<NewEvent>, expectedVersion: ExpectedVersion? = null): List<Event> =
        write { appendEvents(stream, events, expectedVersion) }

    /** [Store.execute] on `Dispatchers.IO`. */
    suspend fun execute(sql: String, params: List<SqlValue> = listOf()): Long = write { execute(sql, params) }

    /** [Store.query] on `Dispatchers.IO`. */
    suspend fun query(sql: String, params: List<SqlValue> = listOf()): List<List<SqlValue>> = read { query(sql, params) }

    /** [Store.readStream] on `Dispatchers.IO`. */
    suspend fun readStream(stream: String, fromVersion: Long? = null, limit: Long? = null, backwards: Boolean = false): List<Event> =
        read { readStream(stream, fromVersion, limit, backwards) }

    /**
     * [Store.readAll] without waiting, on `Dispatchers.IO`; `fromPosition` is inclusive (0 and 1
     * are both the start). To wait for new events use [follow].
     */
    suspend fun readAll(
        fromPosition: Long = 0L,
        limit: Long? = null,
        types: List<String>? = null,
        tenant: String? = null,
        stream: String? = null,
    ): List<Event> = read { readAll(fromPosition, limit, types, tenant, null, stream, false) }

    /** [Store.event] on `Dispatchers.IO`. */
    suspend fun event(id: String): Event = read { event(id) }

    /** [Store.streamVersion] on `Dispatchers.IO`. */
    suspend fun streamVersion(stream: String): Long? = read { streamVersion(stream) }

    /** [Store.lastPosition] on `Dispatchers.IO`. */
    suspend fun lastPosition(): Long = read { lastPosition() }

    /** [Store.checkpoint] on `Dispatchers.IO`. */
    suspend fun checkpoint(name: String): Long? = read { checkpoint(name) }

    /** [Store.setCheckpoint] on `Dispatchers.IO`. */
    suspend fun setCheckpoint(name: String, position: Long) = write { setCheckpoint(name, position) }

    /** [Store.createEndpoint] on `Dispatchers.IO`. */
    suspend fun createEndpoint(url: String, options: EndpointOptions = EndpointOptions()): Endpoint =
        write { createEndpoint(url, options) }

    /** [Store.getEndpoint] on `Dispatchers.IO`. */
    suspend fun getEndpoint(id: String): Endpoint = read { getEndpoint(id) }

    /** [Store.listEndpoints] on `Dispatchers.IO`. */
    suspend fun listEndpoints(tenant: String? = null): List<Endpoint> = read { listEndpoints(tenant) }

    /** [Store.updateEndpoint] on `Dispatchers.IO`. */
    suspend fun updateEndpoint(id: String, changes: EndpointUpdate): Endpoint = write { updateEndpoint(id, changes) }

    /** [Store.deleteEndpoint] on `Dispatchers.IO`. */
    suspend fun deleteEndpoint(id: String) = write { deleteEndpoint(id) }

    /** [Store.sendTest] on `Dispatchers.IO` (one HTTP request; nothing is stored). */
    suspend fun sendTest(endpointId: String): Attempt = read { sendTest(endpointId) }

    /** The log as a [Flow]: see [Store.follow]. */
    fun follow(
        fromPosition: Long = 1L,
        types: List<String>? = null,
        tenant: String? = null,
        stream: String? = null,
        batchSize: Long = FOLLOW_BATCH,
    ): Flow<Event> = store.follow(fromPosition, types, tenant, stream, batchSize)
}

/** The `suspend` face of this store (see [SuspendingStore]). */
val Store.suspending: SuspendingStore
    get() = SuspendingStore(this)
