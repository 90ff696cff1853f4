//! Endpoint names: unique among the endpoints not deleted (a partial unique index, schema
//! version 5), so configuration can declare endpoints by name and be applied again and again
//! ([`upsert`]) without making copies.

use rusqlite::{Connection, OptionalExtension};

use super::{Endpoint, EndpointSpec, EndpointUpdate};
use crate::error::{Error, Result};

/// The id of the live endpoint named `name`, if any.
pub(crate) fn holder(conn: &Connection, name: &str) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT id FROM tidings_endpoints WHERE name = ?1 AND deleted_at IS NULL")?
        .query_row([name], |r| r.get(0))
        .optional()?)
}

/// [`Error::InvalidInput`] if another live endpoint than `except_id` is named `name`.
pub(crate) fn check_free(conn: &Connection, name: &str, except_id: Option<&str>) -> Result<()> {
    match holder(conn, name)? {
        Some(id) if Some(id.as_str()) != except_id => Err(Error::invalid(
            "name",
            format!("endpoint {id} already has this name (names are unique; upsert_endpoint changes that endpoint)"),
        )),
        _ => Ok(()),
    }
}

/// Creates the endpoint named `spec.name`, or brings the live endpoint of that name to `spec`:
/// every setting from `spec`; its secret only when `spec.secret` is given and differs (a
/// rotation: the old secret keeps signing for `grace`); enabled or disabled as `spec` says.
/// Returns the endpoint and whether it was created.
pub(crate) fn upsert(conn: &Connection, spec: &EndpointSpec, grace: std::time::Duration) -> Result<(Endpoint, bool)> {
    let Some(name) = spec.name.as_deref() else {
        return Err(Error::invalid("name", "an upsert finds its endpoint by name: give one"));
    };
    let Some(id) = holder(conn, name)? else {
        return Ok((super::create(conn, spec)?, true));
    };
    let mut endpoint = super::update(conn, &id, &EndpointUpdate::from_spec(spec))?;
    if let Some(secret) = spec.secret.as_deref()
        && endpoint.secret != crate::signing::Secret::parse(secret)?
    {
        endpoint = super::rotate_secret(conn, &id, Some(secret), grace)?;
    }
    Ok((endpoint, false))
}
