// Subscriptions (projections) and the aggregate pattern from Kotlin. Run on the JVM by
// .ci/test-kotlin after the other suites, with TidingsTest.kt's helpers (openStore, check,
// checkEq, countRows) and CoroutinesTest.kt's runSuite.

import dev.tidings.Event
import dev.tidings.ExpectedVersion
import dev.tidings.OnFailure
import dev.tidings.SqlValue
import dev.tidings.Store
import dev.tidings.SubscriptionHandler
import dev.tidings.SubscriptionOptions
import dev.tidings.TidingsException
import dev.tidings.Transaction
import dev.tidings.transaction
import java.util.concurrent.CyclicBarrier
import kotlin.concurrent.thread
import kotlin.system.exitProcess

/** Adds each `account.deposited` amount to the account's balance, in the batch's transaction. */
class Balances : SubscriptionHandler {
    override fun handle(tx: Transaction, events: List<Event>) {
        for (e in events) {
            val amount = Regex("\"amount\":(-?\\d+)").find(e.data)?.groupValues?.get(1)?.toLong()
                ?: throw IllegalArgumentException("event ${e.position} has no integer amount")
            tx.execute(
                "INSERT INTO balances (account, balance) VALUES (?, ?) " +
                    "ON CONFLICT (account) DO UPDATE SET balance = balance + excluded.balance",
                listOf(SqlValue.Text(e.stream), SqlValue.Integer(amount)),
            )
        }
    }
}

fun balancesStore(): Store = openStore().also {
    it.execute("CREATE TABLE balances (account TEXT PRIMARY KEY, balance INTEGER NOT NULL)")
}

fun balanceOf(store: Store, account: String): Long =
    countRows(store, "SELECT coalesce(sum(balance), 0) FROM balances WHERE account = '$account'")

fun aSubscriptionProjectsEveryEventOnceAndResumes() {
    balancesStore().use { store ->
        repeat(50) { store.append("acct-1", "account.deposited", """{"amount":2}""") }
        val options = SubscriptionOptions(types = listOf("account.*"), batchSize = 16)
        store.subscribe("balances", Balances(), options).use { sub ->
            check(sub.waitForPosition(50, 20.0)) { "caught up" }
            check(sub.isActive()) { "it holds the lease" }
        }
        val later = store.append("acct-1", "account.deposited", """{"amount":100}""")
        store.subscribe("balances", Balances(), options).use { sub ->
            check(sub.waitForPosition(later.position, 20.0)) { "resumed after its position" }
        }
        checkEq(balanceOf(store, "acct-1"), 200L, "every event applied exactly once")
        val status = store.subscriptionStatus("balances")
        checkEq(status.position, later.position, "stored position")
        checkEq(status.lagEvents, 0L, "caught up")
    }
}

fun aHandlerThatThrowsStopsTheSubscriptionWithItsMessage() {
    balancesStore().use { store ->
        val good = store.append("acct-2", "account.deposited", """{"amount":5}""")
        store.append("acct-2", "account.deposited", """{"amount":"five"}""")
        val options = SubscriptionOptions(
            batchSize = 1, maxAttempts = 2, initialDelay = 0.01, maxDelay = 0.02, onFailure = OnFailure.STOP,
        )
        store.subscribe("strict", Balances(), options).use { sub ->
            check(!sub.waitForPosition(good.position + 1, 20.0)) { "it never passes the bad event" }
            check(sub.hasEnded()) { "it stopped" }
            val why = sub.error() ?: ""
            check(why.contains("has no integer amount")) { "the handler's message is kept: $why" }
        }
        val status = store.subscriptionStatus("strict")
        check(status.stopped) { "stored as stopped" }
        checkEq(status.position, good.position, "stopped before the bad event")
        checkEq(balanceOf(store, "acct-2"), 5L, "nothing of the failed batch was kept")
        store.resetSubscription("strict", good.position + 1)
        checkEq(store.subscriptionStatus("strict").stopped, false, "a reset clears the stop")
    }
}

