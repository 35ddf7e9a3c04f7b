//! Secrets kept out of the logged configuration.

pub(super) fn redact_secret<S: serde::Serializer>(
    secret: &Option<String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        Some(_) => s.serialize_str("***"),
        None => s.serialize_none(),
    }
}

pub(super) fn redact_keys<S: serde::Serializer>(
    keys: &Option<String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match keys {
        Some(k) => s.serialize_str(&format!(
            "({} keys)",
            k.split(',').filter(|p| !p.trim().is_empty()).count()
        )),
        None => s.serialize_none(),
    }
}

pub(super) fn redact_url<S: serde::Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&redact_secrets(url))
}

pub(super) fn redact_optional_url<S: serde::Serializer>(
    url: &Option<String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match url {
        Some(url) => s.serialize_str(&redact_secrets(url)),
        None => s.serialize_none(),
    }
}

/// Parameter names whose values are secrets, in a URL's query or a `key=value` connection string.
const SECRET_NAMES: [&str; 10] = [
    "password",
    "passwd",
    "pwd",
    "pass",
    "sslpassword",
    "secret",
    "token",
    "access_key",
    "secret_key",
    "signature",
];

/// A connection string with its secrets replaced by `***`, whatever its form: the password of
/// `scheme://user:password@host`, secret query parameters (`?password=...`, `&sslpassword=...`),
/// and secret `key=value` pairs of a libpq-style string (`host=h password=p`).
pub fn redact_secrets(text: &str) -> String {
    let is_secret = |name: &str| {
        let name = name.trim().to_ascii_lowercase();
        SECRET_NAMES
            .iter()
            .any(|s| name == *s || name.ends_with(&format!("_{s}")))
    };
    let Some(scheme_end) = text.find("://") else {
        // libpq keyword/value form: `key=value` pairs separated by spaces (values may be quoted).
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(eq) = rest.find('=') {
            let (name, after) = (&rest[..eq], &rest[eq + 1..]);
            out.push_str(name);
            out.push('=');
            let end = if let Some(quoted) = after.strip_prefix('\'') {
                quoted.find('\'').map_or(after.len(), |i| i + 2)
            } else {
                after.find(char::is_whitespace).unwrap_or(after.len())
            };
            let key = name.rsplit(char::is_whitespace).next().unwrap_or(name);
            out.push_str(if is_secret(key) { "***" } else { &after[..end] });
            rest = &after[end..];
        }
        out.push_str(rest);
        return out;
    };
    let (head, rest) = text.split_at(scheme_end + 3);
    let (rest, fragment) = rest
        .split_once('#')
        .map_or((rest, None), |(r, f)| (r, Some(f)));
    let (authority_path, query) = rest
        .split_once('?')
        .map_or((rest, None), |(r, q)| (r, Some(q)));
    let mut out = head.to_owned();
    // The userinfo ends at the last '@' before the path.
    let path_start = authority_path.find('/').unwrap_or(authority_path.len());
    match authority_path[..path_start].rfind('@') {
        Some(at) => {
            let userinfo = &authority_path[..at];
            match userinfo.split_once(':') {
                Some((user, _)) => out.push_str(&format!("{user}:***")),
                None => out.push_str(userinfo),
            }
            out.push_str(&authority_path[at..]);
        }
        None => out.push_str(authority_path),
    }
    if let Some(query) = query {
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if is_secret(name) => format!("{name}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}
