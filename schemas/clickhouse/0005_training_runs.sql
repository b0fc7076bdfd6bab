-- One row per trainer job that got as far as a decision: published, held back by the
-- evaluation gate, or failed (with the reason). Versions themselves arrive through the
-- control topic into `versions`; this table also keeps the candidates that never shipped.

CREATE TABLE IF NOT EXISTS $database.training_runs
(
    run_id String,
    agent_name LowCardinality(String),
    algorithm LowCardinality(String),
    window_id String,
    dataset_hash String,
    episodes UInt32,
    parent_version Nullable(String),
    candidate_version String,
    outcome LowCardinality(String),
    reason Nullable(String) CODEC(ZSTD(3)),
    metrics Map(LowCardinality(String), Float64),
    started_at DateTime64(3, 'UTC'),
    finished_at DateTime64(3, 'UTC')
)
ENGINE = $engine
ORDER BY (agent_name, started_at, run_id)
SETTINGS $settings;