fun theParkPolicySetsTheBadEventAside() {
    balancesStore().use { store ->
        store.append("acct-3", "account.deposited", """{"amount":1}""")
        store.append("acct-3", "account.deposited", """{"amount":"x"}""")
        val last = store.append("acct-3", "account.deposited", """{"amount":1}""")
        val options = SubscriptionOptions(maxAttempts = 1, initialDelay = 0.01, maxDelay = 0.01, onFailure = OnFailure.PARK)
        store.subscribe("parking", Balances(), options).use { sub ->
            check(sub.waitForPosition(last.position, 20.0)) { "it went on past the bad event" }
        }
        checkEq(balanceOf(store, "acct-3"), 2L, "the good events applied")
        val parked = store.parkedEvents("parking")
        checkEq(parked.map { it.position }, listOf(2L), "the bad event parked")
    }
}

// ---------------------------------------------------------------------------------------------
// The aggregate pattern (README, "Aggregates in Kotlin"): fold a stream into a state, append the
// new events at the version it was loaded at, and on a conflict reload and run the command again.

data class Account(val balance: Long = 0, val version: Long = 0) {
    fun apply(e: Event): Account {
        val amount = Regex("\"amount\":(\\d+)").find(e.data)!!.groupValues[1].toLong()
        return when (e.eventType) {
            "account.deposited" -> copy(balance = balance + amount, version = e.version)
            "account.withdrawn" -> copy(balance = balance - amount, version = e.version)
            else -> copy(version = e.version)
        }
    }
}

fun loadAccount(store: Store, id: String): Account =
    store.readStream("account-$id").fold(Account()) { state, e -> state.apply(e) }

/** Withdraws if the balance allows it: reload and retry on a conflict, up to 10 times. */
fun withdraw(store: Store, id: String, amount: Long): Boolean {
    repeat(10) {
        val account = loadAccount(store, id)
        if (account.balance < amount) return false
        val expected = if (account.version == 0L) ExpectedVersion.NoStream else ExpectedVersion.Exact(account.version)
        try {
            store.transaction { tx ->
                tx.append("account-$id", "account.withdrawn", """{"amount":$amount}""", expectedVersion = expected)
            }
            return true
        } catch (e: TidingsException.Concurrency) {
            // Another writer saved first: reload and decide again.
        }
    }
    throw IllegalStateException("too many conflicts")
}

fun concurrentWithdrawalsNeverOverdraw() {
    openStore().use { store ->
        store.append("account-9", "account.deposited", """{"amount":100}""", expectedVersion = ExpectedVersion.NoStream)
        val barrier = CyclicBarrier(4)
        val granted = java.util.concurrent.atomic.AtomicInteger()
        val workers = (1..4).map {
            thread {
                barrier.await()
                repeat(10) { if (withdraw(store, "9", 7)) granted.incrementAndGet() }
            }
        }
        workers.forEach { it.join() }
        val account = loadAccount(store, "9")
        checkEq(granted.get(), 14, "100 / 7 withdrawals granted, no more")
        checkEq(account.balance, 100L - 14 * 7, "balance")
        check(account.balance >= 0) { "never overdrawn" }
    }
}

object ProjectionsTest {
    /** The entry point .ci/test-kotlin runs (`java … ProjectionsTest`). */
    @JvmStatic
    fun main(args: Array<String>) {
        val failed = runSuite(listOf(
            "a subscription projects every event once and resumes" to ::aSubscriptionProjectsEveryEventOnceAndResumes,
            "a handler that throws stops the subscription with its message" to ::aHandlerThatThrowsStopsTheSubscriptionWithItsMessage,
            "the park policy sets the bad event aside" to ::theParkPolicySetsTheBadEventAside,
            "concurrent withdrawals (the aggregate pattern) never overdraw" to ::concurrentWithdrawalsNeverOverdraw,
        ))
        tempRoot.deleteRecursively()
        exitProcess(if (failed == 0) 0 else 1)
    }
}
