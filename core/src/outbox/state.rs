//! Where a delivery is in its lifecycle: [`DeliveryState`], its stored codes, and the SQL
//! conditions on the `state` column, named once here. The conditions are macros that expand to
//! string literals, so every query that uses them stays one literal (`concat!`), prepared and
//! cached as before, and SQLite still matches it to the partial indexes of the migrations.
//! A test checks each condition against [`DeliveryState`] in SQLite itself.

use crate::error::{Error, Result};

/// Where a delivery is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeliveryState {
    /// Due at `next_attempt_at`.
    Pending,
    /// Claimed under a lease by one process; a request may be in flight.
    Sending,
    /// Waiting for its backoff after a failed attempt.
    Retrying,
    /// Its endpoint is disabled; resumes when it is enabled.
    Paused,
    /// The receiver answered 2xx.
    Succeeded,
    /// Attempts exhausted, or a final outcome (such as 410).
    Failed,
    /// The endpoint or the stream was deleted, or an operator cancelled it. Final.
    Cancelled,
}

impl DeliveryState {
    /// Every state, in lifecycle order.
    pub const ALL: [DeliveryState; 7] = [
        DeliveryState::Pending,
        DeliveryState::Sending,
        DeliveryState::Retrying,
        DeliveryState::Paused,
        DeliveryState::Succeeded,
        DeliveryState::Failed,
        DeliveryState::Cancelled,
    ];

    /// The code stored in the database.
    pub(crate) fn code(self) -> i64 {
        match self {
            DeliveryState::Pending => 0,
            DeliveryState::Sending => 1,
            DeliveryState::Retrying => 2,
            DeliveryState::Paused => 3,
            DeliveryState::Succeeded => 4,
            DeliveryState::Failed => 5,
            DeliveryState::Cancelled => 6,
        }
    }

    pub(crate) fn from_code(code: i64) -> DeliveryState {
        match code {
            0 => DeliveryState::Pending,
            1 => DeliveryState::Sending,
            2 => DeliveryState::Retrying,
            3 => DeliveryState::Paused,
            4 => DeliveryState::Succeeded,
            5 => DeliveryState::Failed,
            _ => DeliveryState::Cancelled,
        }
    }

    /// The lower-case name used by the bindings and the CLI (`"pending"`, `"failed"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Sending => "sending",
            DeliveryState::Retrying => "retrying",
            DeliveryState::Paused => "paused",
            DeliveryState::Succeeded => "succeeded",
            DeliveryState::Failed => "failed",
            DeliveryState::Cancelled => "cancelled",
        }
    }

    /// Parses a name given by [`DeliveryState::as_str`].
    pub fn parse(s: &str) -> Result<DeliveryState> {
        DeliveryState::ALL
            .into_iter()
            .find(|state| state.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| Error::invalid("state", format!("unknown delivery state {s:?}")))
    }

    /// Whether the delivery can still be sent (pending, sending, retrying, paused).
    pub fn is_unfinished(self) -> bool {
        matches!(
            self,
            DeliveryState::Pending | DeliveryState::Sending | DeliveryState::Retrying | DeliveryState::Paused
        )
    }
}

/// The stored code of a state as an SQL literal: `state_code!(Failed)` is `"5"` (see
/// [`DeliveryState::code`]; a test checks that they agree).
macro_rules! state_code {
    (Pending) => {
        "0"
    };
    (Sending) => {
        "1"
    };
    (Retrying) => {
        "2"
    };
    (Paused) => {
        "3"
    };
    (Succeeded) => {
        "4"
    };
    (Failed) => {
        "5"
    };
    (Cancelled) => {
        "6"
    };
}

/// A condition on a delivery's `state` as an SQL literal, optionally on a table alias:
/// `state_is!(due)` is `"state <= 2"`, `state_is!(unfinished, d)` is `"d.state <= 3"`.
///
/// - `due`: pending, sending or retrying (what a claim may take, when its time has come);
/// - `unfinished`: due or paused ([`DeliveryState::is_unfinished`]);
/// - `finished`: succeeded, failed or cancelled;
/// - `leased`: sending, or paused while its request may still be in flight;
/// - `ended`: succeeded or failed (what `retry` and `replay` start again);
/// - `paused`, `failed`: that one state.
macro_rules! state_is {
    (due) => {
        "state <= 2"
    };
    (due, $t:ident) => {
        concat!(stringify!($t), ".state <= 2")
    };
    (unfinished) => {
        "state <= 3"
    };
    (unfinished, $t:ident) => {
        concat!(stringify!($t), ".state <= 3")
    };
    (finished) => {
        "state >= 4"
    };
    (leased) => {
        "(state = 1 OR state = 3)"
    };
    (ended) => {
        "(state = 4 OR state = 5)"
    };
    (paused) => {
        "state = 3"
    };
    (failed) => {
        "state = 5"
    };
}

pub(crate) use {state_code, state_is};

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;
    use DeliveryState::*;

    #[test]
    fn state_names_round_trip() -> Result<()> {
        for state in DeliveryState::ALL {
            assert_eq!(DeliveryState::parse(state.as_str())?, state);
            assert_eq!(DeliveryState::from_code(state.code()), state);
        }
        assert!(DeliveryState::parse("done").is_err());
        Ok(())
    }

    #[test]
    fn the_sql_codes_and_conditions_agree_with_the_states() -> Result<()> {
        let codes = [
            (Pending, state_code!(Pending)),
            (Sending, state_code!(Sending)),
            (Retrying, state_code!(Retrying)),
            (Paused, state_code!(Paused)),
            (Succeeded, state_code!(Succeeded)),
            (Failed, state_code!(Failed)),
            (Cancelled, state_code!(Cancelled)),
        ];
        for (state, code) in codes {
            assert_eq!(code, state.code().to_string(), "{state:?}");
        }
        let conn = Connection::open_in_memory()?;
        let holds = |condition: &str, state: DeliveryState| -> Result<bool> {
            let sql = format!("SELECT {condition} FROM (SELECT ?1 AS state) AS d");
            Ok(conn.query_row(&sql, [state.code()], |r| r.get(0))?)
        };
        for state in DeliveryState::ALL {
            assert_eq!(holds(state_is!(due), state)?, matches!(state, Pending | Sending | Retrying), "{state:?}");
            assert_eq!(holds(state_is!(due, d), state)?, holds(state_is!(due), state)?);
            assert_eq!(holds(state_is!(unfinished), state)?, state.is_unfinished(), "{state:?}");
            assert_eq!(holds(state_is!(unfinished, d), state)?, state.is_unfinished());
            assert_eq!(holds(state_is!(finished), state)?, !state.is_unfinished(), "{state:?}");
            assert_eq!(holds(state_is!(leased), state)?, matches!(state, Sending | Paused), "{state:?}");
            assert_eq!(holds(state_is!(ended), state)?, matches!(state, Succeeded | Failed), "{state:?}");
            assert_eq!(holds(state_is!(paused), state)?, state == Paused);
            assert_eq!(holds(state_is!(failed), state)?, state == Failed);
        }
        Ok(())
    }
}
