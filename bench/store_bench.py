"""`make bench-store`: the LightningStore on embedded chDB and through `fulmen store serve`
(a StoreServer on loopback) — span inserts in Arrow batches of 10k rows and a trainer window
read into Arrow on each, and the hourly reward-per-version question over 10M span rows
(embedded); and the engine's own ceilings for the same work (`_engine_ceilings`). Writes
bench/results/store.json, with the load average at start and end.

Sizes: BENCH_SPAN_ROWS (default 10M), BENCH_TRIPLET_ROWS (default 2M).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
from rich.console import Console
from rich.progress import track

from bench._results import write_result
from fulmen.store import (
    TABLES,
    LightningStore,
    StoreSettings,
    WindowQuery,
    shared_store,
)

ROOT = Path(__file__).resolve().parents[1]
BATCH = 10_000
HOUR_NS = 3_600 * 10**9
console = Console()


def _type(column: str) -> pa.DataType:
    return TABLES["spans"].field(column).type


def _span_batch(batch: int, start_ns: int, rng: np.random.Generator) -> pa.Table:
    """10k span rows shaped like an agent's: half LLM calls (with tokens), half tool calls."""
    n = BATCH
    ids = np.arange(batch * n, (batch + 1) * n)
    is_llm = ids % 2 == 0
    start = start_ns + (ids * 1_000_000) % (24 * HOUR_NS)
    duration = rng.integers(1_000_000, 2_000_000_000, n)
    text = pa.array(["x" * 200] * n)
    empty_ids = pa.array([[]] * n, pa.list_(pa.uint32()))
    token_ids = pa.array([list(range(64))] * n, pa.list_(pa.uint32()))
    logprobs = pa.array([[-0.5] * 16] * n, pa.list_(pa.float32()))
    columns = {
        "event_id": pa.array([f"e{i}" for i in ids]),
        "rollout_id": pa.array([f"r{i // 20}" for i in ids]),
        "attempt": pa.array(np.ones(n, np.uint32)),
        "producer_id": pa.array(["agent-host-1"] * n),
        "sequence": pa.array(ids.astype(np.uint64)),
        "agent_name": pa.array([f"agent-{i % 4}" for i in ids]),
        "model_version": pa.array([f"v{(i // 1_000_000) % 8}" for i in ids]),
        "resources_version": pa.array(["p1"] * n),
        "emitted_at": pa.array(start + duration, pa.timestamp("ns", tz="UTC")),
        "trace_id": pa.array(["0af7651916cd43dd8448eb211c80319c"] * n),
        "span_id": pa.array([f"{i:016x}" for i in ids]),
        "parent_span_id": pa.array([None] * n, pa.string()),
        "name": pa.array(np.where(is_llm, "chat calc", "execute_tool calculator")),
        "kind": pa.array(np.where(is_llm, "CLIENT", "INTERNAL")),
        "start_time": pa.array(start, pa.timestamp("ns", tz="UTC")),
        "end_time": pa.array(start + duration, pa.timestamp("ns", tz="UTC")),
        "status_code": pa.array(np.where(ids % 50 == 0, "ERROR", "OK")),
        "status_message": pa.array([""] * n),
        "attr_strings": pa.array(
            [[("server.address", "127.0.0.1")]] * n, TABLES["spans"].field("attr_strings").type
        ),
        "attr_ints": pa.array(
            [[("server.port", 8000)]] * n, TABLES["spans"].field("attr_ints").type
        ),
        "attr_doubles": pa.array([[]] * n, TABLES["spans"].field("attr_doubles").type),
        "attr_bools": pa.array([[]] * n, TABLES["spans"].field("attr_bools").type),
        "events": pa.array(["[]"] * n),
        "llm_operation": pa.array(np.where(is_llm, "chat", "")),
        "llm_provider": pa.array(np.where(is_llm, "openai", "")),
        "llm_request_model": pa.array(np.where(is_llm, "calc", "")),
        "llm_response_model": pa.array(np.where(is_llm, "calc", None)),
        "llm_response_id": pa.array([None] * n, pa.string()),
        "llm_temperature": pa.array([0.7] * n),
        "llm_max_tokens": pa.array([None] * n, pa.int64()),
        "llm_input_tokens": pa.array(np.where(is_llm, 64, 0)),
        "llm_output_tokens": pa.array(np.where(is_llm, 16, 0)),
        "llm_finish_reasons": pa.array([["stop"]] * n, pa.list_(pa.string())),
        "llm_input_messages": text,
        "llm_output_messages": text,
        "llm_tool_definitions": pa.array(["[]"] * n),
        "llm_streamed": pa.array(is_llm),
        "llm_prompt_token_ids": pa.chunked_array([token_ids]).combine_chunks(),
        "llm_response_token_ids": empty_ids,
        "llm_response_logprobs": logprobs,
        "tool_name": pa.array(np.where(is_llm, "", "calculator")),
        "tool_call_id": pa.array([None] * n, pa.string()),
        "tool_type": pa.array(np.where(is_llm, "", "function")),
        "tool_arguments": pa.array(np.where(is_llm, "", '{"a": 2, "b": 2}')),
        "tool_result": pa.array(np.where(is_llm, "", "4")),
        "source_partition": pa.array(np.zeros(n, np.int32)),
        "source_offset": pa.array(ids.astype(np.int64)),
    }
    return pa.table(columns, schema=TABLES["spans"])


