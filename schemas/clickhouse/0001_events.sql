-- Raw events as the agents emitted them, one row per event, written once.
-- $database, $engine (MergeTree or ReplicatedMergeTree with the table's path), $ttl_* and
-- $settings are filled in by `fulmen store migrate`.

CREATE TABLE IF NOT EXISTS $database.spans
(
    event_id String,
    rollout_id String,
    attempt UInt32,
    producer_id LowCardinality(String),
    sequence UInt64,
    agent_name LowCardinality(String),
    model_version LowCardinality(String),
    resources_version LowCardinality(String),
    emitted_at DateTime64(9, 'UTC'),
    trace_id String,
    span_id String,
    parent_span_id Nullable(String),
    name LowCardinality(String),
    kind LowCardinality(String),
    start_time DateTime64(9, 'UTC'),
    end_time DateTime64(9, 'UTC'),
    duration_ms Float64 ALIAS dateDiff('microsecond', start_time, end_time) / 1000,
    status_code LowCardinality(String),
    status_message String CODEC(ZSTD(3)),
    attr_strings Map(LowCardinality(String), String) CODEC(ZSTD(3)),
    attr_ints Map(LowCardinality(String), Int64),
    attr_doubles Map(LowCardinality(String), Float64),
    attr_bools Map(LowCardinality(String), Bool),
    events String CODEC(ZSTD(3)),
    llm_operation LowCardinality(String),
    llm_provider LowCardinality(String),
    llm_request_model LowCardinality(String),
    llm_response_model LowCardinality(Nullable(String)),
    llm_response_id Nullable(String),
    llm_temperature Nullable(Float64),
    llm_max_tokens Nullable(Int64),
    llm_input_tokens Nullable(Int64),
    llm_output_tokens Nullable(Int64),
    llm_finish_reasons Array(LowCardinality(String)),
    llm_input_messages String CODEC(ZSTD(3)),
    llm_output_messages String CODEC(ZSTD(3)),
    llm_tool_definitions String CODEC(ZSTD(3)),
    llm_streamed Bool,
    llm_prompt_token_ids Array(UInt32) CODEC(ZSTD(1)),
    llm_response_token_ids Array(UInt32) CODEC(ZSTD(1)),
    llm_response_logprobs Array(Float32) CODEC(ZSTD(1)),
    tool_name LowCardinality(String),
    tool_call_id Nullable(String),
    tool_type LowCardinality(String),
    tool_arguments String CODEC(ZSTD(3)),
    tool_result String CODEC(ZSTD(3)),
    INDEX rollout_idx rollout_id TYPE bloom_filter GRANULARITY 4
)
ENGINE = $engine
PARTITION BY toDate(start_time)
ORDER BY (agent_name, toStartOfHour(start_time), model_version, rollout_id, sequence)
TTL toDateTime(start_time) + INTERVAL $ttl_spans_days DAY
SETTINGS $settings;

CREATE TABLE IF NOT EXISTS $database.rewards
(
    event_id String,
    rollout_id String,
    attempt UInt32,
    producer_id LowCardinality(String),
    sequence UInt64,
    agent_name LowCardinality(String),
    model_version LowCardinality(String),
    resources_version LowCardinality(String),
    emitted_at DateTime64(9, 'UTC'),
    name LowCardinality(String),
    value Float64,
    dimensions Map(LowCardinality(String), Float64),
    source LowCardinality(String),
    span_id Nullable(String),
    comment Nullable(String) CODEC(ZSTD(3)),
    INDEX rollout_idx rollout_id TYPE bloom_filter GRANULARITY 4
)
ENGINE = $engine
PARTITION BY toDate(emitted_at)
ORDER BY (agent_name, toStartOfHour(emitted_at), model_version, rollout_id, sequence)
TTL toDateTime(emitted_at) + INTERVAL $ttl_rewards_days DAY
SETTINGS $settings;

CREATE TABLE IF NOT EXISTS $database.rollouts
(
    event_id String,
    rollout_id String,
    attempt UInt32,
    producer_id LowCardinality(String),
    sequence UInt64,
    agent_name LowCardinality(String),
    model_version LowCardinality(String),
    resources_version LowCardinality(String),
    emitted_at DateTime64(9, 'UTC'),
    phase LowCardinality(String),
    task_id String,
    trace_id String,
    input Nullable(String) CODEC(ZSTD(3)),
    status LowCardinality(Nullable(String)),
    error Nullable(String) CODEC(ZSTD(3)),
    metadata Map(LowCardinality(String), String),
    INDEX rollout_idx rollout_id TYPE bloom_filter GRANULARITY 4
)
ENGINE = $engine
PARTITION BY toDate(emitted_at)
ORDER BY (agent_name, toStartOfHour(emitted_at), rollout_id, sequence)
TTL toDateTime(emitted_at) + INTERVAL $ttl_rollouts_days DAY
SETTINGS $settings;

CREATE TABLE IF NOT EXISTS $database.dead_letters
(
    received_at DateTime64(3, 'UTC'),
    topic LowCardinality(String),
    partition UInt32,
    offset UInt64,
    key String,
    value String CODEC(ZSTD(3)),
    problem LowCardinality(String),
    detail String CODEC(ZSTD(3))
)
ENGINE = $engine
PARTITION BY toDate(received_at)
ORDER BY (received_at, topic, partition, offset)
TTL toDateTime(received_at) + INTERVAL $ttl_dead_letters_days DAY
SETTINGS $settings;
