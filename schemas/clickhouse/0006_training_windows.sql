-- The scheduler's log of training windows: one row when a window's job starts, one when it
-- ends (succeeded or failed, with the reason). Rows are immutable; a window's state is the
-- set of its rows. The end of a target's last started window is where its next one begins,
-- so a restarted scheduler continues from here (and from the Jobs still in the cluster).

CREATE TABLE IF NOT EXISTS $database.training_windows
(
    window_id String,
    agent_name LowCardinality(String),
    algorithm LowCardinality(String),
    since Nullable(DateTime64(6, 'UTC')),
    until DateTime64(6, 'UTC'),
    episodes UInt32,
    mean_reward Float64,
    trigger LowCardinality(String),
    job_name String,
    state LowCardinality(String),
    reason Nullable(String) CODEC(ZSTD(3)),
    recorded_at DateTime64(3, 'UTC')
)
ENGINE = $engine
ORDER BY (agent_name, algorithm, until, window_id, state)
SETTINGS $settings;
