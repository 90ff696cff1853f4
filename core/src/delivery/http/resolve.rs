//! Name resolution under the egress policy: `ureq`'s resolver, then every resolved address
//! checked ([`crate::egress::EgressPolicy::check`]); refused ones are dropped, and a host with
//! none left fails before any socket is opened.

use std::fmt;

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

use crate::egress::{EgressPolicy, EgressRefused};

/// Every address of the host was refused by the egress policy (carried in `ureq::Error::Other`);
/// `show` is the policy's [`EgressPolicy::shows_addresses`].
#[derive(Debug)]
pub(super) struct AllAddressesRefused {
    pub(super) refused: Vec<EgressRefused>,
    pub(super) show: bool,
}

impl fmt::Display for AllAddressesRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.refused.as_slice() {
            [] => f.write_str("the host has no address the egress policy allows"),
            [one] => f.write_str(&one.describe(self.show)),
            [first, rest @ ..] => {
                write!(f, "{} (and {} more addresses of the host are refused)", first.describe(self.show), rest.len())
            }
        }
    }
}

impl std::error::Error for AllAddressesRefused {}

/// The host name lookup failed (carried in `ureq::Error::Other`).
#[derive(Debug)]
pub(super) struct LookupFailed(pub(super) String);

impl fmt::Display for LookupFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the host name did not resolve: {}", self.0)
    }
}

impl std::error::Error for LookupFailed {}

/// `ureq`'s default resolver followed by the egress policy on every resolved address.
#[derive(Debug)]
pub(super) struct EgressResolver {
    pub(super) policy: EgressPolicy,
    pub(super) inner: DefaultResolver,
}

impl Resolver for EgressResolver {
    fn resolve(&self, uri: &Uri, config: &Config, timeout: NextTimeout) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let resolved = match self.inner.resolve(uri, config, timeout) {
            Ok(addrs) => addrs,
            Err(ureq::Error::Io(e)) => return Err(ureq::Error::Other(Box::new(LookupFailed(e.to_string())))),
            Err(e) => return Err(e),
        };
        let (allowed, refused) = filter_allowed(&self.policy, &resolved, self.inner.empty());
        if allowed.is_empty() {
            let show = self.policy.shows_addresses();
            return Err(ureq::Error::Other(Box::new(AllAddressesRefused { refused, show })));
        }
        if !refused.is_empty() {
            tracing::debug!(
                refused = refused.len(),
                allowed = allowed.len(),
                "egress policy dropped resolved addresses"
            );
        }
        Ok(allowed)
    }
}

/// Splits `resolved` into the addresses `policy` allows (pushed onto `allowed`) and refusals.
pub(super) fn filter_allowed(
    policy: &EgressPolicy,
    resolved: &[std::net::SocketAddr],
    mut allowed: ResolvedSocketAddrs,
) -> (ResolvedSocketAddrs, Vec<EgressRefused>) {
    let mut refused = Vec::new();
    for addr in resolved {
        match policy.check(addr.ip()) {
            Ok(()) => allowed.push(*addr),
            Err(r) => refused.push(r),
        }
    }
    (allowed, refused)
}
