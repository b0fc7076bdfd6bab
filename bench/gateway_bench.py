"""`make bench-gateway`: what the gateway adds to an agent's LLM call, and how many calls
per second it carries, on this machine's cores.

Three processes, as in production: the policy server on a tiny model (upstream), the
gateway (`fulmen gateway`, recording into a real Kafka broker), and this client. Each
measured pair is one non-streamed, greedy call sent directly to the upstream and the same
call through the gateway within a rollout (order alternating), so upstream drift cancels;
the added latency of a pair is gateway minus direct. The same number of pairs sent directly
twice gives the noise floor: what the upstream's own jitter puts into a pair's difference
with no gateway at all. Then `BENCH_CONCURRENCY` client threads call through the gateway
for `BENCH_LOAD_S` seconds: `calls_per_s`, beside the same load sent directly.

Writes bench/results/gateway.json. Sizes: BENCH_PAIRS, BENCH_MAX_TOKENS, BENCH_CONCURRENCY,
BENCH_LOAD_S.
"""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import Progress

from bench._results import write_result
from fulmen.kafka import KafkaSettings, create_topics
from fulmen.local import KafkaBroker
from fulmen.models import tiny_model_dir
from fulmen.producers import FulmenSettings

console = Console()
WARMUP = 30


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def _process(
    args: list[str], env: dict[str, str], ready_url: str
) -> Iterator[subprocess.Popen[bytes]]:
    """A `fulmen` command in its own process, until the block ends."""
    process = subprocess.Popen(
        [sys.executable, "-m", "fulmen.cli", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 300
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{args[0]} exited: {process.stderr and process.stderr.read()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(ready_url, timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{args[0]} did not start")
            time.sleep(0.2)
        yield process
    finally:
        process.terminate()
        process.wait(30)


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds the process `pid` has used (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _call(client: httpx.Client, url: str, body: dict[str, Any]) -> float:
    start = time.perf_counter()
    response = client.post(url, json=body)
    elapsed = time.perf_counter() - start
    response.raise_for_status()
    return elapsed * 1000


def paired(direct: str, gateway: str, body: dict[str, Any], pairs: int) -> dict[str, list[float]]:
    """Latencies (ms) of `pairs` direct/`gateway` pairs, alternating which goes first."""
    times: dict[str, list[float]] = {"direct": [], "gateway": [], "added": []}
    with httpx.Client(timeout=60) as client, Progress(console=console, transient=True) as bar:
        task = bar.add_task(f"paired calls via {gateway}", total=WARMUP + pairs)
        for i in range(WARMUP + pairs):
            if i % 2:
                via = _call(client, gateway, body)
                plain = _call(client, direct, body)
            else:
                plain = _call(client, direct, body)
                via = _call(client, gateway, body)
            if i >= WARMUP:
                times["direct"].append(plain)
                times["gateway"].append(via)
                times["added"].append(via - plain)
            bar.advance(task)
    return times


def load(url: str, body: dict[str, Any], threads: int, seconds: float) -> float:
    """Calls per second completed by `threads` clients calling `url` back to back."""
    done = [0] * threads
    stop = threading.Event()

    def run(slot: int) -> None:
        with httpx.Client(timeout=60) as client:
            while not stop.is_set():
                client.post(url, json=body).raise_for_status()
                done[slot] += 1

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    time.sleep(seconds)
    stop.set()
    for worker in workers:
        worker.join()
    return sum(done) / (time.perf_counter() - start)


def main() -> None:
    pairs = int(os.environ.get("BENCH_PAIRS", "2000"))
    # One token: what the gateway adds does not grow with the answer, but the tiny model's
    # jitter does (at 4 tokens the noise floor's p99 alone was 6.3 ms, at 1 token 2.6 ms).
    max_tokens = int(os.environ.get("BENCH_MAX_TOKENS", "1"))
    concurrency = int(os.environ.get("BENCH_CONCURRENCY", "8"))
    load_s = float(os.environ.get("BENCH_LOAD_S", "15"))
    body = {
        "model": "tiny",
        "messages": [{"role": "user", "content": "What is 3+4?"}],
        "max_tokens": max_tokens,
        "temperature": 0,
    }
    load_at_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp, KafkaBroker(data_dir=Path(tmp) / "kafka") as broker:
        root = Path(tmp)
        settings = FulmenSettings()
        create_topics(
            KafkaSettings(bootstrap_servers=broker.bootstrap_servers),
            settings.topics.event_topics(),
        )
        model = tiny_model_dir(root / "tiny", seed=0)
        upstream_port, gateway_port = _free_port(), _free_port()
        env = os.environ | {
            "OMP_NUM_THREADS": "1",
            "FULMEN_TRANSPORT": "kafka",
            "FULMEN_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "FULMEN_PRODUCER__SPILL_DIR": str(root / "spill"),
            "FULMEN_PRODUCER__AGENT_NAME": "bench",
        }
        direct = f"http://127.0.0.1:{upstream_port}/v1"
        gateway = f"http://127.0.0.1:{gateway_port}"
        serve = ["serve", "--model", str(model), "--port", str(upstream_port), "--no-access-log"]
        proxy = ["gateway", "--upstream", direct, "--port", str(gateway_port)]
        with (
            _process(serve, env, f"http://127.0.0.1:{upstream_port}/health") as upstream,
            _process(proxy, env, f"{gateway}/health") as proxying,
        ):
            rollout_url = f"{gateway}/rollouts/bench-1/v1/chat/completions"
            console.print(
                f"upstream {direct}, gateway {gateway}, broker {broker.bootstrap_servers}"
            )
            noise = paired(f"{direct}/chat/completions", f"{direct}/chat/completions", body, pairs)
            cpu_before = _cpu_s(proxying.pid), _cpu_s(upstream.pid)
            times = paired(f"{direct}/chat/completions", rollout_url, body, pairs)
            gateway_cpu, upstream_cpu = (
                _cpu_s(process.pid) - before
                for process, before in zip((proxying, upstream), cpu_before, strict=True)
            )
            console.print(f"load: {concurrency} clients for {load_s} s, direct then gateway")
            direct_rate = load(f"{direct}/chat/completions", body, concurrency, load_s)
            gateway_rate = load(rollout_url, body, concurrency, load_s)
            stats = httpx.get(f"{gateway}/fulmen/stats").json()
    metrics = {
        "added_p50_ms": round(statistics.median(times["added"]), 3),
        "added_p99_ms": round(_percentile(times["added"], 0.99), 3),
        "added_mean_ms": round(statistics.fmean(times["added"]), 3),
        # the same pairs sent directly twice: the upstream's jitter alone, no gateway
        "noise_p50_ms": round(statistics.median(noise["added"]), 3),
        "noise_p99_ms": round(_percentile(noise["added"], 0.99), 3),
        "direct_p50_ms": round(statistics.median(times["direct"]), 3),
        "direct_p99_ms": round(_percentile(times["direct"], 0.99), 3),
        "gateway_p50_ms": round(statistics.median(times["gateway"]), 3),
        "gateway_p99_ms": round(_percentile(times["gateway"], 0.99), 3),
        # CPU the gateway process spent per call (its producer and Kafka client included),
        # beside the upstream's per call (it answers both calls of a pair)
        "gateway_cpu_ms_per_call": round(gateway_cpu / (WARMUP + pairs) * 1000, 3),
        "upstream_cpu_ms_per_call": round(upstream_cpu / (2 * (WARMUP + pairs)) * 1000, 3),
        # the machine's cores are shared: how busy it was when the run began and ended
        "load_average_at_start": [round(load, 2) for load in load_at_start],
        "load_average_1m": round(os.getloadavg()[0], 2),
        "calls_per_s": round(gateway_rate, 1),
        "direct_calls_per_s": round(direct_rate, 1),
        "pairs": pairs,
        "max_tokens": max_tokens,
        "concurrency": concurrency,
        "gateway_stats": stats["gateway"],
        "producer_stats": stats["producer"],
        "method": (
            "policy server (tiny Llama, fp32, greedy, 1 torch thread, no access log), the "
            "gateway (fulmen gateway, recording every call as a span into a local Kafka "
            "broker, acks=all) and the client in three processes on the same machine. "
            f"Latency: {pairs} pairs (after {WARMUP} warm-up pairs) of the same non-streamed "
            "call sent directly and through the gateway within a rollout, back to back, order "
            "alternating; added = gateway minus direct per pair. Noise: as many pairs sent "
            "directly twice, before. Throughput: "
            f"{concurrency} client threads calling back to back for {load_s} s, through the "
            "gateway, beside the same load sent directly."
        ),
        "target_added_p99_ms": 5,
    }
    write_result("gateway", metrics, console=console)


if __name__ == "__main__":
    main()
