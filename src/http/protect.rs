//! Protection of `/v1/`: the client's address (the peer, or `X-Forwarded-For` from a trusted
//! proxy), its API key (when keys are configured) and its rate limits, before any body is read;
//! and who may read operators' data (`/metrics`, the detailed `/v1/status`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts, Request, State};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, rate_limit_headers, seconds_up};
use crate::rate_limit::{Allowed, IpNet, RateLimits, RouteClass};
use crate::tenants::{ApiKeys, Tenant};

/// The API key header.
pub const API_KEY: &str = "x-api-key";

/// Who may call and how often.
pub struct Protection {
    /// The API keys (none: the service is open).
    pub keys: ApiKeys,
    /// The rate limits.
    pub limits: RateLimits,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// The sha256 of the operator key (`--operator-key`), which opens operators' data to a
    /// client that is not on this host.
    pub operator_key: Option<[u8; 32]>,
}

impl Protection {
    /// No keys and no limits (tests and tools).
    pub fn open() -> Self {
        Protection {
            keys: ApiKeys::open(),
            limits: RateLimits::new(&crate::rate_limit::RateLimitSettings::off()),
            trusted_proxies: Vec::new(),
            operator_key: None,
        }
    }

    /// Whether a request may read operators' data on the public listener: one from this host
    /// (its client address, after trusted proxies, is a loopback address; a request with no
    /// connection at all is the process itself), or one presenting the operator key as
    /// `Authorization: Bearer <key>`. Load figures, tenants and client counts help an attacker
    /// time and aim an attack, so they are not for anyone on the network.
    pub fn is_operator(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> bool {
        let Some(peer) = peer else { return true };
        let address = self.client_address(peer, headers);
        let loopback = match address {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map_or(v6.is_loopback(), |v4| v4.is_loopback()),
            v4 => v4.is_loopback(),
        };
        if loopback {
            return true;
        }
        let presented = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        match (self.operator_key, presented) {
            (Some(key), Some(presented)) => key == operator_key_hash(presented),
            _ => false,
        }
    }

    /// The client's address: the peer, unless the peer is a trusted proxy, in which case the
    /// nearest address in `X-Forwarded-For` that is not itself a trusted proxy.
    pub fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let trusted = |ip: IpAddr| self.trusted_proxies.iter().any(|n| n.contains(ip));
        if !trusted(peer) {
            return peer;
        }
        // Proxies append what they saw, so the list is read from the right; the first address not
        // added by one of our own proxies is the client (anything left of it is client-supplied).
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        let mut client = peer;
        for hop in forwarded.iter().rev() {
            match hop.parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !trusted(ip) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        client
    }
}

/// The sha256 of an operator key (keys are compared by hash, like API keys).
pub fn operator_key_hash(key: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(key.as_bytes()).into()
}

/// Whether the request may read operators' data (see [`Protection::is_operator`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operator(pub bool);

impl<S> FromRequestParts<S> for Operator
where
    Arc<Protection>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(Operator(
            Arc::<Protection>::from_ref(state).is_operator(peer, &parts.headers),
        ))
    }
}

/// The caller of a request: its tenant when API keys are configured, and its address.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The tenant of the presented key.
    pub tenant: Option<Arc<Tenant>>,
    /// The client's address (the peer, or from a trusted proxy's `X-Forwarded-For`); the
    /// unspecified address for a router driven in-process.
    pub address: IpAddr,
}

impl Default for Caller {
    fn default() -> Self {
        Caller {
            tenant: None,
            address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        }
    }
}

impl Caller {
    /// The tenant's id, which scopes what the caller sees.
    pub fn tenant_id(&self) -> Option<&str> {
        self.tenant.as_deref().map(|t| &*t.id)
    }
}

impl<S> FromRequestParts<S> for Caller
where
    Arc<Protection>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    /// The caller `protect` found. Without one (a route it did not see) there is no tenant,
    /// which is refused when keys are required rather than taken for the open service's caller.
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Caller>() {
            Some(caller) => Ok(caller.clone()),
            None if Arc::<Protection>::from_ref(state).keys.enabled() => {
                Err(ApiError::api_key_required())
            }
            None => Ok(Caller::default()),
        }
    }
}

/// What guards one route: the service's keys and limits, and the route's rate-limit class.
#[derive(Clone)]
pub struct Guard {
    protection: Arc<Protection>,
    class: RouteClass,
}

impl Guard {
    /// Guards a route of `class`.
    pub fn new(protection: Arc<Protection>, class: RouteClass) -> Self {
        Guard { protection, class }
    }
}

/// Authenticates and rate-limits a `/v1/` request by its route's class, before any body is read;
/// adds `RateLimit-*` headers to the answer.
pub async fn protect(State(guard): State<Guard>, mut request: Request, next: Next) -> Response {
    let Guard { protection, class } = guard;
    // Without connection info (a router driven in-process) every request shares one address.
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let address = protection.client_address(peer, request.headers());

    let caller = if protection.keys.enabled() {
        let presented = request
            .headers()
            .get(API_KEY)
            .and_then(|v| v.to_str().ok())
            .map(str::trim);
        match presented.map(|k| protection.keys.tenant(k)) {
            Some(Some(tenant)) => Caller {
                tenant: Some(tenant.clone()),
                address,
            },
            refused => {
                // The address's quota still counts, so guessing keys is rate limited too.
                if let Err(limited) = protection.limits.check(class, address, None) {
                    return ApiError::from(limited).into_response();
                }
                let refusal = match refused {
                    Some(_) => ApiError::invalid_api_key(),
                    None => ApiError::api_key_required(),
                };
                return refusal.into_response();
            }
        }
    } else {
        Caller {
            tenant: None,
            address,
        }
    };
    let key = caller.tenant.as_ref().map(|t| &t.id);
    let allowed = match protection.limits.check(class, address, key) {
        Ok(allowed) => allowed,
        Err(limited) => return ApiError::from(limited).into_response(),
    };
    request.extensions_mut().insert(caller);
    let mut response = next.run(request).await;
    if let Some(allowed) = allowed {
        set_rate_headers(response.headers_mut(), &allowed);
    }
    response
}

/// The `RateLimit-*` headers of an answer within its quota.
fn set_rate_headers(headers: &mut HeaderMap, allowed: &Allowed) {
    let [limit, remaining] = [allowed.limit, allowed.remaining].map(u64::from);
    for (name, value) in rate_limit_headers(limit, remaining, seconds_up(allowed.reset)) {
        headers.insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() -> Result<(), String> {
        let mut protection = Protection::open();
        protection.trusted_proxies = vec!["10.0.0.0/8".parse()?];
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("203.0.113.9, 198.51.100.7, 10.0.0.2"),
        );
        let proxy = IpAddr::from([10, 0, 0, 1]);
        let stranger = IpAddr::from([192, 0, 2, 5]);
        // From a trusted proxy: the nearest untrusted hop (the spoofable left part is ignored).
        assert_eq!(
            protection.client_address(proxy, &headers),
            IpAddr::from([198, 51, 100, 7])
        );
        // From anyone else the header is the client's own claim, and ignored.
        assert_eq!(protection.client_address(stranger, &headers), stranger);
        // No header: the proxy itself.
        assert_eq!(protection.client_address(proxy, &HeaderMap::new()), proxy);
        Ok(())
    }
}
