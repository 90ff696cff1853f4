// Hand-written companion of the generated bindings: waiting for the delivery engine by suspending.
@file:JvmName("SuspendingEngine")

package dev.tidings

import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.withContext

/** How long one blocking wait of [awaitIdle] and [awaitDrained] lasts before it checks for cancellation (seconds). */
private const val WAIT_SLICE: Double = 0.05

/**
 * [DeliveryEngine.waitIdle] that suspends: `true` as soon as nothing is due now and nothing is in
 * flight, `false` after [timeout] seconds. It waits on `Dispatchers.IO` in 50 ms slices, so
 * cancelling the coroutine ends it within about 50 ms.
 */
suspend fun DeliveryEngine.awaitIdle(timeout: Double): Boolean = inSlices(timeout) { waitIdle(it) }

/**
 * [DeliveryEngine.drain] that suspends: `true` once every delivery is finished, `false` after
 * [timeout] seconds or when the engine is shut down. It waits in 50 ms slices, like [awaitIdle].
 */
suspend fun DeliveryEngine.awaitDrained(timeout: Double): Boolean = inSlices(timeout) { drain(it) }

/** Calls [wait] with slices of at most [WAIT_SLICE] seconds until it says `true` or [timeout] passes. */
private suspend fun DeliveryEngine.inSlices(timeout: Double, wait: DeliveryEngine.(Double) -> Boolean): Boolean {
    require(timeout >= 0.0) { "timeout must not be negative, got $timeout" }
    val deadline = System.nanoTime() + (timeout * 1e9).toLong()
    while (true) {
        val left = (deadline - System.nanoTime()) / 1e9
        val slice = left.coerceIn(0.0, WAIT_SLICE)
        if (withContext(Dispatchers.IO) { wait(slice) }) return true
        if (left <= WAIT_SLICE || !isRunning()) return false
    }
}
