// Hand-written companion of the generated bindings (same package, shipped beside
// tidings_uniffi.kt): a lambda as a SubscriptionHandler. Logic stays in core; this only adapts.
@file:JvmName("Handlers")

package dev.tidings

/**
 * A [SubscriptionHandler] that runs [block]: for [Store.subscribe] and [Store.relayIn], which
 * take the generated interface (a Kotlin lambda does not convert to it by itself).
 *
 * ```
 * store.relayIn(InboxOptions(url, "EVENTS", "orders"), SubscriptionHandler { tx, events ->
 *     for (e in events) tx.execute("INSERT INTO seen (id) VALUES (?)", listOf(SqlValue.Text(e.id)))
 * })
 * ```
 *
 * From Java, a lambda already is a `SubscriptionHandler` (it has one method).
 */
fun SubscriptionHandler(block: (tx: Transaction, events: List<Event>) -> Unit): SubscriptionHandler =
    object : SubscriptionHandler {
        override fun handle(tx: Transaction, events: List<Event>) = block(tx, events)
    }
