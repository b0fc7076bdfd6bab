-- Feedback (thumbs up/down, an optional corrected answer, a comment) on a rollout or one of
-- its LLM calls, from a person or a judge: raw events of the feedback topic, written once
-- each like rewards. Ordered by rollout and attempt, so the feedback of an episode is read
-- beside it (`episode_feedback`, docs/analysts.md) and a preference trainer's window finds
-- its episodes' feedback by key. Feedback changes no episode: it is not a reward.
-- Versions gain `recipe`: how a version was trained beyond its algorithm (the pairing rule
-- of a DPO or KTO version).

CREATE TABLE IF NOT EXISTS $database.feedback
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
    thumbs_up Bool,
    source LowCardinality(String),
    span_id Nullable(String),
    correction Nullable(String) CODEC(ZSTD(3)),
    comment Nullable(String) CODEC(ZSTD(3)),
    source_partition Int32 DEFAULT -1,
    source_offset Int64 DEFAULT -1
)
ENGINE = $engine
PARTITION BY toYYYYMM(emitted_at)
ORDER BY (rollout_id, attempt, emitted_at, event_id)
TTL toDateTime(emitted_at) + INTERVAL $ttl_feedback_days DAY
SETTINGS $settings;

ALTER TABLE $database.versions
    ADD COLUMN IF NOT EXISTS recipe Map(LowCardinality(String), String) AFTER metrics;

-- Every feedback event once, with the latest revision of the episode it rates (its task,
-- model version and reward; null while the episode is not assembled).
CREATE OR REPLACE VIEW $database.episode_feedback AS
SELECT
    f.rollout_id AS rollout_id,
    f.attempt AS attempt,
    f.agent_name AS agent_name,
    e.task_id AS task_id,
    e.model_version AS model_version,
    e.scored AS scored,
    e.reward AS reward,
    f.thumbs_up AS thumbs_up,
    f.source AS source,
    f.span_id AS span_id,
    f.correction AS correction,
    f.comment AS comment,
    f.emitted_at AS emitted_at
FROM (SELECT * FROM $database.feedback LIMIT 1 BY event_id) AS f
LEFT JOIN $database.latest_episodes AS e
    ON f.rollout_id = e.rollout_id AND f.attempt = e.attempt
SETTINGS join_use_nulls = 1;
