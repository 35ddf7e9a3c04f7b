//! Request rate limits per client: each route class (uploads, searches, reads) has a quota per
//! client address and one per API key, enforced with `governor` (GCRA: a burst of N, then one
//! request every period/N). Keyed state is bounded: idle keys are swept, and a full table turns
//! new clients away (clients it already tracks go on) instead of growing.

use std::fmt;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::nanos::Nanos;
use governor::state::StateStore;
use governor::state::keyed::{DashMapStateStore, ShrinkableKeyedStateStore};
use governor::{Quota, RateLimiter};
use serde::Serialize;

use crate::telemetry::prometheus::Exposition;

/// A rate such as `10/min`, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateSpec {
    /// No limit.
    Off,
    /// At most `count` requests per `per` (as a burst, refilled evenly).
    Every {
        /// Requests allowed per period.
        count: NonZeroU32,
        /// The period.
        per: Duration,
    },
}

impl RateSpec {
    /// The governor quota (`None` when off).
    fn quota(self) -> Option<Quota> {
        match self {
            RateSpec::Off => None,
            RateSpec::Every { count, per } => {
                Quota::with_period(per / count.get()).map(|q| q.allow_burst(count))
            }
        }
    }
}

impl FromStr for RateSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("off") {
            return Ok(RateSpec::Off);
        }
        let bad = || format!("`{s}` is not a rate: use N/s, N/min, N/h, N/day or off");
        let (count, unit) = s.split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let count = NonZeroU32::new(count).ok_or_else(bad)?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            "d" | "day" => Duration::from_secs(86_400),
            _ => return Err(bad()),
        };
        if (per / count.get()).is_zero() {
            return Err(format!(
                "`{s}` is more than one request a nanosecond: use off"
            ));
        }
        Ok(RateSpec::Every { count, per })
    }
}

impl fmt::Display for RateSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateSpec::Off => f.write_str("off"),
            RateSpec::Every { count, per } => {
                let unit = match per.as_secs() {
                    1 => "s",
                    60 => "min",
                    3600 => "h",
                    _ => "day",
                };
                write!(f, "{count}/{unit}")
            }
        }
    }
}

impl Serialize for RateSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// An IP network (`10.0.0.0/8`, `::1/128`, or a single address) of trusted proxies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Whether `ip` lies in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let full = usize::from(prefix / 8);
    let rest = prefix % 8;
    if a[..full] != b[..full] {
        return false;
    }
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        a[full] & mask == b[full] & mask
    }
}

