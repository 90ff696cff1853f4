// Hand-written companion of the generated Tidings.swift (same module, compiled beside it): the
// blocking transaction block. Logic stays in core; this only adapts. Not compiled on the machine
// that tests the bindings (it has no Swift compiler): .ci/test-kotlin checks that every generated
// declaration used here exists.

import Foundation

extension Store {
    /// Runs `body` in one write transaction and returns its value: the transaction commits when
    /// `body` returns and rolls back when it throws (the error is rethrown). The application's
    /// rows, events and checkpoints written through `tx` commit together or not at all.
    ///
    /// The transaction belongs to the calling thread (see `begin()`); in `async` code use
    /// `withTransaction`, which may suspend. If `body` ends the transaction itself
    /// (`commit()`/`rollback()`), nothing more is done.
    ///
    ///     let event = try store.transaction { tx in
    ///         _ = try tx.execute(sql: "INSERT INTO orders (id) VALUES (?)", params: [.integer(value: 42)])
    ///         return try tx.append(stream: "order-42", eventType: "order.created", data: "{}")
    ///     }
    public func transaction<T>(_ body: (Transaction) throws -> T) throws -> T {
        let tx = try begin()
        do {
            let value = try body(tx)
            if tx.isOpen() {
                try tx.commit()
            }
            return value
        } catch {
            try? tx.rollback()
            throw error
        }
    }
}
