-- Releases: a version may start as a canary on a share of its target's rollouts
-- (`versions.traffic_share` below 1); the release controller, or a person, then promotes
-- it or rolls it back. Every decision is kept with its evidence per arm (the canary first):
-- what the dashboard's versions page shows and what analysts audit a rollback by.
-- Serving replicas acknowledge each model version they loaded, failed to load or unloaded.

ALTER TABLE $database.versions
    ADD COLUMN IF NOT EXISTS traffic_share Float64 DEFAULT 1.0 AFTER recipe;

CREATE TABLE IF NOT EXISTS $database.release_decisions
(
    event_id String,
    decided_at DateTime64(9, 'UTC'),
    target_agent LowCardinality(Nullable(String)),
    kind LowCardinality(String),
    version_id String,
    to_version Nullable(String),
    action LowCardinality(String),
    traffic_share Float64,
    automatic Bool,
    reason String,
    rule String,
    arms Array(Tuple(
        version_id String,
        episodes UInt64,
        mean_reward Float64,
        reward_lower Float64,
        reward_upper Float64,
        error_rate Float64,
        latency_mean_s Float64,
        tokens_mean Float64
    ))
)
ENGINE = $engine
ORDER BY (decided_at, version_id, event_id)
SETTINGS $settings;

CREATE TABLE IF NOT EXISTS $database.serving_acks
(
    event_id String,
    acked_at DateTime64(9, 'UTC'),
    replica_id LowCardinality(String),
    pool LowCardinality(String),
    version_id String,
    model_name String,
    status LowCardinality(String),
    detail Nullable(String)
)
ENGINE = $engine
ORDER BY (acked_at, version_id, replica_id, event_id)
SETTINGS $settings;
