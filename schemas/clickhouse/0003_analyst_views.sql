-- Analyst views. Materialized (fed at insert time, aggregated per hour) where the raw table
-- is the firehose; plain views where the rows are few. docs/analysts.md queries them.

CREATE TABLE IF NOT EXISTS $database.reward_hourly
(
    hour DateTime('UTC'),
    agent_name LowCardinality(String),
    model_version LowCardinality(String),
    reward_name LowCardinality(String),
    rewards AggregateFunction(count),
    reward_sum SimpleAggregateFunction(sum, Float64),
    reward_quantiles AggregateFunction(quantiles(0.1, 0.5, 0.9), Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, agent_name, model_version, reward_name);

CREATE MATERIALIZED VIEW IF NOT EXISTS $database.reward_hourly_mv TO $database.reward_hourly AS
SELECT
    toStartOfHour(emitted_at) AS hour,
    agent_name,
    model_version,
    name AS reward_name,
    countState() AS rewards,
    sum(value) AS reward_sum,
    quantilesState(0.1, 0.5, 0.9)(value) AS reward_quantiles
FROM $database.rewards
GROUP BY hour, agent_name, model_version, reward_name;

CREATE VIEW IF NOT EXISTS $database.reward_by_version_hourly AS
SELECT
    hour,
    agent_name,
    model_version,
    reward_name,
    countMerge(rewards) AS reward_count,
    sum(reward_sum) / reward_count AS mean_reward,
    quantilesMerge(0.1, 0.5, 0.9)(reward_quantiles) AS reward_p10_p50_p90
FROM $database.reward_hourly
GROUP BY hour, agent_name, model_version, reward_name;

CREATE TABLE IF NOT EXISTS $database.llm_usage_hourly
(
    hour DateTime('UTC'),
    agent_name LowCardinality(String),
    request_model LowCardinality(String),
    model_version LowCardinality(String),
    calls AggregateFunction(count),
    errors SimpleAggregateFunction(sum, UInt64),
    input_tokens SimpleAggregateFunction(sum, Int64),
    output_tokens SimpleAggregateFunction(sum, Int64),
    latency_ms AggregateFunction(quantiles(0.5, 0.9, 0.99), Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, agent_name, request_model, model_version);

CREATE MATERIALIZED VIEW IF NOT EXISTS $database.llm_usage_hourly_mv TO $database.llm_usage_hourly AS
SELECT
    toStartOfHour(start_time) AS hour,
    agent_name,
    llm_request_model AS request_model,
    model_version,
    countState() AS calls,
    toUInt64(countIf(status_code = 'ERROR')) AS errors,
    sum(ifNull(llm_input_tokens, 0)) AS input_tokens,
    sum(ifNull(llm_output_tokens, 0)) AS output_tokens,
    quantilesState(0.5, 0.9, 0.99)(dateDiff('microsecond', start_time, end_time) / 1000) AS latency_ms
FROM $database.spans
WHERE llm_request_model != ''
GROUP BY hour, agent_name, request_model, model_version;

CREATE VIEW IF NOT EXISTS $database.llm_usage_by_model AS
SELECT
    hour,
    agent_name,
    request_model,
    model_version,
    countMerge(calls) AS call_count,
    sum(errors) AS error_count,
    sum(input_tokens) AS input_token_count,
    sum(output_tokens) AS output_token_count,
    quantilesMerge(0.5, 0.9, 0.99)(latency_ms) AS latency_ms_p50_p90_p99
FROM $database.llm_usage_hourly
GROUP BY hour, agent_name, request_model, model_version;

CREATE TABLE IF NOT EXISTS $database.tool_calls_hourly
(
    hour DateTime('UTC'),
    agent_name LowCardinality(String),
    tool_name LowCardinality(String),
    calls SimpleAggregateFunction(sum, UInt64),
    errors SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, agent_name, tool_name);

CREATE MATERIALIZED VIEW IF NOT EXISTS $database.tool_calls_hourly_mv TO $database.tool_calls_hourly AS
SELECT
    toStartOfHour(start_time) AS hour,
    agent_name,
    tool_name,
    toUInt64(count()) AS calls,
    toUInt64(countIf(status_code = 'ERROR')) AS errors
FROM $database.spans
WHERE tool_name != ''
GROUP BY hour, agent_name, tool_name;

CREATE VIEW IF NOT EXISTS $database.tool_error_rate AS
SELECT
    hour,
    agent_name,
    tool_name,
    sum(calls) AS call_count,
    sum(errors) AS error_count,
    error_count / call_count AS error_rate
FROM $database.tool_calls_hourly
GROUP BY hour, agent_name, tool_name;

CREATE VIEW IF NOT EXISTS $database.success_by_agent_task AS
SELECT
    agent_name,
    task_id,
    count() AS finished_count,
    countIf(status = 'succeeded') AS succeeded_count,
    succeeded_count / finished_count AS success_rate
FROM $database.rollouts
WHERE phase = 'finished'
GROUP BY agent_name, task_id;

CREATE VIEW IF NOT EXISTS $database.episode_funnel AS
SELECT
    hour,
    agent_name,
    sum(started) AS started_count,
    sum(finished) AS finished_count,
    sum(scored) AS scored_count
FROM
(
    SELECT
        toStartOfHour(emitted_at) AS hour,
        agent_name,
        toUInt64(phase = 'started') AS started,
        toUInt64(phase = 'finished') AS finished,
        toUInt64(0) AS scored
    FROM $database.rollouts
    UNION ALL
    SELECT toStartOfHour(finished_at) AS hour, agent_name, 0, 0, 1
    FROM
    (
        SELECT rollout_id, attempt, any(agent_name) AS agent_name, min(finished_at) AS finished_at
        FROM $database.episodes
        GROUP BY rollout_id, attempt
    )
)
GROUP BY hour, agent_name;
