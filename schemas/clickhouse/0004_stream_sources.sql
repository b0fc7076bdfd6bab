-- Where each raw event came from, so that a restarted stream worker can tell which Kafka
-- offsets are already in the store (exactly-once raw rows whatever the batch boundaries),
-- and how many distinct events each episode revision was assembled from (so that a
-- recovered worker can tell whether a revision it is about to write exists already).
-- Events that did not come through Kafka (the embedded runner) carry partition -1.

ALTER TABLE $database.spans
    ADD COLUMN IF NOT EXISTS source_partition Int32 DEFAULT -1,
    ADD COLUMN IF NOT EXISTS source_offset Int64 DEFAULT -1;

ALTER TABLE $database.rewards
    ADD COLUMN IF NOT EXISTS source_partition Int32 DEFAULT -1,
    ADD COLUMN IF NOT EXISTS source_offset Int64 DEFAULT -1;

ALTER TABLE $database.rollouts
    ADD COLUMN IF NOT EXISTS source_partition Int32 DEFAULT -1,
    ADD COLUMN IF NOT EXISTS source_offset Int64 DEFAULT -1;

ALTER TABLE $database.episodes
    ADD COLUMN IF NOT EXISTS num_events UInt32 DEFAULT 0;

ALTER TABLE $database.episodes
    ADD INDEX IF NOT EXISTS rollout_lookup rollout_id TYPE bloom_filter GRANULARITY 4;
