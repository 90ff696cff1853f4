//! Options for opening a [`crate::Store`]: durability, busy timeout, limits and the egress policy.
//!
//! Every option has the default of the design (section 6); `StoreOptions::default()` is what
//! `Store::open(path, Default::default())` uses.

use std::time::Duration;

/// How hard a commit tries to survive power loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Durability {
    /// WAL with `synchronous = NORMAL`: survives any process crash; a power loss may roll back
    /// the last commits, all together. The delivery engine syncs the WAL before it sends, so no
    /// webhook announces an event that could still be rolled back.
    #[default]
    Normal,
    /// Every commit is on disk before it returns: the WAL is fsynced after the commit. Commits
    /// made concurrently by several threads share one fsync (group commit), so throughput
    /// grows with the number of writing threads instead of being one fsync per commit.
    Full,
}

impl Durability {
    /// `"normal"` or `"full"` (the bindings' spelling; [`Durability::parse`] reads it back).
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Normal => "normal",
            Durability::Full => "full",
        }
    }

    /// Parses `"normal"` or `"full"` (the bindings' spelling).
    pub fn parse(s: &str) -> crate::Result<Durability> {
        match s.to_ascii_lowercase().as_str() {
            "normal" => Ok(Durability::Normal),
            "full" => Ok(Durability::Full),
            _ => Err(crate::Error::invalid("durability", "expected \"normal\" or \"full\"")),
        }
    }
}

/// Options for [`crate::Store::open`].
///
/// ```
/// use std::time::Duration;
/// let options = tidings::StoreOptions {
///     source: "host-1".into(),
///     busy_timeout: Duration::from_secs(2),
///     ..Default::default()
/// };
/// # let _ = options;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct StoreOptions {
    /// Identifies this producer in every webhook body (`source`); defaults to the host name.
    pub source: String,
    /// Commit durability; see [`Durability`].
    pub durability: Durability,
    /// How long a write waits for the database lock (held by another thread's transaction or
    /// another process) before failing with [`crate::Error::Busy`]. Default 5 s.
    pub busy_timeout: Duration,
    /// Largest event (data + metadata, serialised) accepted by `append`. Default 1 MiB.
    pub max_event_size: usize,
    /// How long the previous secret keeps signing after a rotation. Default 24 h.
    pub rotation_grace: Duration,
    /// Upper bound of the WAL file kept after a checkpoint (`journal_size_limit`). Default 64 MiB.
    pub wal_size_limit: u64,
    /// How often waits (long-poll reads, the delivery engine) look for commits made by other
    /// processes. Commits in this process wake them at once. Default 100 ms.
    pub poll_interval: Duration,
    /// Largest number of idle read connections kept open. Default 4.
    pub max_idle_readers: usize,
    /// Which addresses webhooks (deliveries, `send_test`, `call`) may be sent to. By default
    /// loopback, private, link-local, unique-local, multicast and metadata addresses are
    /// refused, checked on the resolved address at connect time.
    pub egress: crate::egress::EgressPolicy,
    /// Per-tenant event rate meters (warn or enforce); empty by default.
    pub tenant_rates: Vec<crate::rates::TenantRate>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            source: default_source(),
            durability: Durability::Normal,
            busy_timeout: Duration::from_secs(5),
            max_event_size: 1024 * 1024,
            rotation_grace: Duration::from_secs(24 * 3600),
            wal_size_limit: 64 * 1024 * 1024,
            poll_interval: Duration::from_millis(100),
            max_idle_readers: 4,
            egress: crate::egress::EgressPolicy::default(),
            tenant_rates: Vec::new(),
        }
    }
}

impl StoreOptions {
    /// Checks every option; called by `Store::open`.
    pub(crate) fn validate(&self) -> crate::Result<()> {
        use crate::Error;
        if self.source.is_empty() || self.source.len() > 200 || self.source.chars().any(char::is_control) {
            return Err(Error::invalid("source", "must be 1 to 200 characters without control characters"));
        }
        if self.busy_timeout > Duration::from_secs(3600) {
            return Err(Error::invalid("busy_timeout", "must be at most one hour"));
        }
        if self.max_event_size < 1024 || self.max_event_size > 64 * 1024 * 1024 {
            return Err(Error::invalid("max_event_size", "must be between 1 KiB and 64 MiB"));
        }
        if self.poll_interval.is_zero() || self.poll_interval > Duration::from_secs(60) {
            return Err(Error::invalid("poll_interval", "must be between 1 ms and 60 s"));
        }
        crate::rates::validate(&self.tenant_rates)?;
        Ok(())
    }
}

fn default_source() -> String {
    let host = gethostname::gethostname().to_string_lossy().trim().to_string();
    if host.is_empty() || host.len() > 200 { "tidings".to_string() } else { host }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durability_names_round_trip() -> crate::Result<()> {
        for durability in [Durability::Normal, Durability::Full] {
            assert_eq!(Durability::parse(durability.as_str())?, durability);
        }
        assert_eq!(Durability::default().as_str(), "normal");
        assert!(
            matches!(Durability::parse("fsync"), Err(crate::Error::InvalidInput { field, .. }) if field == "durability")
        );
        Ok(())
    }
}
