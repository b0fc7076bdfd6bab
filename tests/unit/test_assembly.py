"""Episode assembly as plain logic: order, duplicates, completion, revisions, credit, and
unscored episodes (no reward of the primary name: reward None, not 0)."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from fulmen.schemas import Event, Reward, SingleObjectCodec, Span
from fulmen.streams import (
    AssemblyPolicy,
    CreditAssigner,
    DiscountedReturn,
    Episode,
    EpisodeAssembler,
    EpisodeRewards,
    FinalReward,
    PerCallReward,
    RolloutBuffer,
    add,
    assemble,
    episodes_table,
    reconcile,
    triplets_table,
)
from fulmen.streams._announce import Announcer
from fulmen.streams._state import RELEASE_QUIET_S
from tests.support.events import meta, rollout, span_id_of


def test_out_of_order_and_duplicated_events_give_the_same_episode() -> None:
    events = rollout()
    in_order = EpisodeAssembler()
    for event in events:
        in_order.add(event, now=0.0)
    shuffled = EpisodeAssembler()
    replay = list(events)
    replay = replay + replay[:4]  # duplicates
    random.Random(3).shuffle(replay)
    for event in replay:
        shuffled.add(event, now=0.0)
    (a,) = in_order.collect(now=10.0)
    (b,) = shuffled.collect(now=10.0)
    assert shuffled.duplicates == 4
    assert a.triplets == b.triplets
    assert a.row == b.row
    assert [t.step for t in a.triplets] == [0, 1, 2]
    assert [t.prompt for t in a.triplets] == ["[0]", "[1]", "[2]"]


def test_completion_waits_for_grace_and_times_out_when_idle() -> None:
    policy = AssemblyPolicy(grace_s=5.0, idle_timeout_s=60.0)
    assembler = EpisodeAssembler(policy)
    for event in rollout("done"):
        assembler.add(event, now=100.0)
    for event in rollout("stalled")[:-1]:  # never finishes
        assembler.add(event, now=100.0)
    assert assembler.collect(now=104.0) == []
    (done,) = assembler.collect(now=105.0)
    assert (done.row.rollout_id, done.row.status, done.row.revision) == ("done", "succeeded", 0)
    assert assembler.collect(now=159.0) == []
    (stalled,) = assembler.collect(now=160.0)
    assert (stalled.row.rollout_id, stalled.row.status) == ("stalled", "timeout")


def test_a_late_reward_revises_the_episode() -> None:
    assembler = EpisodeAssembler(AssemblyPolicy(grace_s=1.0))
    events = rollout()
    for event in events:
        assembler.add(event, now=0.0)
    (first,) = assembler.collect(now=1.0)
    late = Reward(meta=meta("r1", 99), value=2.0)
    assembler.add(late, now=50.0)
    assembler.add(late, now=50.5)  # a duplicate of the late reward changes nothing
    (second,) = assembler.collect(now=51.5)
    assert (first.row.revision, first.row.reward) == (0, 1.0)
    assert (second.row.revision, second.row.reward) == (1, 3.0)
    assert {t.revision for t in second.triplets} == {1}
    assert assembler.collect(now=60.0) == []


def test_written_episodes_are_forgotten_after_retention_and_orphans_dropped() -> None:
    assembler = EpisodeAssembler(
        AssemblyPolicy(grace_s=1.0, idle_timeout_s=10.0, retention_s=100.0)
    )
    for event in rollout():
        assembler.add(event, now=0.0)
    assembler.add(Reward(meta=meta("unknown", 1), value=1.0), now=0.0)
    assembler.collect(now=1.0)
    assert len(assembler) == 2
    assert assembler.collect(now=10.0) == []
    assert len(assembler) == 1  # the orphan reward is gone
    assembler.collect(now=101.0)
    assert len(assembler) == 0


def _credited(policy: AssemblyPolicy, extra: list[Event]) -> list[float]:
    assembler = EpisodeAssembler(policy)
    for event in [*rollout(), *extra]:
        assembler.add(event, now=0.0)
    (episode,) = assembler.collect(now=100.0)
    return [t.reward for t in episode.triplets]


def test_credit_assignment_is_pluggable() -> None:
    step_reward = Reward(meta=meta("r1", 50), value=0.5, span_id=span_id_of(1), source="judge")
    assert _credited(AssemblyPolicy(credit=FinalReward()), [step_reward]) == [1.0, 1.0, 1.0]
    gamma = 0.5
    returns = _credited(AssemblyPolicy(credit=DiscountedReturn(gamma)), [step_reward])
    # final reward 1.0 after the last call; the judge's 0.5 on call 1
    assert returns == pytest.approx([gamma * (0.5 + gamma * 1.0), 0.5 + gamma * 1.0, 1.0])
    per_call = _credited(AssemblyPolicy(credit=PerCallReward(source="judge")), [step_reward])
    assert per_call == [0.0, 0.5, 0.0]
    with pytest.raises(ValueError, match="gamma"):
        DiscountedReturn(1.5)


def test_written_episodes_quiet_a_while_drop_their_models_and_a_late_reward_revives_them() -> None:
    assembler, codec, events = (
        EpisodeAssembler(AssemblyPolicy(grace_s=1.0)),
        SingleObjectCodec(),
        rollout(),
    )
    for event in events:
        assert assembler.add(event, now=0.0, value=codec.encode(event, topic=""))
    (first,) = assembler.collect(now=1.0)
    assert assembler.collect(now=RELEASE_QUIET_S) == []
    assert assembler._states["r1"].released == {1}, "written and quiet: models dropped"
    assert not assembler.is_new(events[0]), "still known after the release"
    late = Reward(meta=meta("r1", 99), value=2.0)
    assert assembler.add(late, now=50.0)
    (second,) = assembler.collect(now=51.5)
    assert (second.row.revision, second.row.reward) == (1, 3.0)
    assert second.row.num_events == first.row.num_events + 1
    assert [t.prompt for t in second.triplets] == [t.prompt for t in first.triplets]


def test_multi_agent_triplets_keep_their_agent() -> None:
    assembler = EpisodeAssembler()
    planner = rollout("shared", calls=1, agent="planner")
    solver = [e for e in rollout("shared", calls=2, agent="solver") if isinstance(e, Span)]
    solver = [
        s.model_copy(
            update={
                "meta": meta("shared", 500 + i).model_copy(update={"agent_name": "solver"}),
                "span_id": f"{900 + i:016x}",
            }
        )
        for i, s in enumerate(solver)
    ]
    for event in [*planner, *solver]:
        assembler.add(event, now=0.0)
    (episode,) = assembler.collect(now=10.0)
    assert [t.agent_name for t in episode.triplets] == ["planner", "solver", "solver"]


def test_rows_fit_the_store_tables() -> None:
    assembler = EpisodeAssembler()
    for event in rollout():
        assembler.add(event, now=0.0)
    episodes = assembler.collect(now=10.0)
    assert episodes_table(episodes).num_rows == 1
    triplets = triplets_table(episodes)
    assert triplets.num_rows == 3
    assert triplets["response_token_ids"].to_pylist() == [[0], [1], [2]]


def test_flush_assembles_unfinished_rollouts_as_timeouts() -> None:
    assembler = EpisodeAssembler(AssemblyPolicy(idle_timeout_s=600.0))
    for event in rollout()[:-1]:
        assembler.add(event, now=1_700_000_000.0)
    assert assembler.collect(now=1_700_000_001.0) == []
    (episode,) = assembler.collect(now=1_700_000_001.0, flush=True)
    assert episode.row.status == "timeout"
    assert episode.row.assembled_at == 1_700_000_001_000


def test_reconcile_with_a_store_ahead_of_a_recovered_buffer() -> None:
    def buffered() -> RolloutBuffer:
        buffer = RolloutBuffer(rollout_id="r1", attempt=1)
        for event in rollout():
            add(buffer, event, now=0.0)
        return buffer

    fresh = buffered()
    assert not reconcile(fresh, None)  # nothing written yet
    assert not reconcile(fresh, (-1, 0))
    held = buffered()  # the store has revision 0 with every event: announce it, don't write
    assert reconcile(held, (0, len(held.seen)))
    assert assemble(held, AssemblyPolicy(), now=1.0).row.revision == 0
    grown = buffered()  # the store's revision 0 lacks events the buffer has: write revision 1
    assert not reconcile(grown, (0, len(grown.seen) - 1))
    assert assemble(grown, AssemblyPolicy(), now=1.0).row.revision == 1


class _Counting(CreditAssigner):
    """Final reward per call, counting the episodes it was asked about."""

    name = "counting"

    def __init__(self) -> None:
        self.calls = 0

    def assign(self, calls: Sequence[Span], rewards: EpisodeRewards) -> list[float]:
        self.calls += 1
        return [rewards.final] * len(calls)


def _assembled(events: list[Event], policy: AssemblyPolicy | None = None) -> Episode:
    assembler = EpisodeAssembler(policy)
    for event in events:
        assembler.add(event, now=0.0)
    (episode,) = assembler.collect(now=100.0)
    return episode


def _without_rewards(rollout_id: str = "r1") -> list[Event]:
    return [e for e in rollout(rollout_id) if not isinstance(e, Reward)]


def test_a_missing_reward_makes_the_episode_unscored_not_zero() -> None:
    credit = _Counting()
    episode = _assembled(_without_rewards(), AssemblyPolicy(credit=credit))
    assert (episode.row.scored, episode.row.reward) == (False, None)
    assert episode.row.status == "succeeded"  # scored is not a status: it finished fine
    assert [t.reward for t in episode.triplets] == [None, None, None]
    assert credit.calls == 0  # assigners never see an unscored episode
    assert episodes_table([episode])["reward"].to_pylist() == [None]
    assert episodes_table([episode])["scored"].to_pylist() == [False]
    assert triplets_table([episode])["reward"].null_count == 3


def test_a_reward_of_zero_is_a_scored_zero() -> None:
    events = [*_without_rewards(), Reward(meta=meta("r1", 77), value=0.0)]
    episode = _assembled(events)
    assert (episode.row.scored, episode.row.reward) == (True, 0.0)
    assert [t.reward for t in episode.triplets] == [0.0, 0.0, 0.0]


def test_only_rewards_of_other_names_leave_the_episode_unscored() -> None:
    judge = Reward(meta=meta("r1", 77), name="style", value=0.25)
    episode = _assembled([*_without_rewards(), judge])
    assert (episode.row.scored, episode.row.reward) == (False, None)
    assert episode.row.rewards == {"style": 0.25}  # kept by name, scoring nothing
    renamed = _assembled([*_without_rewards(), judge], AssemblyPolicy(primary_reward="style"))
    assert (renamed.row.scored, renamed.row.reward) == (True, 0.25)


def test_a_step_reward_alone_scores_the_episode() -> None:
    step = Reward(meta=meta("r1", 77), value=0.5, span_id=span_id_of(1))
    per_call = _assembled([*_without_rewards(), step], AssemblyPolicy(credit=PerCallReward()))
    assert (per_call.row.scored, per_call.row.reward) == (True, 0.5)
    assert [t.reward for t in per_call.triplets] == [0.0, 0.5, 0.0]


def test_a_late_reward_turns_an_unscored_revision_into_a_scored_one() -> None:
    assembler = EpisodeAssembler(AssemblyPolicy(grace_s=1.0))
    for event in _without_rewards():
        assembler.add(event, now=0.0)
    (first,) = assembler.collect(now=1.0)
    assembler.add(Reward(meta=meta("r1", 99), value=0.75), now=50.0)
    (second,) = assembler.collect(now=51.5)
    assert (first.row.revision, first.row.scored, first.row.reward) == (0, False, None)
    assert (second.row.revision, second.row.scored, second.row.reward) == (1, True, 0.75)
    assert [t.reward for t in second.triplets] == [0.75, 0.75, 0.75]


def test_an_unscored_episode_is_announced_as_unscored_with_reward_zero() -> None:
    announcer = Announcer("test")
    unscored = announcer.completed(_assembled(_without_rewards()).row)
    assert (unscored.scored, unscored.reward) == (False, 0.0)
    scored = announcer.completed(_assembled(rollout()).row)
    assert (scored.scored, scored.reward) == (True, 1.0)
