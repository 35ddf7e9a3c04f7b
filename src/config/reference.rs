//! The configuration reference (`docs/configuration.md`), generated from the command line that
//! `lookalike serve --help` prints, so that the document cannot drift from the flags.

use clap::CommandFactory;

use super::Cli;

/// The reference in Markdown: every `serve` setting (and the global log settings) with its flag,
/// environment variable, default and description, in the order `--help` lists them.
pub fn reference_markdown() -> String {
    let mut cli = Cli::command();
    cli.build();
    let mut out = String::from(
        "# Configuration\n\n\
         <!-- Generated from `lookalike serve --help` by `src/config/reference.rs`; do not edit.\n\
         LOOKALIKE_UPDATE_CONFIG_DOCS=1 cargo test --lib config:: rewrites it. -->\n\n\
         Every setting is a flag and an environment variable; a flag wins over its variable. The\n\
         effective configuration is logged at start, secrets redacted. `lookalike work` and\n\
         `lookalike import` take the same database, model, gate, imaging, upload, photo store,\n\
         job and search settings as `serve` (`lookalike <command> --help` lists each command's).\n\n\
         | flag | environment | default | what |\n|---|---|---|---|\n",
    );
    let serve = cli
        .get_subcommands()
        .find(|c| c.get_name() == "serve")
        .cloned();
    let args = serve
        .iter()
        .flat_map(|s| s.get_arguments().cloned().collect::<Vec<_>>())
        .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"));
    for arg in args {
        let Some(long) = arg.get_long() else { continue };
        let flag = std::iter::once(long.to_owned())
            .chain(
                arg.get_visible_aliases()
                    .into_iter()
                    .flatten()
                    .map(str::to_owned),
            )
            .map(|l| format!("`--{l}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let env = arg
            .get_env()
            .map(|e| format!("`{}`", e.to_string_lossy()))
            .unwrap_or_default();
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|d| d.to_string_lossy().into_owned())
            .collect();
        let default = if defaults.is_empty() {
            "none".to_owned()
        } else {
            format!("`{}`", defaults.join(","))
        };
        let mut what = arg
            .get_long_help()
            .or(arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let values: Vec<String> = arg
            .get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| format!("`{}`", v.get_name()))
            .collect();
        if !values.is_empty() && values != ["`true`", "`false`"] {
            what.push_str(&format!(" One of {}.", values.join(", ")));
        }
        out.push_str(&format!(
            "| {flag} | {env} | {default} | {} |\n",
            what.replace('|', "\\|")
        ));
    }
    out
}
