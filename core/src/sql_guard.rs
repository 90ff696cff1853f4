//! Keeps the application's SQL from ending tidings' transaction.
//!
//! A transaction belongs to tidings: its commit is shared with other transactions (group
//! commit), and the outbox rows must commit with the events. So SQL run through
//! [`crate::Transaction::execute`] and its siblings may not be a transaction-control
//! statement. SQLite's grammar starts every such statement with one of a few keywords, so
//! reading the first word after comments and whitespace decides it.

use crate::error::{Error, Result};

/// The words a transaction-control statement starts with.
const CONTROL: [&str; 6] = ["BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE"];

/// The first word of `sql` after comments and whitespace (`""` if none).
pub(crate) fn first_word(sql: &str) -> &str {
    let rest = skip_comments(sql);
    &rest[..rest.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(rest.len())]
}

/// [`Error::InvalidInput`] if `sql` starts with a transaction-control statement.
pub(crate) fn refuse_transaction_control(sql: &str) -> Result<()> {
    refuse_control_word(first_word(sql))
}

/// [`refuse_transaction_control`] for a statement whose [`first_word`] is `word`.
pub(crate) fn refuse_control_word(word: &str) -> Result<()> {
    if CONTROL.iter().any(|c| c.eq_ignore_ascii_case(word)) {
        return Err(Error::invalid(
            "sql",
            format!("{} is not allowed here: tidings begins and ends the transaction", word.to_ascii_uppercase()),
        ));
    }
    Ok(())
}

/// `sql` after its leading whitespace and comments (`-- …` to the end of the line, `/* … */`).
fn skip_comments(mut sql: &str) -> &str {
    loop {
        sql = sql.trim_start();
        if let Some(rest) = sql.strip_prefix("--") {
            sql = rest.split_once('\n').map_or("", |(_, after)| after);
        } else if let Some(rest) = sql.strip_prefix("/*") {
            sql = rest.split_once("*/").map_or("", |(_, after)| after);
        } else {
            return sql;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_statements_are_refused_whatever_their_case_or_comments() {
        for sql in [
            "COMMIT",
            "commit;",
            "  End transaction",
            "/* x */ ROLLBACK",
            "-- c\n savepoint a",
            "release a",
            "BEGIN IMMEDIATE",
        ] {
            assert!(matches!(refuse_transaction_control(sql), Err(Error::InvalidInput { .. })), "{sql}");
        }
    }

    #[test]
    fn other_statements_pass() {
        for sql in [
            "SELECT 1",
            "INSERT INTO t VALUES (1)",
            "CREATE TABLE committed (x)",
            "-- only a comment",
            "",
            "WITH b AS (SELECT 1) SELECT * FROM b",
            "/* unterminated",
        ] {
            assert!(refuse_transaction_control(sql).is_ok(), "{sql}");
        }
    }
}
