-- Forgetting a user (`LightningStore.forget_user`, docs/store.md#forgetting-a-user). The
-- user's rows are deleted (lightweight DELETE) from every table that holds them; these
-- tombstones keep what arrives afterwards (events still in flight, episodes a worker still
-- assembles) out of every window, and let a second `forget` delete it too. Users are kept
-- as the SHA-256 of their id, not the id itself.

CREATE TABLE IF NOT EXISTS $database.forgotten_users
(
    user_sha256 String,
    forgotten_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = $engine
ORDER BY user_sha256
SETTINGS $settings;

CREATE TABLE IF NOT EXISTS $database.forgotten_rollouts
(
    rollout_id String,
    user_sha256 String,
    forgotten_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = $engine
ORDER BY rollout_id
SETTINGS $settings;
