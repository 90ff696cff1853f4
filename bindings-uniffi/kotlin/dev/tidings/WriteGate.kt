// Hand-written companion of the generated bindings: the per-store queue that lets coroutines
// wait for the store's single writer by suspending instead of blocking a thread.
package dev.tidings

import java.util.Collections
import java.util.WeakHashMap
import kotlin.coroutines.AbstractCoroutineContextElement
import kotlin.coroutines.CoroutineContext
import kotlinx.coroutines.currentCoroutineContext
import kotlinx.coroutines.sync.Mutex
import kotlinx.coroutines.sync.Semaphore
import kotlinx.coroutines.sync.withLock
import kotlinx.coroutines.sync.withPermit

/**
 * Orders the suspending writes of one [Store] object: up to [PERMITS] single writes run at once
 * (core merges them into one commit), while a [SuspendingStore.withTransaction] block runs alone.
 * A transaction may suspend while it holds the writer; with every other suspending write
 * queued here, no `Dispatchers.IO` thread sits blocked on a writer that a suspended coroutine
 * holds. Both the mutex and the semaphore are fair (first come, first served).
 */
internal class WriteGate {
    private val transactions = Mutex()
    private val writes = Semaphore(PERMITS)

    /** Runs one single write (an append, a statement) beside at most [PERMITS] - 1 others. */
    suspend fun <T> shared(block: suspend () -> T): T = writes.withPermit { block() }

    /** Runs [block] with no other write of this gate in flight, after the transactions queued before it. */
    suspend fun <T> exclusive(block: suspend () -> T): T = transactions.withLock {
        var taken = 0
        try {
            repeat(PERMITS) {
                writes.acquire()
                taken++
            }
            block()
        } finally {
            repeat(taken) { writes.release() }
        }
    }

    companion object {
        /** Single writes in flight at once per store: enough for group commit to pay off. */
        const val PERMITS = 8

        private val gates: MutableMap<Store, WriteGate> = Collections.synchronizedMap(WeakHashMap())

        /** The gate of [store] (one per `Store` object, forgotten with it). */
        fun of(store: Store): WriteGate = synchronized(gates) { gates.getOrPut(store) { WriteGate() } }
    }
}

/**
 * Marks a coroutine running inside [SuspendingStore.withTransaction] on [store]: a write to the
 * same store through the suspending API from inside the block would wait for the block itself,
 * so it is refused with [TidingsException.TransactionOpen] (use the block's `Transaction`).
 */
internal class InTransaction(val store: Store) : AbstractCoroutineContextElement(Key) {
    companion object Key : CoroutineContext.Key<InTransaction>
}

/** Throws [TidingsException.TransactionOpen] if the calling coroutine is inside a transaction block on [store]. */
internal suspend fun refuseInsideTransaction(store: Store) {
    if (currentCoroutineContext()[InTransaction]?.store === store) {
        throw TidingsException.TransactionOpen(
            "this coroutine is inside withTransaction on this store: write through the block's Transaction",
        )
    }
}
