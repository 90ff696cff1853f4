//! Per-tenant event rate meters (limits per client, counted exactly).
//!
//! Each rule sets a limit in events per minute for one tenant (or, as a default, for every
//! tenant). Meters count appended events in fixed one-minute windows kept in
//! `tidings_tenant_rates`, so every process writing the file shares them. Over the limit, a
//! [`RateMode::Warn`] rule counts a warning and appends one `tidings.rate_limit.exceeded`
//! event per window; a [`RateMode::Enforce`] rule refuses the append with
//! [`crate::Error::RateLimited`] (nothing is written).

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;

use crate::error::{Error, Result};

/// What happens when a tenant goes over its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum RateMode {
    /// Count a warning and emit `tidings.rate_limit.exceeded` once per window; keep appending.
    #[default]
    Warn,
    /// Refuse the append with [`crate::Error::RateLimited`].
    Enforce,
}

impl RateMode {
    /// `"warn"` or `"enforce"`.
    pub fn as_str(self) -> &'static str {
        match self {
            RateMode::Warn => "warn",
            RateMode::Enforce => "enforce",
        }
    }

    /// Parses `"warn"` or `"enforce"`.
    pub fn parse(s: &str) -> Result<RateMode> {
        match s.to_ascii_lowercase().as_str() {
            "warn" => Ok(RateMode::Warn),
            "enforce" => Ok(RateMode::Enforce),
            _ => Err(Error::invalid("mode", "expected \"warn\" or \"enforce\"")),
        }
    }
}

/// A rate limit for one tenant, or for every tenant when `tenant` is `None` (a tenant's own
/// rule wins over the default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRate {
    /// The tenant, or `None` for every tenant without its own rule.
    pub tenant: Option<String>,
    /// Events per minute.
    pub per_minute: u64,
    /// Warn or enforce.
    pub mode: RateMode,
}

/// A tenant's meter as [`crate::Store::rate_stats`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateStats {
    /// The tenant.
    pub tenant: String,
    /// Events appended in the current one-minute window.
    pub current: u64,
    /// The limit in events per minute (`None`: no rule applies).
    pub limit: Option<u64>,
    /// The rule's mode, if a rule applies.
    pub mode: Option<RateMode>,
    /// Times the limit was exceeded (appends over the limit), all windows together.
    pub warnings: u64,
}

const WINDOW_MICROS: i64 = 60_000_000;

/// The rule that applies to `tenant`.
pub(crate) fn rule_for<'a>(rules: &'a [TenantRate], tenant: &str) -> Option<&'a TenantRate> {
    rules.iter().find(|r| r.tenant.as_deref() == Some(tenant)).or_else(|| rules.iter().find(|r| r.tenant.is_none()))
}

/// Checks the rules when opening a store.
pub(crate) fn validate(rules: &[TenantRate]) -> Result<()> {
    for rule in rules {
        if rule.per_minute == 0 {
            return Err(Error::invalid("tenant_rates", "a limit must be at least 1 event per minute"));
        }
        if let Some(t) = &rule.tenant {
            crate::event::validate_tenant(t)?;
        }
    }
    Ok(())
}

/// Counts `n` events for `tenant`. Returns `Ok(true)` when a warning event must be appended
/// (first excess in this window, warn mode); refuses in enforce mode.
pub(crate) fn count(conn: &Connection, rules: &[TenantRate], tenant: &str, n: u64, now: i64) -> Result<bool> {
    let Some(rule) = rule_for(rules, tenant) else { return Ok(false) };
    let window = now.div_euclid(WINDOW_MICROS) * WINDOW_MICROS;
    let row: Option<(i64, u64, Option<i64>)> = conn
        .prepare_cached("SELECT window_start, count, warned_window FROM tidings_tenant_rates WHERE tenant = ?1")?
        .query_row([tenant], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let (current, warned) = match row {
        Some((start, count, warned)) if start == window => (count, warned == Some(window)),
        _ => (0, false),
    };
    let total = current.saturating_add(n);
    let over = total > rule.per_minute;
    if over && rule.mode == RateMode::Enforce {
        return Err(Error::RateLimited { tenant: tenant.to_string(), limit: rule.per_minute });
    }
    let emit = over && !warned;
    conn.prepare_cached(
        "INSERT INTO tidings_tenant_rates (tenant, window_start, count, warnings, warned_window)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (tenant) DO UPDATE SET window_start = excluded.window_start, count = excluded.count,
            warnings = warnings + excluded.warnings, warned_window = coalesce(excluded.warned_window, warned_window)",
    )?
    .execute(params![tenant, window, total, u64::from(over), emit.then_some(window)])?;
    Ok(emit)
}

/// The data of a `tidings.rate_limit.exceeded` event.
pub(crate) fn exceeded_event_data(tenant: &str, limit: u64, current: u64) -> serde_json::Value {
    json!({"tenant": tenant, "limit_per_minute": limit, "current": current})
}

/// Reads a tenant's meter.
pub(crate) fn stats(conn: &Connection, rules: &[TenantRate], tenant: &str, now: i64) -> Result<RateStats> {
    let window = now.div_euclid(WINDOW_MICROS) * WINDOW_MICROS;
    let row: Option<(i64, u64, u64)> = conn
        .prepare_cached("SELECT window_start, count, warnings FROM tidings_tenant_rates WHERE tenant = ?1")?
        .query_row([tenant], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let rule = rule_for(rules, tenant);
    let (current, warnings) = match row {
        Some((start, count, warnings)) => (if start == window { count } else { 0 }, warnings),
        None => (0, 0),
    };
    Ok(RateStats {
        tenant: tenant.to_string(),
        current,
        limit: rule.map(|r| r.per_minute),
        mode: rule.map(|r| r.mode),
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_names_round_trip() -> Result<()> {
        for mode in [RateMode::Warn, RateMode::Enforce] {
            assert_eq!(RateMode::parse(mode.as_str())?, mode);
        }
        assert_eq!(RateMode::parse("ENFORCE")?, RateMode::Enforce);
        assert_eq!(RateMode::default().as_str(), "warn");
        Ok(())
    }

    #[test]
    fn an_unknown_mode_is_invalid_input_on_mode() {
        for bad in ["", "block", "warn "] {
            assert!(
                matches!(RateMode::parse(bad), Err(Error::InvalidInput { field, .. }) if field == "mode"),
                "{bad:?}"
            );
        }
    }
}
