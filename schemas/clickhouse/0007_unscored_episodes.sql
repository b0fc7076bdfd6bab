-- An episode that no reward of the primary name reached is unscored: its reward is unknown,
-- not 0. Episodes say so in `scored` and have a NULL reward; their triplets have a NULL
-- reward. Rows written before this migration were all scored (a missing reward was written
-- as 0.0 and cannot be told apart now), so they read `scored = true` and keep their reward.
-- Type changes of non-key columns: ClickHouse rewrites the parts in the background and
-- reads not yet rewritten parts as the new type meanwhile; a second run changes nothing.

ALTER TABLE $database.episodes
    ADD COLUMN IF NOT EXISTS scored Bool DEFAULT true AFTER status;

ALTER TABLE $database.episodes
    MODIFY COLUMN reward Nullable(Float64);

ALTER TABLE $database.triplets
    MODIFY COLUMN reward Nullable(Float64);

-- The funnel's `scored_count` counted every assembled episode; it now counts those whose
-- latest revision is scored, and `unscored_count` the others.
CREATE OR REPLACE VIEW $database.episode_funnel AS
SELECT
    hour,
    agent_name,
    sum(started) AS started_count,
    sum(finished) AS finished_count,
    sum(scored) AS scored_count,
    sum(unscored) AS unscored_count
FROM
(
    SELECT
        toStartOfHour(emitted_at) AS hour,
        agent_name,
        toUInt64(phase = 'started') AS started,
        toUInt64(phase = 'finished') AS finished,
        toUInt64(0) AS scored,
        toUInt64(0) AS unscored
    FROM $database.rollouts
    UNION ALL
    SELECT toStartOfHour(finished_at) AS hour, agent_name, 0, 0,
           toUInt64(last_scored), toUInt64(NOT last_scored)
    FROM
    (
        SELECT rollout_id, attempt, any(agent_name) AS agent_name, min(finished_at) AS finished_at,
               argMax(scored, revision) AS last_scored
        FROM $database.episodes
        GROUP BY rollout_id, attempt
    )
)
GROUP BY hour, agent_name;

-- Mean reward of scored episodes (latest revision each) per hour, agent and model version,
-- beside how many episodes were unscored: the episode-level counterpart of
-- `reward_by_version_hourly` (which is over reward events).
CREATE OR REPLACE VIEW $database.episode_reward_by_version_hourly AS
SELECT
    toStartOfHour(finished_at) AS hour,
    agent_name,
    model_version,
    countIf(last_scored) AS scored_count,
    countIf(NOT last_scored) AS unscored_count,
    avgIf(last_reward, last_scored) AS mean_reward
FROM
(
    SELECT rollout_id, attempt,
           any(agent_name) AS agent_name,
           any(model_version) AS model_version,
           min(finished_at) AS finished_at,
           argMax(scored, revision) AS last_scored,
           argMax(reward, revision) AS last_reward
    FROM $database.episodes
    GROUP BY rollout_id, attempt
)
GROUP BY hour, agent_name, model_version;
