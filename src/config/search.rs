//! Similarity search and matching.

use clap::Args;
use serde::Serialize;

/// Similarity search and matching between reports.
#[derive(Debug, Clone, Copy, Args, Serialize)]
pub struct SearchConfig {
    /// HNSW candidate list size (`hnsw.ef_search`): higher is more exact and slower.
    #[arg(long = "search-ef", env = "LOOKALIKE_SEARCH_EF", default_value_t = 100)]
    pub ef_search: u32,
    /// The relevance floor: the least cosine similarity called a look-alike. A search leaves out
    /// results below it (the client may pass its own `min_score`; 0 shows all), and a possible
    /// match between reports needs it too. Calibrated by `cargo bench --bench labels`.
    #[arg(
        long,
        visible_alias = "match-threshold",
        env = "LOOKALIKE_MIN_SCORE",
        default_value_t = crate::domain::search::DEFAULT_MIN_SCORE
    )]
    pub min_score: f32,
    /// How a search by photo uses the species read in the query photo when the client names
    /// none: `boost` ranks reports of that species first among similar ones, `filter` keeps
    /// only them, `off` ignores it (measured by `cargo bench --bench labels`).
    #[arg(
        long,
        env = "LOOKALIKE_QUERY_SPECIES",
        value_enum,
        default_value_t = crate::domain::search::QuerySpecies::Boost
    )]
    pub query_species: crate::domain::search::QuerySpecies,
    /// Most possible matches kept per report.
    #[arg(long, env = "LOOKALIKE_MATCH_LIMIT", default_value_t = 10)]
    pub match_limit: usize,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            ef_search: 100,
            min_score: crate::domain::search::DEFAULT_MIN_SCORE,
            query_species: crate::domain::search::QuerySpecies::Boost,
            match_limit: 10,
        }
    }
}
