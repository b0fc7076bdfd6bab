-- What the streams assemble and the trainers read and publish. Rows are immutable: a revised
-- episode is a new row with a higher `revision`; reads take the latest with LIMIT 1 BY.

CREATE TABLE IF NOT EXISTS $database.episodes
(
    rollout_id String,
    attempt UInt32,
    revision UInt32,
    agent_name LowCardinality(String),
    task_id String,
    model_version LowCardinality(String),
    resources_version LowCardinality(String),
    status LowCardinality(String),
    reward Float64,
    rewards Map(LowCardinality(String), Float64),
    credit_assignment LowCardinality(String),
    started_at DateTime64(9, 'UTC'),
    finished_at DateTime64(9, 'UTC'),
    assembled_at DateTime64(3, 'UTC'),
    num_spans UInt32,
    num_llm_calls UInt32,
    num_tool_calls UInt32,
    num_tool_errors UInt32,
    input Nullable(String) CODEC(ZSTD(3)),
    error Nullable(String) CODEC(ZSTD(3))
)
ENGINE = $engine
PARTITION BY toDate(finished_at)
ORDER BY (agent_name, task_id, model_version, finished_at, rollout_id, attempt, revision)
TTL toDateTime(finished_at) + INTERVAL $ttl_episodes_days DAY
SETTINGS $settings;

CREATE TABLE IF NOT EXISTS $database.triplets
(
    rollout_id String,
    attempt UInt32,
    revision UInt32,
    step UInt32,
    span_id String,
    agent_name LowCardinality(String),
    task_id String,
    model_version LowCardinality(String),
    resources_version LowCardinality(String),
    finished_at DateTime64(9, 'UTC'),
    request_model LowCardinality(String),
    prompt String CODEC(ZSTD(3)),
    response String CODEC(ZSTD(3)),
    prompt_token_ids Array(UInt32) CODEC(ZSTD(1)),
    response_token_ids Array(UInt32) CODEC(ZSTD(1)),
    response_logprobs Array(Float32) CODEC(ZSTD(1)),
    reward Float64,
    advantage Nullable(Float64)
)
ENGINE = $engine
PARTITION BY toDate(finished_at)
ORDER BY (agent_name, task_id, model_version, finished_at, rollout_id, attempt, revision, step)
TTL toDateTime(finished_at) + INTERVAL $ttl_triplets_days DAY
SETTINGS $settings;

CREATE TABLE IF NOT EXISTS $database.versions
(
    version_id String,
    kind LowCardinality(String),
    target_agent LowCardinality(Nullable(String)),
    parent_version Nullable(String),
    algorithm LowCardinality(String),
    window_id Nullable(String),
    dataset_hash Nullable(String),
    artifact_uri Nullable(String),
    model_name Nullable(String),
    prompt_templates Map(String, String) CODEC(ZSTD(3)),
    metrics Map(LowCardinality(String), Float64),
    published_at DateTime64(9, 'UTC'),
    event_id String
)
ENGINE = $engine
ORDER BY (published_at, version_id)
SETTINGS $settings;