def _rewards(spans: pa.Table) -> pa.Table:
    """One reward per rollout (20 spans), with the rollout's agent, version and time."""
    picked = spans.take(pa.array(np.arange(0, spans.num_rows, 20)))
    n = picked.num_rows
    values = np.random.default_rng(n).random(n)
    return pa.table(
        {
            **{
                f.name: picked[f.name]
                for f in TABLES["rewards"]
                if f.name in picked.column_names and f.name not in ("span_id", "name")
            },
            "name": pa.array(["reward"] * n),
            "value": pa.array(values),
            "dimensions": pa.array([[]] * n, TABLES["rewards"].field("dimensions").type),
            "source": pa.array(["programmatic"] * n),
            "span_id": pa.array([None] * n, pa.string()),
            "comment": pa.array([None] * n, pa.string()),
        }
    ).select(TABLES["rewards"].names)


def _training_rows(episodes: int, now_ns: int) -> tuple[pa.Table, pa.Table]:
    """`episodes` episodes of 10 LLM calls each, 8 episodes a task, prompts of 256 tokens."""
    e = np.arange(episodes)
    rollout = pa.array([f"r{i}" for i in e])
    task = pa.array([f"task-{i // 8}" for i in e])
    ep = {
        "rollout_id": rollout,
        "attempt": pa.array(np.ones(episodes, np.uint32)),
        "revision": pa.array(np.zeros(episodes, np.uint32)),
        "agent_name": pa.array(["calc"] * episodes),
        "task_id": task,
        "model_version": pa.array(["v1"] * episodes),
        "resources_version": pa.array(["p1"] * episodes),
        "status": pa.array(["succeeded"] * episodes),
        "scored": pa.array(np.ones(episodes, np.bool_)),
        "reward": pa.array(np.random.default_rng(1).random(episodes)),
        "rewards": pa.array([[]] * episodes, TABLES["episodes"].field("rewards").type),
        "credit_assignment": pa.array(["final"] * episodes),
        "started_at": pa.array(np.full(episodes, now_ns), pa.timestamp("ns", tz="UTC")),
        "finished_at": pa.array(np.full(episodes, now_ns), pa.timestamp("ns", tz="UTC")),
        "assembled_at": pa.array(
            np.full(episodes, now_ns // 1_000_000), pa.timestamp("ms", tz="UTC")
        ),
        "num_spans": pa.array(np.full(episodes, 20, np.uint32)),
        "num_llm_calls": pa.array(np.full(episodes, 10, np.uint32)),
        "num_tool_calls": pa.array(np.full(episodes, 10, np.uint32)),
        "num_tool_errors": pa.array(np.zeros(episodes, np.uint32)),
        "num_events": pa.array(np.full(episodes, 22, np.uint32)),
        "input": pa.array([None] * episodes, pa.string()),
        "error": pa.array([None] * episodes, pa.string()),
    }
    t = np.arange(episodes * 10)
    n = len(t)
    prompt = pa.array([list(range(256))] * n, pa.list_(pa.uint32()))
    response = pa.array([list(range(32))] * n, pa.list_(pa.uint32()))
    trip = {
        "rollout_id": pa.array([f"r{i // 10}" for i in t]),
        "attempt": pa.array(np.ones(n, np.uint32)),
        "revision": pa.array(np.zeros(n, np.uint32)),
        "step": pa.array((t % 10).astype(np.uint32)),
        "span_id": pa.array([f"{i:016x}" for i in t]),
        "agent_name": pa.array(["calc"] * n),
        "task_id": pa.array([f"task-{i // 80}" for i in t]),
        "model_version": pa.array(["v1"] * n),
        "resources_version": pa.array(["p1"] * n),
        "finished_at": pa.array(np.full(n, now_ns), pa.timestamp("ns", tz="UTC")),
        "request_model": pa.array(["calc"] * n),
        "prompt": pa.array(["x" * 100] * n),
        "response": pa.array(["y" * 40] * n),
        "prompt_token_ids": prompt,
        "response_token_ids": response,
        "response_logprobs": pa.array([[-0.5] * 32] * n, pa.list_(pa.float32())),
        "reward": pa.array(np.random.default_rng(2).random(n)),
        "advantage": pa.array([None] * n, pa.float64()),
    }
    return pa.table(ep, schema=TABLES["episodes"]), pa.table(trip, schema=TABLES["triplets"])


def main() -> None:
    span_rows = int(os.environ.get("BENCH_SPAN_ROWS", "10000000"))
    triplet_rows = int(os.environ.get("BENCH_TRIPLET_ROWS", "2000000"))
    load_at_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        store = LightningStore(StoreSettings(path=Path(tmp)))
        insert_rows_per_s = _insert_spans(store, span_rows, "chDB")
        analyst_s, raw_s = _analyst_questions(store)
        window_rows, window_s = _read_window(store, triplet_rows, "chDB")
        ceilings = _engine_ceilings(store, Path(tmp))
        # chDB hosts one data directory per process: the server shares it, and the served
        # run writes its own database there.
        with shared_store(StoreSettings(path=Path(tmp), database="served")) as reachable:
            served = LightningStore(reachable)
            served_insert_rows_per_s = _insert_spans(served, span_rows, "served")
            _, served_window_s = _read_window(served, triplet_rows, "served")
            served.close()
        store.close()

    write_result(
        "store",
        {
            "insert_rows_per_s": round(insert_rows_per_s),
            "window_read_rows_per_s": round(window_rows / window_s),
            "insert_rows_per_s_embedded": round(insert_rows_per_s),
            "window_read_rows_per_s_embedded": round(window_rows / window_s),
            "insert_rows_per_s_served": round(served_insert_rows_per_s),
            "window_read_rows_per_s_served": round(window_rows / served_window_s),
            **{key: round(value) for key, value in ceilings.items()},
            "analyst_query_s": round(analyst_s, 4),
            "raw_span_group_by_s": round(raw_s, 4),
            "span_rows": span_rows // BATCH * BATCH,
            "reward_rows": span_rows // BATCH * BATCH // 20,
            "window_rows": window_rows,
            "triplet_tokens_per_row": 256 + 32,
            "engine": "chDB (embedded ClickHouse) via clickhouse-connect; *_served: the same "
            "through `fulmen store serve` (StoreServer) on loopback",
            "load_average_1m_start": round(load_at_start, 2),
            "load_average_1m_end": round(os.getloadavg()[0], 2),
        },
        console=console,
    )


def _insert_spans(store: LightningStore, span_rows: int, label: str) -> float:
    """Span rows/s of `span_rows` spans inserted in 10k-row batches (each batch's rewards
    are inserted too, untimed)."""
    rng = np.random.default_rng(0)
    now = time.time_ns() - 12 * HOUR_NS
    batches = span_rows // BATCH
    spent = 0.0
    for b in track(range(batches), description=f"{label}: span inserts", console=console):
        batch = _span_batch(b, now, rng)
        rewards = _rewards(batch)
        t0 = time.perf_counter()
        store.insert("spans", batch, dedup_token=f"spans/{b}")
        spent += time.perf_counter() - t0
        store.insert("rewards", rewards, dedup_token=f"rewards/{b}")
    return batches * BATCH / spent


def _engine_ceilings(store: LightningStore, tmp: Path) -> dict[str, float]:
    """What the engine alone does, with no Python and no client on the way: rows/s of one
    10k-row span batch read from an Arrow file into `spans` (parsing, the part, its index
    and the views on `spans`) and into a Null-engine copy (parsing only), best of 5; and of
    every triplet read into Arrow bytes and into nothing (no filter, no order), best of 3."""
    db = store.settings.database
    batch = _span_batch(0, time.time_ns() - 12 * HOUR_NS, np.random.default_rng(0))
    source = tmp / "ceiling.arrow"
    with pa.ipc.new_file(source, batch.schema) as writer:
        writer.write_table(batch)
    store.client.command(f"CREATE TABLE {db}.spans_parsed AS {db}.spans ENGINE = Null")
    tokens = iter(range(1_000_000))

    def insert(table: str) -> Callable[[], object]:
        return lambda: store.client.command(
            f"INSERT INTO {db}.{table} FROM INFILE '{source}' SETTINGS "
            f"insert_deduplication_token = 'ceiling/{next(tokens)}' FORMAT Arrow"
        )

    rows = store.client.query(f"SELECT count() FROM {db}.triplets").result_rows[0][0]
    scan = f"SELECT * FROM {db}.triplets"
    return {
        "insert_engine_rows_per_s": BATCH / _best_of(5, insert("spans")),
        "insert_engine_parse_rows_per_s": BATCH / _best_of(5, insert("spans_parsed")),
        "triplet_scan_arrow_rows_per_s": rows
        / _best_of(3, lambda: store.client.raw_query(scan, fmt="Arrow")),
        "triplet_scan_rows_per_s": rows
        / _best_of(3, lambda: store.client.raw_query(scan, fmt="Null")),
    }


def _analyst_questions(store: LightningStore) -> tuple[float, float]:
    """Best-of-3 seconds of the hourly reward-per-version question and of a raw span GROUP BY."""
    question = (
        "SELECT hour, agent_name, model_version, countMerge(rewards) AS reward_count, "
        "sum(reward_sum) / reward_count AS mean_reward "
        f"FROM {store.settings.database}.reward_hourly WHERE reward_name = 'reward' "
        "GROUP BY hour, agent_name, model_version "
        "ORDER BY hour, agent_name, model_version"
    )
    raw = (
        "SELECT toStartOfHour(start_time) AS hour, model_version, count() AS calls, "
        "avg(dateDiff('microsecond', start_time, end_time)) / 1000 AS mean_ms "
        f"FROM {store.settings.database}.spans WHERE llm_request_model != '' "
        "GROUP BY hour, model_version ORDER BY hour, model_version"
    )
    return _best_of(3, lambda: store.sql(question)), _best_of(3, lambda: store.sql(raw))


def _read_window(store: LightningStore, triplet_rows: int, label: str) -> tuple[int, float]:
    """Write `triplet_rows` triplets (and their episodes), then the window's rows and its
    best-of-3 read seconds."""
    episodes, triplets = _training_rows(triplet_rows // 10, time.time_ns())
    store.insert("episodes", episodes)
    for start in track(
        range(0, triplets.num_rows, 100_000), description=f"{label}: triplets", console=console
    ):
        store.insert("triplets", triplets.slice(start, 100_000))
    query = WindowQuery(agent_name="calc", model_versions=("v1",), min_group_size=8)
    window_rows = store.window(query).num_rows
    return window_rows, _best_of(3, lambda: store.window(query))


def _best_of(times: int, run: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(times):
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return best


if __name__ == "__main__":
    main()
