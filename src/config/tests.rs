//! The command line's defaults and the redaction of secrets.
use super::*;

#[test]
fn redacts_secrets_in_every_form_and_nothing_else() {
    for (given, logged) in [
        ("postgres://u:secret@h:5/db", "postgres://u:***@h:5/db"),
        ("postgres://u@h/db", "postgres://u@h/db"),
        (
            "postgres://u@h/db?password=secret&sslmode=disable",
            "postgres://u@h/db?password=***&sslmode=disable",
        ),
        (
            "postgres://h/db?user=u&PassWord=secret&sslpassword=x",
            "postgres://h/db?user=u&PassWord=***&sslpassword=***",
        ),
        // An '@' in the password does not leak its tail.
        ("postgres://u:p@ss@h/db", "postgres://u:***@h/db"),
        (
            "host=h user=u password=secret dbname=d",
            "host=h user=u password=*** dbname=d",
        ),
        (
            "host=h password='se cret' dbname=d",
            "host=h password=*** dbname=d",
        ),
        (
            "s3://bucket/prefix?aws_secret_access_key=k&region=x",
            "s3://bucket/prefix?aws_secret_access_key=***&region=x",
        ),
        ("not a url", "not a url"),
    ] {
        assert_eq!(redact_secrets(given), logged, "{given}");
    }
}

#[test]
fn every_default_parses() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
    let cli = Cli::try_parse_from(["lookalike", "serve"]).unwrap();
    // Building each subcommand runs clap's debug assertions (e.g. two options with one id),
    // which panic; whether "x" parses does not matter.
    for sub in ["import", "search", "embed", "reindex", "migrate"] {
        let _ = Cli::try_parse_from(["lookalike", sub, "x"]);
    }
    let Command::Serve(cfg) = cli.command else {
        panic!("not serve")
    };
    assert_eq!(cfg.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(cfg.core.uploads.max_photo_bytes, 10 * 1024 * 1024);
    assert_eq!(cfg.rate_limits.uploads_per_address.to_string(), "10/min");
    assert_eq!(cfg.rate_limits.uploads_per_key.to_string(), "50/h");
    assert!(cfg.rate_limits.trusted_proxies.is_empty());
    // The open service's limits are on by default.
    assert_eq!(cfg.open_limits.limits().daily_bytes_per_address, 1 << 30);
    assert_eq!(cfg.open_limits.limits().total_bytes, 100 << 30);
    let cli = Cli::try_parse_from([
        "lookalike",
        "serve",
        "--trusted-proxies",
        "10.0.0.0/8,::1",
        "--api-keys",
        "acme:0123456789abcdef",
        "--operator-key",
        "operator-secret-0123",
        "--open-upload-bytes-per-day",
        "0",
    ])
    .unwrap();
    let Command::Serve(cfg) = cli.command else {
        panic!("not serve")
    };
    assert_eq!(cfg.rate_limits.trusted_proxies.len(), 2);
    let logged = serde_json::to_string(&cfg).unwrap();
    assert!(!logged.contains("0123456789abcdef"), "{logged}");
    assert!(!logged.contains("operator-secret"), "{logged}");
    assert_eq!(cfg.open_limits.limits().daily_bytes_per_address, i64::MAX);
}

/// `docs/configuration.md` is what the command line says today; with
/// `LOOKALIKE_UPDATE_CONFIG_DOCS=1` this test writes it instead.
#[test]
fn configuration_reference_is_current() -> std::io::Result<()> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md");
    let fresh = reference_markdown();
    if std::env::var_os("LOOKALIKE_UPDATE_CONFIG_DOCS").is_some() {
        return std::fs::write(&path, fresh);
    }
    let current = std::fs::read_to_string(&path)?;
    assert!(
        current == fresh,
        "docs/configuration.md differs from `lookalike serve --help`: \
         LOOKALIKE_UPDATE_CONFIG_DOCS=1 cargo test --lib config:: rewrites it"
    );
    Ok(())
}
