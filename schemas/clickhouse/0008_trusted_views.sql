-- Analyst views whose numbers mean what their names say (docs/analysts.md lists each with
-- the question it answers).
--
-- Changes to views analysts may already query:
-- * `reward_by_version_hourly` was a mean over reward *events*: a revised episode counted
--   once per reward, and a judge's reward counted under the judge's model version. It is
--   now over the latest revision of each episode, by the episode's own model version
--   (the version it started with), with scored and unscored counts. It has no
--   `reward_name` column any more: it is the primary reward (`episodes.reward`).
--   `episode_reward_by_version_hourly` (0007) answered the same question and is dropped.
-- * `success_by_agent_task` counted `status = 'succeeded'` (the run finished without
--   raising). That is now `completion_by_agent_task`; `success_by_agent_task` is success by
--   reward (>= 1.0), and `success_by_agent_task_at(threshold = …)` takes any threshold.
-- * `tool_error_rate` has a `model_version` column and latency percentiles; it reads the
--   tool spans (the hourly aggregate without versions, `tool_calls_hourly`, is dropped).
-- * `llm_usage_by_model` has the latency percentiles as named columns too.
-- The reward-event aggregate `reward_hourly` stays (the dashboard's per-name chart).

-- One row per episode: its latest revision.
CREATE OR REPLACE VIEW $database.latest_episodes AS
SELECT
    rollout_id, attempt, revision, agent_name, task_id, model_version, resources_version,
    status, scored, reward, rewards, credit_assignment, started_at, finished_at, assembled_at,
    num_spans, num_llm_calls, num_tool_calls, num_tool_errors, error
FROM $database.episodes
ORDER BY revision DESC
LIMIT 1 BY rollout_id, attempt;

CREATE OR REPLACE VIEW $database.reward_by_version_hourly AS
SELECT
    toStartOfHour(toDateTime(finished_at, 'UTC')) AS hour,
    agent_name,
    model_version,
    count() AS episode_count,
    countIf(scored) AS scored_count,
    countIf(NOT scored) AS unscored_count,
    avgIf(reward, scored) AS mean_reward,
    quantilesIf(0.1, 0.5, 0.9)(reward, scored) AS reward_p10_p50_p90
FROM $database.latest_episodes
GROUP BY hour, agent_name, model_version;

DROP VIEW IF EXISTS $database.episode_reward_by_version_hourly;

-- Success by reward: scored episodes (latest revision) whose reward reached the threshold.
CREATE OR REPLACE VIEW $database.success_by_agent_task_at AS
SELECT
    agent_name,
    task_id,
    count() AS episode_count,
    countIf(scored) AS scored_count,
    countIf(NOT scored) AS unscored_count,
    countIf(scored AND reward >= {threshold:Float64}) AS success_count,
    if(scored_count = 0, NULL, success_count / scored_count) AS success_rate
FROM $database.latest_episodes
GROUP BY agent_name, task_id;

CREATE OR REPLACE VIEW $database.success_by_agent_task AS
SELECT * FROM $database.success_by_agent_task_at(threshold = 1.0);

-- Completion: finished runs that ended without an error, whatever their reward.
CREATE OR REPLACE VIEW $database.completion_by_agent_task AS
SELECT
    agent_name,
    task_id,
    count() AS finished_count,
    countIf(status = 'succeeded') AS completed_count,
    countIf(status != 'succeeded') AS failed_count,
    completed_count / finished_count AS completion_rate
FROM $database.rollouts
WHERE phase = 'finished'
GROUP BY agent_name, task_id;

CREATE OR REPLACE VIEW $database.llm_usage_by_model AS
SELECT
    hour,
    agent_name,
    request_model,
    model_version,
    countMerge(calls) AS call_count,
    sum(errors) AS error_count,
    sum(input_tokens) AS input_token_count,
    sum(output_tokens) AS output_token_count,
    quantilesMerge(0.5, 0.9, 0.99)(latency_ms) AS latency_ms_p50_p90_p99,
    latency_ms_p50_p90_p99[1] AS latency_p50_ms,
    latency_ms_p50_p90_p99[2] AS latency_p90_ms,
    latency_ms_p50_p90_p99[3] AS latency_p99_ms
FROM $database.llm_usage_hourly
GROUP BY hour, agent_name, request_model, model_version;

CREATE OR REPLACE VIEW $database.tool_error_rate AS
SELECT
    toStartOfHour(toDateTime(start_time, 'UTC')) AS hour,
    agent_name,
    tool_name,
    model_version,
    count() AS call_count,
    countIf(status_code = 'ERROR') AS error_count,
    error_count / call_count AS error_rate,
    quantiles(0.5, 0.9, 0.99)(dateDiff('microsecond', start_time, end_time) / 1000) AS latency_ms_p50_p90_p99,
    latency_ms_p50_p90_p99[1] AS latency_p50_ms,
    latency_ms_p50_p90_p99[2] AS latency_p90_ms,
    latency_ms_p50_p90_p99[3] AS latency_p99_ms
FROM $database.spans
WHERE tool_name != ''
GROUP BY hour, agent_name, tool_name, model_version;

DROP VIEW IF EXISTS $database.tool_calls_hourly_mv;

DROP TABLE IF EXISTS $database.tool_calls_hourly;

CREATE OR REPLACE VIEW $database.dead_letters_hourly AS
SELECT
    toStartOfHour(toDateTime(received_at, 'UTC')) AS hour,
    topic,
    problem,
    count() AS message_count,
    min(received_at) AS first_received_at,
    max(received_at) AS last_received_at
FROM $database.dead_letters
GROUP BY hour, topic, problem;
