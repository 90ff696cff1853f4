// Hand-written companion of the generated Tidings.swift (same module, compiled beside it):
// `async` calls, a transaction block that may suspend, and the log as an AsyncThrowingStream.
// Not compiled on the machine that tests the bindings (it has no Swift compiler):
// .ci/test-kotlin checks that every generated declaration used here exists.

import Foundation

/// Runs a blocking call on a global dispatch queue, so it never holds a thread of Swift's
/// cooperative pool, and returns its result.
private func offPool<T: Sendable>(_ call: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global(qos: .utility).async {
            continuation.resume(with: Result { try call() })
        }
    }
}

/// Lets one `withTransaction` block of a store run at a time; the others wait by suspending.
private actor TransactionQueue {
    private var busy = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    func acquire() async {
        if !busy {
            busy = true
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    func release() {
        if waiting.isEmpty {
            busy = false
        } else {
            waiting.removeFirst().resume()
        }
    }
}

/// The transaction queue of each live `Store` object.
private final class TransactionQueues: @unchecked Sendable {
    static let shared = TransactionQueues()

    private struct Entry {
        weak var store: Store?
        let queue: TransactionQueue
    }

    private let lock = NSLock()
    private var entries: [ObjectIdentifier: Entry] = [:]

    func queue(for store: Store) -> TransactionQueue {
        lock.lock()
        defer { lock.unlock() }
        entries = entries.filter { $0.value.store != nil }
        let key = ObjectIdentifier(store)
        if let entry = entries[key], entry.store === store {
            return entry.queue
        }
        let queue = TransactionQueue()
        entries[key] = Entry(store: store, queue: queue)
        return queue
    }
}

/// Where a `follow` stream is: the next position to read and the events read but not yet given.
private final class FollowCursor: @unchecked Sendable {
    private let lock = NSLock()
    private var next: Int64
    private var buffered: [Event] = []

    init(from position: Int64) {
        next = position
    }

    /// The next buffered event, or `nil` with the position to read from.
    func pop() -> (Event?, Int64) {
        lock.lock()
        defer { lock.unlock() }
        if buffered.isEmpty {
            return (nil, next)
        }
        let event = buffered.removeFirst()
        next = event.position + 1
        return (event, next)
    }

    func push(_ events: [Event]) {
        lock.lock()
        defer { lock.unlock() }
        buffered.append(contentsOf: events)
    }
}

extension Store {
    /// Runs `call` (any blocking call on this store) on a global dispatch queue and returns its
    /// result: `let event = try await store.run { try $0.append(stream: "s", eventType: "t", data: "{}") }`.
    public func run<T: Sendable>(_ call: @escaping @Sendable (Store) throws -> T) async throws -> T {
        try await offPool { try call(self) }
    }

    /// Runs `body` in one write transaction that may suspend (`await`) and resume on another
    /// thread: it commits when `body` returns and rolls back when it throws (a cancelled task's
    /// `CancellationError` included). One such block runs at a time per `Store` object; the
    /// others wait by suspending. While it is open, every other write to the store waits for
    /// its commit (up to `busyTimeout`): keep it short, and write through `tx` only.
    public func withTransaction<T: Sendable>(_ body: (Transaction) async throws -> T) async throws -> T {
        let queue = TransactionQueues.shared.queue(for: self)
        await queue.acquire()
        do {
            let value = try await inDetachedTransaction(body)
            await queue.release()
            return value
        } catch {
            await queue.release()
            throw error
        }
    }

    private func inDetachedTransaction<T: Sendable>(_ body: (Transaction) async throws -> T) async throws -> T {
        let tx = try await offPool { try self.beginDetached() }
        do {
            let value = try await body(tx)
            if tx.isOpen() {
                try await offPool { try tx.commit() }
            }
            return value
        } catch {
            try? tx.rollback()
            throw error
        }
    }

    /// The global log from `fromPosition` on, then every matching event committed later, as a
    /// stream that never finishes by itself. `fromPosition` is inclusive (0 and 1 are both the
    /// start; after a checkpoint `c`, pass `c + 1`); the filters are those of `readAll`.
    /// Cancelling the consuming task ends it within about 50 ms, and the waiting read returns
    /// then too. Events are read `batchSize` at a time, only when the consumer asks for more.
    public func follow(
        fromPosition: Int64 = 1,
        types: [String]? = nil,
        tenant: String? = nil,
        stream: String? = nil,
        batchSize: Int64 = 100
    ) -> AsyncThrowingStream<Event, Error> {
        let cursor = FollowCursor(from: fromPosition)
        return AsyncThrowingStream(unfolding: {
            while true {
                let (buffered, from) = cursor.pop()
                if let event = buffered {
                    return event
                }
                let cancellation = Cancellation()
                let batch = try await withTaskCancellationHandler {
                    try await offPool {
                        try self.readAllCancellable(
                            fromPosition: from, wait: 30, cancellation: cancellation,
                            limit: batchSize, types: types, tenant: tenant, stream: stream)
                    }
                } onCancel: {
                    cancellation.cancel()
                }
                try Task.checkCancellation()
                cursor.push(batch)
            }
        })
    }
}

extension DeliveryEngine {
    /// `waitIdle(timeout:)` off Swift's cooperative pool.
    public func awaitIdle(timeout: Double) async throws -> Bool {
        try await offPool { try self.waitIdle(timeout: timeout) }
    }

    /// `drain(timeout:)` off Swift's cooperative pool.
    public func awaitDrained(timeout: Double) async throws -> Bool {
        try await offPool { try self.drain(timeout: timeout) }
    }
}