impl FromStr for IpNet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}` is not an IP address or network (e.g. 10.0.0.0/8)");
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr = canonical(addr.parse().map_err(|_| bad())?);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(IpNet { addr, prefix })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for IpNet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The key a client address is limited under: the address itself for IPv4, its /64 for IPv6
/// (one host usually holds a whole /64, so single addresses would be free to rotate).
pub fn address_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let mut octets = v6.octets();
            octets[8..].fill(0);
            IpAddr::V6(octets.into())
        }
        v4 => v4,
    }
}

/// What a route costs, for rate limiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteClass {
    /// Report uploads (photos stored and embedded).
    Upload,
    /// Model runs and vector searches.
    Search,
    /// Everything else under `/v1/`.
    Read,
    /// Messages to a report's owner (text written by anyone to someone: spam's way in).
    Message,
}

impl RouteClass {
    /// Every class.
    pub const ALL: [RouteClass; 4] = [
        RouteClass::Upload,
        RouteClass::Search,
        RouteClass::Read,
        RouteClass::Message,
    ];

    /// Its name in metrics and errors.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteClass::Upload => "upload",
            RouteClass::Search => "search",
            RouteClass::Read => "read",
            RouteClass::Message => "message",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The quotas of one route class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ClassRates {
    /// Per client address.
    pub per_address: RateSpec,
    /// Per API key.
    pub per_key: RateSpec,
}

/// Rate limit settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RateLimitSettings {
    /// Quotas of uploads, searches, reads and messages.
    pub classes: [ClassRates; 4],
    /// Most clients (addresses or keys) tracked per quota; beyond it new clients get 429.
    pub max_tracked: usize,
}

impl RateLimitSettings {
    /// No limits at all.
    pub fn off() -> Self {
        let off = ClassRates {
            per_address: RateSpec::Off,
            per_key: RateSpec::Off,
        };
        RateLimitSettings {
            classes: [off; 4],
            max_tracked: 100_000,
        }
    }
}

/// Which quota turned a request away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitScope {
    /// The client address's quota.
    Address,
    /// The API key's quota.
    Key,
}

/// A request within its quotas, and the tightest of them (for `RateLimit-*` headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowed {
    /// Requests per period.
    pub limit: u32,
    /// Requests left in the current burst.
    pub remaining: u32,
    /// Until the burst is full again.
    pub reset: Duration,
}

/// A request over a quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// Its route class.
    pub class: RouteClass,
    /// Which quota.
    pub scope: LimitScope,
    /// Requests per period of that quota.
    pub limit: u32,
    /// When the next request of this client fits (0 when the client table is full).
    pub retry_after: Duration,
    /// The client table of that quota is full (too many distinct clients at once).
    pub table_full: bool,
}

type KeyedLimiter<K> = RateLimiter<K, SharedStore<K>, DefaultClock, StateInformationMiddleware>;

/// governor's DashMap store behind an `Arc`, so that the bucket can also ask whether it already
/// tracks a client (governor's limiter does not say).
struct SharedStore<K: Hash + Eq + Clone>(Arc<DashMapStateStore<K>>);

impl<K: Hash + Eq + Clone> StateStore for SharedStore<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        self.0.measure_and_replace(key, f)
    }
}

impl<K: Hash + Eq + Clone> ShrinkableKeyedStateStore<K> for SharedStore<K> {
    fn retain_recent(&self, drop_below: Nanos) {
        self.0.retain_recent(drop_below);
    }

    fn shrink_to_fit(&self) {
        ShrinkableKeyedStateStore::shrink_to_fit(&*self.0);
    }

    fn len(&self) -> usize {
        ShrinkableKeyedStateStore::len(&*self.0)
    }

    fn is_empty(&self) -> bool {
        ShrinkableKeyedStateStore::is_empty(&*self.0)
    }
}

/// One quota over many clients.
struct Bucket<K: Hash + Eq + Clone> {
    limiter: KeyedLimiter<K>,
    /// The limiter's clients (the same map).
    clients: Arc<DashMapStateStore<K>>,
    quota: Quota,
    /// When a full table was last swept from a request: a sweep walks the whole table, so
    /// requests may trigger one at most every [`SWEEP_EVERY`], never one each.
    last_inline_sweep: Mutex<Option<Instant>>,
}

/// Least time between two sweeps triggered by requests finding the table full.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

impl<K: Hash + Eq + Clone> Bucket<K> {
    fn new(spec: RateSpec) -> Option<Self> {
        let quota = spec.quota()?;
        let clients = Arc::new(DashMapStateStore::default());
        Some(Bucket {
            limiter: KeyedLimiter::new(
                quota,
                SharedStore(clients.clone()),
                DefaultClock::default(),
            ),
            clients,
            quota,
            last_inline_sweep: Mutex::new(None),
        })
    }

    /// Takes one request of `key`'s quota.
    fn check(&self, key: &K, max_tracked: usize) -> Result<Allowed, (Duration, bool)> {
        if self.limiter.len() >= max_tracked && !self.clients.contains_key(key) {
            self.sweep_if_due();
            if self.limiter.len() >= max_tracked {
                return Err((SWEEP_EVERY, true));
            }
        }
        let per_cell = self.quota.replenish_interval();
        match self.limiter.check_key(key) {
            Ok(state) => {
                let remaining = state.remaining_burst_capacity();
                let limit = self.quota.burst_size().get();
                Ok(Allowed {
                    limit,
                    remaining,
                    reset: per_cell * (limit - remaining),
                })
            }
            Err(not_until) => Err((not_until.wait_time_from(self.limiter.clock().now()), false)),
        }
    }

    /// Sweeps unless a request swept less than [`SWEEP_EVERY`] ago or one is sweeping now.
    fn sweep_if_due(&self) {
        let Ok(mut last) = self.last_inline_sweep.try_lock() else {
            return;
        };
        if last.is_some_and(|at| at.elapsed() < SWEEP_EVERY) {
            return;
        }
        self.sweep();
        *last = Some(Instant::now());
    }

    /// Forgets clients whose quota is full again (they are as if never seen).
    fn sweep(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

struct ClassLimiters {
    per_address: Option<Bucket<IpAddr>>,
    per_key: Option<Bucket<Arc<str>>>,
}

/// Counters of the rate limiter.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RateLimitSnapshot {
    /// Requests turned away, by class: upload, search, read, message.
    pub rejected_total: [u64; 4],
    /// Of those, turned away because a client table was full.
    pub rejected_table_full_total: u64,
    /// Clients tracked now (addresses and keys, all classes).
    pub tracked_clients: usize,
}

impl RateLimitSnapshot {
    /// Prometheus lines: refusals by route class, and the clients tracked.
    pub fn render(&self, out: &mut Exposition) {
        out.help(
            "lookalike_rate_limited_total",
            "counter",
            "Requests refused with 429 by the rate limits, by route class.",
        );
        for (class, n) in RouteClass::ALL.iter().zip(self.rejected_total) {
            out.sample(
                "lookalike_rate_limited_total",
                &[("class", class.as_str())],
                n as f64,
            );
        }
        out.single(
            "lookalike_rate_limit_tracked_clients",
            "gauge",
            "Clients (addresses and keys) the rate limiters track now.",
            self.tracked_clients as f64,
        );
    }
}

/// The service's rate limits; share one behind an `Arc`.
pub struct RateLimits {
    classes: [ClassLimiters; 4],
    max_tracked: usize,
    rejected: [AtomicU64; 4],
    rejected_table_full: AtomicU64,
}

impl RateLimits {
    /// Limits from the settings (a quota set to `off` is not enforced).
    pub fn new(settings: &RateLimitSettings) -> Self {
        let classes = settings.classes.map(|c| ClassLimiters {
            per_address: Bucket::new(c.per_address),
            per_key: Bucket::new(c.per_key),
        });
        RateLimits {
            classes,
            max_tracked: settings.max_tracked.max(1),
            rejected: Default::default(),
            rejected_table_full: AtomicU64::new(0),
        }
    }

    /// Takes one request of `class` from the client's quotas: its address's and, when it
    /// presented one, its API key's. `Ok(None)` when no quota applies.
    pub fn check(
        &self,
        class: RouteClass,
        address: IpAddr,
        key: Option<&Arc<str>>,
    ) -> Result<Option<Allowed>, Limited> {
        let limiters = &self.classes[class.index()];
        let mut tightest: Option<Allowed> = None;
        let mut take = |allowed: Allowed| {
            if tightest.is_none_or(|t| allowed.remaining < t.remaining) {
                tightest = Some(allowed);
            }
        };
        if let Some(bucket) = &limiters.per_address {
            let allowed = bucket
                .check(&address_key(address), self.max_tracked)
                .map_err(|e| self.limited(class, LimitScope::Address, bucket, e))?;
            take(allowed);
        }
        if let (Some(bucket), Some(key)) = (&limiters.per_key, key) {
            let allowed = bucket
                .check(key, self.max_tracked)
                .map_err(|e| self.limited(class, LimitScope::Key, bucket, e))?;
            take(allowed);
        }
        Ok(tightest)
    }

    fn limited<K: Hash + Eq + Clone>(
        &self,
        class: RouteClass,
        scope: LimitScope,
        bucket: &Bucket<K>,
        (retry_after, table_full): (Duration, bool),
    ) -> Limited {
        self.rejected[class.index()].fetch_add(1, Ordering::Relaxed);
        if table_full {
            self.rejected_table_full.fetch_add(1, Ordering::Relaxed);
        }
        Limited {
            class,
            scope,
            limit: bucket.quota.burst_size().get(),
            retry_after,
            table_full,
        }
    }

    /// Forgets idle clients in every quota (run now and then, so the tables stay small).
    pub fn sweep(&self) {
        for class in &self.classes {
            if let Some(b) = &class.per_address {
                b.sweep();
            }
            if let Some(b) = &class.per_key {
                b.sweep();
            }
        }
    }

    /// Counters for status and metrics.
    pub fn snapshot(&self) -> RateLimitSnapshot {
        let tracked_clients = self
            .classes
            .iter()
            .map(|c| {
                c.per_address.as_ref().map_or(0, |b| b.limiter.len())
                    + c.per_key.as_ref().map_or(0, |b| b.limiter.len())
            })
            .sum();
        RateLimitSnapshot {
            rejected_total: self.rejected.each_ref().map(|n| n.load(Ordering::Relaxed)),
            rejected_table_full_total: self.rejected_table_full.load(Ordering::Relaxed),
            tracked_clients,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(upload_per_address: &str, upload_per_key: &str) -> RateLimitSettings {
        let mut s = RateLimitSettings::off();
        s.classes[0] = ClassRates {
            per_address: upload_per_address.parse().unwrap(),
            per_key: upload_per_key.parse().unwrap(),
        };
        s
    }

    #[test]
    fn rates_parse_and_print() {
        assert_eq!("10/min".parse::<RateSpec>().unwrap().to_string(), "10/min");
        assert_eq!("50/h".parse::<RateSpec>().unwrap().to_string(), "50/h");
        assert_eq!("off".parse::<RateSpec>().unwrap(), RateSpec::Off);
        for bad in [
            "",
            "10",
            "0/min",
            "-1/min",
            "10/fortnight",
            "x/s",
            "4000000000/s",
        ] {
            assert!(bad.parse::<RateSpec>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn networks_match_by_prefix() {
        let net: IpNet = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.0.9".parse().unwrap()));
        let one: IpNet = "::1".parse().unwrap();
        assert!(one.contains("::1".parse().unwrap()));
        assert!(!one.contains("::2".parse().unwrap()));
        let odd: IpNet = "192.168.0.0/23".parse().unwrap();
        assert!(odd.contains("192.168.1.255".parse().unwrap()));
        assert!(!odd.contains("192.168.2.0".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<IpNet>().is_err());
        assert!("nonsense".parse::<IpNet>().is_err());
    }

    #[test]
    fn ipv6_clients_are_limited_by_their_64() {
        let a = address_key("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = address_key("2001:db8:1:2:bbbb::7".parse().unwrap());
        let c = address_key("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn a_burst_then_a_refusal_with_the_wait() {
        let limits = RateLimits::new(&settings("3/min", "off"));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let remaining: Vec<u32> = (0..3)
            .map(|_| {
                limits
                    .check(RouteClass::Upload, ip, None)
                    .unwrap()
                    .unwrap()
                    .remaining
            })
            .collect();
        assert_eq!(remaining, [2, 1, 0]);
        let refused = limits.check(RouteClass::Upload, ip, None).unwrap_err();
        assert_eq!(refused.scope, LimitScope::Address);
        assert_eq!(refused.limit, 3);
        // One request every 20 s refills the burst.
        assert!(refused.retry_after > Duration::from_secs(15));
        assert!(refused.retry_after <= Duration::from_secs(20));
        // Other addresses and other classes are unaffected.
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(limits.check(RouteClass::Upload, other, None).is_ok());
        assert_eq!(limits.check(RouteClass::Read, ip, None), Ok(None));
        assert_eq!(limits.snapshot().rejected_total, [1, 0, 0, 0]);
    }

    #[test]
    fn idle_clients_are_forgotten_by_a_sweep() {
        let limits = RateLimits::new(&settings("1000/s", "1000/s"));
        let key: Arc<str> = "acme".into();
        for last in 1..=50u8 {
            let ip = IpAddr::from([192, 0, 2, last]);
            assert!(limits.check(RouteClass::Upload, ip, Some(&key)).is_ok());
        }
        assert_eq!(limits.snapshot().tracked_clients, 51);
        // One request refills in 1 ms; the key took 50, so after 100 ms every client (the key
        // included) is as if never seen.
        std::thread::sleep(Duration::from_millis(100));
        limits.sweep();
        assert_eq!(limits.snapshot().tracked_clients, 0);
    }

    #[test]
    fn a_full_client_table_turns_new_clients_away() {
        let mut s = settings("5/min", "off");
        s.max_tracked = 2;
        let limits = RateLimits::new(&s);
        for last in 1..=2u8 {
            let ip = IpAddr::from([192, 0, 2, last]);
            assert!(limits.check(RouteClass::Upload, ip, None).is_ok());
        }
        let refused = limits
            .check(RouteClass::Upload, IpAddr::from([192, 0, 2, 3]), None)
            .unwrap_err();
        assert!(refused.table_full);
        // The clients it already tracks go on.
        assert!(
            limits
                .check(RouteClass::Upload, IpAddr::from([192, 0, 2, 1]), None)
                .is_ok()
        );
        assert_eq!(limits.snapshot().tracked_clients, 2);
        assert_eq!(limits.snapshot().rejected_table_full_total, 1);
    }
}
