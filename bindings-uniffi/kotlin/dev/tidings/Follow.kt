// Hand-written companion of the generated bindings: following the log as a cancellable Flow.
@file:JvmName("Follow")

package dev.tidings

import kotlin.coroutines.cancellation.CancellationException
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.flow

/** Events read per batch by [follow] unless told otherwise. */
const val FOLLOW_BATCH: Long = 100L

/** How long one read of [follow] waits for a commit before it reads again (seconds). */
private const val FOLLOW_WAIT: Double = 30.0

/**
 * The global log from [fromPosition] on, then every matching event committed later, as a cold
 * [Flow] that never completes by itself. [fromPosition] is inclusive: the first event emitted
 * is the first matching one at or after it (0 and 1 are both the start of the log); to go on
 * after a consumer's checkpoint `c`, pass `c + 1`. Filters are those of `readAll`.
 *
 * Commits of this process are seen at once, other processes' within the store's
 * `pollInterval`. Cancelling the collecting coroutine ends the flow within about 50 ms (core
 * checks every 50 ms): the waiting read runs on `Dispatchers.IO` and returns early when
 * cancelled, and the flow ends once it has returned, so no thread stays blocked behind it. Events are read [batchSize] at a
 * time and emitted one by one.
 */
fun Store.follow(
    fromPosition: Long = 1L,
    types: List<String>? = null,
    tenant: String? = null,
    stream: String? = null,
    batchSize: Long = FOLLOW_BATCH,
): Flow<Event> = flow {
    var next = fromPosition
    while (true) {
        val batch = cancellableIo { cancellation ->
            readAllCancellable(next, FOLLOW_WAIT, cancellation, batchSize, types, tenant, stream)
        }
        for (event in batch) {
            emit(event)
            next = event.position + 1
        }
    }
}

/**
 * Runs [call] on `Dispatchers.IO` and returns its value. If the calling coroutine is cancelled
 * meanwhile, the [Cancellation] given to [call] is raised, and this returns (throwing the
 * cancellation) only once [call] has returned: the blocking call ends early instead of holding
 * its thread, and nothing outlives the coroutine.
 */
internal suspend fun <T> cancellableIo(call: (Cancellation) -> T): T {
    val cancellation = Cancellation()
    try {
        return coroutineScope {
            val work = async(Dispatchers.IO) { call(cancellation) }
            try {
                work.await()
            } catch (cancelled: CancellationException) {
                cancellation.cancel()
                throw cancelled
            }
        }
    } finally {
        cancellation.close()
    }
}
