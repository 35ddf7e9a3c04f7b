//! Protection of `/v1/`: the client's address (the peer, or `X-Forwarded-For` from a trusted
//! proxy), its API key (when keys are configured) and its rate limits, before any body is read.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, seconds_up};
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
}

impl Protection {
    /// No keys and no limits (tests and tools).
    pub fn open() -> Self {
        Protection {
            keys: ApiKeys::open(),
            limits: RateLimits::new(&crate::rate_limit::RateLimitSettings::off()),
            trusted_proxies: Vec::new(),
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

/// The caller of a request: its tenant when API keys are configured.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The tenant of the presented key.
    pub tenant: Option<Arc<Tenant>>,
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
        Caller::default()
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

/// `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (seconds), as in the IETF draft.
fn set_rate_headers(headers: &mut HeaderMap, allowed: &Allowed) {
    let reset = seconds_up(allowed.reset);
    for (name, value) in [
        ("ratelimit-limit", u64::from(allowed.limit)),
        ("ratelimit-remaining", u64::from(allowed.remaining)),
        ("ratelimit-reset", reset),
    ] {
        headers.insert(HeaderName::from_static(name), HeaderValue::from(value));
    }
}

#[cfg(test)]
mod tests {
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
