// Hand-written companion of the generated bindings (same package, shipped beside
// tidings_uniffi.kt): the blocking transaction block. Logic stays in core; this only adapts.
@file:JvmName("Transactions")

package dev.tidings

/**
 * Runs [block] in one write transaction and returns its value: the transaction commits when
 * [block] returns normally and rolls back when it throws (the exception is rethrown, a failed
 * rollback added to it as suppressed). The application's rows, events and checkpoints written
 * through `tx` commit together or not at all.
 *
 * The transaction belongs to the calling thread (see [Store.begin]); [block] is not `inline`, so
 * it cannot suspend. In coroutines use [SuspendingStore.withTransaction] instead, which may
 * suspend and resume on another thread. If [block] ends the transaction itself (`tx.commit()`
 * or `tx.rollback()`), nothing more is done. From Java: `Transactions.transaction(store, tx -> …)`.
 *
 * ```
 * val event = store.transaction { tx ->
 *     tx.execute("INSERT INTO orders (id) VALUES (?)", listOf(SqlValue.Integer(42)))
 *     tx.append("order-42", "order.created", "{}")
 * }
 * ```
 */
fun <T> Store.transaction(block: (Transaction) -> T): T =
    begin().use { tx -> runCommitting(tx) { block(tx) } }

/**
 * Runs [block] and commits [tx] if it is still open afterwards; rolls it back if [block] (or the
 * commit) throws. Shared by the blocking and the suspending transaction blocks.
 */
internal inline fun <T> runCommitting(tx: Transaction, block: () -> T): T {
    try {
        val value = block()
        if (tx.isOpen()) tx.commit()
        return value
    } catch (failure: Throwable) {
        try {
            tx.rollback()
        } catch (rollbackFailure: Throwable) {
            failure.addSuppressed(rollbackFailure)
        }
        throw failure
    }
}
