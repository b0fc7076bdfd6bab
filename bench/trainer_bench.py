"""`make bench-trainer`: our RL step against TRL 1.16's GRPO loss path on the same logged data.

Both arms train the same randomly initialised model (same seed, same shape, same dtype and
autocast, the same AdamW, grad-norm clip 1.0) on the same synthetic logged LLM calls —
uneven prompt/response lengths, behaviour logprobs, GRPO group advantages — and we count
*response* tokens trained per second of wall time over N optimizer steps after a warm-up,
the two arms interleaved step by step so that a noisy machine hurts both alike.

- ours: `fulmen.trainers._rl_step.rl_step` (length-sorted micro-batches under a padded-token
  budget, right padding without attention mask, LM head on response positions only, in
  recomputed chunks; old logprobs = current ones detached).
- TRL: `GRPOTrainer.compute_loss` + `accelerator.backward` per micro-batch, on inputs shaped
  as `_generate_and_score_completions` returns them: prompts left-padded and completions
  right-padded to the longest of the *generation batch* (one optimizer step's samples),
  split into micro-batches of `per_device_train_batch_size` rows without re-trimming;
  `loss_type="dapo"` (token mean over the step, like ours), epsilon 0.2/0.28, and
  `importance_sampling_ratio` switched on (token_truncate at the same cap) as with vLLM.

CPU (default): SmolLM2-135M shape, our step padded. `--device cuda`: `--shape qwen2-0.5b`
(default), `qwen2-1.5b` or `qwen2-7b` (`--lora`: rank-16 adapters on every linear layer;
`--no-trl`: our arm alone), our step packed with flex attention and compiled decoder
layers, at least 12 timed steps, with the bench's own MFU (`bench/_trainer_shapes.py`),
median and p90 step time and peak memory; merged under "gpu_shapes", one block per shape
(`qwen2-7b-lora` for the LoRA run). `--variant packed|padded`: our step with eager layers,
or padded as before packing, merged under "gpu_ablation". The older "gpu" block is the
padded eager step of an earlier run.

`--fsdp`: the sharded path against the unsharded one instead of TRL, both our `rl_step` on the
same data and init: the policy sharded by FSDP2 (`shard_policy`) in a process group of one
rank, as `fulmen train` runs under torchrun, vs the plain model; merged under "fsdp_1gpu"
(`--device cuda`) or "fsdp_cpu".
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import io
import json
import os
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch
from rich.console import Console

from bench._results import ROOT, write_result
from bench._trainer_shapes import (
    H200_BF16_PEAK,
    SHAPES,
    head_flops_not_needed,
    model_config,
    step_flops,
)
from bench._trainer_workload import WORKLOADS, Workload, logged_steps
from bench._trl_arm import (
    CLIP_HIGH,
    CLIP_LOW,
    LR,
    TIS_CAP,
    trl_micro_batches,
    trl_step,
    trl_trainer,
)
from fulmen.trainers._distributed import process_group
from fulmen.trainers._fsdp import shard_policy
from fulmen.trainers._logprobs import response_logprobs
from fulmen.trainers._packed_policy import packed_policy
from fulmen.trainers._rl_batch import collate
from fulmen.trainers._rl_pack import pack
from fulmen.trainers._rl_step import Layout, Precision, RLStepConfig, rl_step
from fulmen.trainers._samples import Sample

console = Console()
RESULT = ROOT / "bench" / "results" / "trainer.json"
LORA_RANK = 16
PACKED_TOKENS = {"qwen2-0.5b": 32768, "qwen2-1.5b": 16384, "qwen2-7b": 8192}
"""Real tokens per packed micro-batch on one H200: as many as activations leave room for
beside both arms' weights and optimizer state (fewer, bigger micro-batches pay on a GPU)."""
PACK_BUCKET = 1024
Variant = Literal["packed-compiled", "packed", "padded"]


def build_model(shape: str, device: str, *, lora: bool = False) -> Any:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)  # both arms start from the same weights
    with torch.device(device):  # initialise in place: a 0.5B model inits slowly on the host
        model = AutoModelForCausalLM.from_config(model_config(shape), attn_implementation="sdpa")
    if not lora:
        return model
    adapter = LoraConfig(r=LORA_RANK, lora_alpha=2 * LORA_RANK, target_modules="all-linear")
    return get_peft_model(model, adapter)


# -------------------------------------------------------------------------------------- driver
def step_config(
    w: Workload, precision: Precision, layout: Layout = "padded", packed_tokens: int = 0
) -> RLStepConfig:
    packed = layout == "packed"
    return RLStepConfig(
        max_tokens=packed_tokens if packed else w.max_tokens,
        micro_batch_overhead_tokens=w.overhead_tokens, layout=layout,
        pack_bucket_tokens=PACK_BUCKET if packed else 1,
        clip_low=CLIP_LOW, clip_high=CLIP_HIGH, tis_cap=TIS_CAP,
        precision=precision, head_chunk_tokens=w.head_chunk_tokens,
    )  # fmt: skip


def steps(data: list[list[Sample]], w: Workload) -> Iterator[tuple[int, bool, list[Sample]]]:
    """(index, warm-up?, samples) of each step; warm-ups cut to `w.warmup_rows` if set."""
    for step, samples in enumerate(data):
        warm = step < w.warmup
        yield step, warm, samples[: w.warmup_rows] if warm and w.warmup_rows else samples


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _peak_gib(device: str) -> float:
    """Peak device memory since the last call, in GiB (0 on CPU)."""
    if device != "cuda":
        return 0.0
    peak = torch.cuda.max_memory_allocated() / 2**30
    torch.cuda.reset_peak_memory_stats()
    return round(peak, 2)


def _bf16_is_fast() -> bool:
    """bf16 autocast pays on CPUs with AMX or AVX512-BF16; on AVX2-only ones it is ~8x slower."""
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return any(f in flags for f in ("amx_bf16", "avx512_bf16"))


def packed_check(model: Any, samples: list[Sample], precision: Precision) -> dict[str, float]:
    """Per-token response logprobs of the same samples, no grad, through padded rows (the
    model's SDPA) and one packed row (flex attention): how far apart the two layouts are
    on this card, in this precision."""
    device = next(model.parameters()).device
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    model.train(False)
    with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=precision == "bf16"):
        padded = collate(samples, device=device)
        ref = response_logprobs(model, padded.input_ids, None, padded.response_mask)
        ref = ref[padded.response_mask]
        with packed_policy(model, compile_layers=False):
            row = pack(samples, device=device, bucket=PACK_BUCKET)
            out = response_logprobs(
                model, row.input_ids, None, row.response_mask, position_ids=row.position_ids
            )[row.response_mask]
    diff = (out - ref).abs()
    return {
        "packed_vs_padded_logprob_max_abs_diff": round(diff.max().item(), 5),
        "packed_vs_padded_logprob_mean_abs_diff": round(diff.mean().item(), 6),
        "compared_tokens": int(diff.numel()),
    }


def run(
    device: str, shape: str, precision: Precision, w: Workload, *, lora: bool, trl: bool,
    variant: Variant = "packed-compiled",
) -> dict[str, Any]:  # fmt: skip
    """Our step against TRL's (unless `trl` is off), steps interleaved. On CUDA ours runs
    `variant`: packed rows with flex attention (`packed_policy`), its decoder layers compiled
    or eager; or the padded rows of the eager model, as before packing."""
    console.print(f"[bold]trainer bench[/]: {shape} on {device}, {precision}, lora={lora}, {w}")
    gpu = device == "cuda"
    data = logged_steps(w, model_config(shape).vocab_size, w.warmup + w.steps)
    ours_model = build_model(shape, device, lora=lora)
    check = packed_check(ours_model, data[0][:16], precision) if gpu else {}
    console.print(check)
    fused = {"fused": True} if gpu else {}
    trainable = [p for p in ours_model.parameters() if p.requires_grad]
    ours_opt = torch.optim.AdamW(trainable, lr=LR, **fused)
    trainer, trl_opt = None, None
    if trl:
        trl_model = build_model(shape, device, lora=lora)
        trl_opt = torch.optim.AdamW(
            [p for p in trl_model.parameters() if p.requires_grad], lr=LR, **fused
        )
        with contextlib.redirect_stdout(io.StringIO()):
            trainer = trl_trainer(trl_model, w, precision, device)
    layout: Layout = "packed" if gpu and variant != "padded" else "padded"
    config = step_config(w, precision, layout, PACKED_TOKENS.get(shape, 0))
    timed: list[dict[str, float]] = []
    _peak_gib(device)
    compiled = variant == "packed-compiled"
    with (
        packed_policy(ours_model, compile_layers=compiled)
        if layout == "packed"
        else contextlib.nullcontext()
    ):
        for step, warm, samples in steps(data, w):
            _sync(device)
            start = time.perf_counter()
            stats = rl_step(ours_model, ours_opt, samples, config=config)
            _sync(device)
            ours, ours_peak = time.perf_counter() - start, _peak_gib(device)
            record = {
                "tokens": stats.tokens,
                "prompt_tokens": sum(len(s.prompt_ids) for s in samples),
                "flops": step_flops(ours_model, model_config(shape), samples),
                "unneeded": head_flops_not_needed(ours_model, model_config(shape), samples),
                "rl_s": ours, "rl_padded": stats.padded_tokens, "rl_mbs": stats.micro_batches,
                "rl_peak_gib": ours_peak, "loss": stats.loss,
            }  # fmt: skip
            if trainer is not None and trl_opt is not None:
                trl_inputs = trl_micro_batches(samples, w, device)  # host-side, not timed
                _sync(device)
                start = time.perf_counter()
                trl_step(trainer, trl_opt, trl_inputs)
                _sync(device)
                record |= {
                    "trl_s": time.perf_counter() - start, "trl_peak_gib": _peak_gib(device),
                    "trl_mbs": len(trl_inputs),
                    "trl_padded": sum(
                        mb["prompt_ids"].numel() + mb["completion_ids"].numel() for mb in trl_inputs
                    ),
                }  # fmt: skip
            console.print(f"{'warm-up' if warm else 'step'} {step}: {record}")
            if not warm:
                timed.append(record)
    return summary(timed, device, shape, precision, w, lora=lora) | check


def summary(
    timed: list[dict[str, float]], device: str, shape: str, precision: Precision, w: Workload,
    *, lora: bool,
) -> dict[str, Any]:  # fmt: skip
    """The bench's figures over the timed steps."""

    def per_step(key: str) -> float:
        return round(sum(r[key] for r in timed) / len(timed), 2)

    tokens, rl_s = sum(r["tokens"] for r in timed), [r["rl_s"] for r in timed]
    rl_tps = tokens / sum(rl_s)
    trl = all("trl_s" in r for r in timed)
    trl_tps = tokens / sum(r["trl_s"] for r in timed) if trl else None
    mfu = sum(r["flops"] for r in timed) / sum(rl_s) / H200_BF16_PEAK if device == "cuda" else None
    return {
        "rl_tokens_per_s": round(rl_tps, 2),
        "trl_tokens_per_s": round(trl_tps, 2) if trl_tps else None,
        "speedup_vs_trl": round(rl_tps / trl_tps, 3) if trl_tps else None,
        "mfu": round(mfu, 4) if mfu is not None else None,
        "mfu_needed_work": round(
            mfu * (1 - sum(r["unneeded"] for r in timed) / sum(r["flops"] for r in timed)), 4
        )
        if mfu is not None
        else None,
        "model_tflops_per_s": round(sum(r["flops"] for r in timed) / sum(rl_s) / 1e12, 1),
        "read_tokens_per_s": round(
            sum(r["tokens"] + r["prompt_tokens"] for r in timed) / sum(rl_s)
        ),
        "step_s_median": round(float(np.median(rl_s)), 3),
        "step_s_p90": round(float(np.percentile(rl_s, 90)), 3),
        "p90_over_median": round(float(np.percentile(rl_s, 90) / np.median(rl_s)), 3),
        "peak_memory_gib": max(r["rl_peak_gib"] for r in timed) if device == "cuda" else None,
        "shape": shape, "lora": lora, "device": device, "precision": precision,
        "torch": torch.__version__, "trl": importlib.metadata.version("trl"),
        **({"threads": torch.get_num_threads()} if device == "cpu" else {}),
        "timed_steps": len(timed), "warmup_steps": w.warmup,
        "samples_per_step": w.groups * w.group_size,
        "response_tokens_per_step": per_step("tokens"),
        "prompt_tokens_per_step": per_step("prompt_tokens"),
        "rl_padded_tokens_per_step": per_step("rl_padded"),
        "rl_micro_batches_per_step": per_step("rl_mbs"),
        **(
            {"trl_padded_tokens_per_step": per_step("trl_padded"),
             "trl_micro_batches_per_step": per_step("trl_mbs"),
             "trl_peak_memory_gib": max(r["trl_peak_gib"] for r in timed) if device == "cuda"
             else None,
             "trl_step_s": [round(r["trl_s"], 3) for r in timed]}
            if trl else {}
        ),
        "max_tokens_per_micro_batch": PACKED_TOKENS.get(shape, w.max_tokens)
        if device == "cuda" else w.max_tokens,
        "rl_step_s": [round(s, 3) for s in rl_s],
        "losses": [round(r["loss"], 6) for r in timed],
        "notes": NOTES if device == "cpu" else GPU_NOTES,
    }  # fmt: skip


def run_fsdp(device: str, shape: str, precision: Precision, w: Workload) -> dict[str, Any]:
    """Unsharded vs FSDP2 on one rank, steps interleaved, same data and init."""
    console.print(f"[bold]trainer bench, fsdp[/]: {shape} on {device}, {precision}, {w}")
    data = logged_steps(w, model_config(shape).vocab_size, w.warmup + w.steps)
    for name, value in (("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "29511"), ("RANK", "0"),
                        ("WORLD_SIZE", "1"), ("LOCAL_RANK", "0")):  # fmt: skip
        os.environ.setdefault(name, value)
    config = step_config(w, precision)
    fused = {"fused": True} if device == "cuda" else {}
    with process_group(timeout=timedelta(minutes=10)) as ranks:
        plain = build_model(shape, device)
        sharded = shard_policy(build_model(shape, device), ranks=ranks)
        arms = {
            "unsharded": (plain, torch.optim.AdamW(plain.parameters(), lr=LR, **fused)),
            "fsdp": (sharded, torch.optim.AdamW(sharded.parameters(), lr=LR, **fused)),
        }
        timed: list[dict[str, float]] = []
        _peak_gib(device)
        for step, warm, samples in steps(data, w):
            record: dict[str, float] = {}
            for arm, (model, optimizer) in arms.items():
                _sync(device)
                start = time.perf_counter()
                stats = rl_step(model, optimizer, samples, config=config)
                _sync(device)
                record |= {f"{arm}_s": time.perf_counter() - start,
                           f"{arm}_peak_gib": _peak_gib(device), f"{arm}_loss": stats.loss,
                           "tokens": stats.tokens}  # fmt: skip
            console.print(f"{'warm-up' if warm else 'step'} {step}: {record}")
            if not warm:
                timed.append(record)
    tokens = sum(r["tokens"] for r in timed)
    rates = {arm: tokens / sum(r[f"{arm}_s"] for r in timed) for arm in arms}
    return {
        "unsharded_tokens_per_s": round(rates["unsharded"], 2),
        "fsdp_tokens_per_s": round(rates["fsdp"], 2),
        "fsdp_vs_unsharded": round(rates["fsdp"] / rates["unsharded"], 3),
        "shape": shape, "device": device, "precision": precision, "torch": torch.__version__,
        "ranks": 1, "timed_steps": len(timed), "warmup_steps": w.warmup,
        "samples_per_step": w.groups * w.group_size,
        "response_tokens_per_step": round(tokens / len(timed), 2),
        "unsharded_step_s": [round(r["unsharded_s"], 3) for r in timed],
        "fsdp_step_s": [round(r["fsdp_s"], 3) for r in timed],
        "loss_max_abs_diff": max(abs(r["unsharded_loss"] - r["fsdp_loss"]) for r in timed),
        **(
            {"unsharded_peak_memory_gib": max(r["unsharded_peak_gib"] for r in timed),
             "fsdp_peak_memory_gib": max(r["fsdp_peak_gib"] for r in timed)}
            if device == "cuda" else {}
        ),
        "notes": FSDP_NOTES,
    }  # fmt: skip


FSDP_NOTES = (
    "Both arms: our rl_step, full fine-tuning of the same randomly initialised model (fp32 "
    "weights, AdamW, bf16 autocast on CUDA), same logged data, steps interleaved. fsdp: the "
    "model sharded by FSDP2 (fully_shard per decoder layer + a root ResponseLogprobs unit) in a "
    "process group of one rank, as fulmen train runs it under torchrun; the sharded step skips "
    "the shared-head reuse (these synthetic prompts share no head, so it costs nothing here). "
    "Both models and optimizers live on the card at once, so peak memory is the step's own "
    "plus both models' state."
)

NOTES = (
    "Same data, model init, dtype/autocast, AdamW and grad clip for both arms; steps interleaved; "
    "tokens = response tokens trained per wall second over the timed steps. TRL arm: "
    "GRPOTrainer.compute_loss + accelerator.backward per micro-batch (loss_type=dapo, "
    "epsilon 0.2/0.28, token-level importance_sampling_ratio capped like our TIS, beta=0), on "
    "inputs laid out as _generate_and_score_completions returns them: prompts left-padded and "
    "completions right-padded to the longest of the whole generation batch (= one optimizer "
    "step), shuffled, then split into micro-batches of the largest row count whose padded size "
    "fits the same max_tokens budget. Not charged to TRL: generation, reward scoring, and the "
    "extra no-grad forward TRL runs to get old_per_token_logps for its importance ratio (ours "
    "needs none: old = current detached, exact for one step per window); we also turned off "
    "TRL's default gradient_checkpointing=True. TRL's fused LM head (trl.kernels) already skips "
    "prompt positions on CUDA/Triton, but on CPU it scores every position (prompt and padding "
    "included) and also computes the entropy. Our levers: length-sorted micro-batches (little "
    "padding), right padding without an attention mask, LM head + log_softmax on response "
    "positions only, in chunks recomputed in backward. On a GPU both arms are largely bound by "
    "host-side kernel launches (eager transformers, ~3.6k kernels a micro-batch), so the number "
    "of micro-batches matters as much as padding: ours packs with micro_batch_overhead_tokens "
    "8192 on GPU (32 on CPU). Precision: bf16 autocast on CUDA; on a CPU without AMX/AVX512-BF16 "
    "both arms run fp32 (bf16 matmuls are ~8x slower there), with one torch thread each (on the "
    "shared 2-core box two OpenMP threads spin-wait under load and ran 4x slower)."
)


GPU_NOTES = (
    "One H200, bf16 autocast, fp32 weights; random init from the shape's published config. "
    "Ours: rl_step with packed micro-batches (samples end to end, position ids restarting, "
    "no padding but the bucket of 1024 at a row's end), flex_attention through transformers' "
    "packed-sequence BlockMask, each decoder layer torch.compile'd, LM head on response "
    "positions in recomputed chunks, fused AdamW. TRL arm: as in the CPU notes (sdpa, "
    "GRPOTrainer.compute_loss + backward on TRL's padded layout, fused AdamW). mfu: model "
    "FLOPs of the timed steps over their wall time over 790 TFLOP/s, the dense bf16 rate "
    "measured on these H200s (8192^3 bf16 matmul, 769-798; datasheet 989). Model FLOPs: "
    "6 x parameters x tokens read (prompt + response) for full fine-tuning, 4 x frozen + "
    "6 x trainable parameters x tokens for LoRA (no weight gradients for frozen weights), "
    "parameters counted once (embedding matrix included, as in the usual 6N), plus causal "
    "attention 6 x layers x hidden x L^2 per sample; recomputed LM-head chunks and bucket "
    "padding are not counted. Step times are wall time of rl_step with the device synced; "
    "peak memory is torch's max allocated during our step, both arms' weights and optimizer "
    "state resident. packed_vs_padded_*: per-token response logprobs of 16 samples, padded "
    "SDPA rows vs one packed flex row, same weights, bf16 autocast, no grad."
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--shape", choices=SHAPES, default=None)
    parser.add_argument(
        "--variant", choices=get_args(Variant), default="packed-compiled",
        help="CUDA: our step's layout; other than the default, figures go under gpu_ablation",
    )  # fmt: skip
    parser.add_argument("--lora", action="store_true", help=f"LoRA rank {LORA_RANK}, all linear")
    parser.add_argument(
        "--no-trl", action="store_true", help="our step alone (TRL's cannot fit a 7B LoRA run)"
    )
    parser.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto")
    parser.add_argument("--steps", type=int, default=None, help="timed optimizer steps")
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument(
        "--fsdp", action="store_true", help="FSDP2 on one rank vs unsharded, not vs TRL"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU mode: torch threads (default 1: on the shared 2-core box two OpenMP threads "
        "spin-wait on each other and ran 4x slower than one)",
    )
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here")
    shape = args.shape or ("qwen2-0.5b" if args.device == "cuda" else "smollm2-135m")
    precision: Precision = (
        ("bf16" if args.device == "cuda" or _bf16_is_fast() else "fp32")
        if args.precision == "auto"
        else args.precision
    )
    w = WORKLOADS[args.device]
    w = replace(
        w,
        steps=args.steps or w.steps,
        warmup=w.warmup if args.warmup is None else args.warmup,
    )
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    previous = json.loads(RESULT.read_text())["metrics"] if RESULT.exists() else {}
    if args.fsdp:
        figures = run_fsdp(args.device, shape, precision, w)
        card = {"card": torch.cuda.get_device_name()} if args.device == "cuda" else {}
        block = "fsdp_1gpu" if args.device == "cuda" else "fsdp_cpu"
        write_result("trainer", {**previous, block: {**card, **figures}}, console=console)
        return
    figures = run(
        args.device, shape, precision, w, lora=args.lora, trl=not args.no_trl,
        variant=args.variant,
    )  # fmt: skip
    if args.device == "cuda":
        name = f"{shape}-lora" if args.lora else shape
        if args.variant != "packed-compiled":
            kept = {k: v for k, v in figures.items() if k != "max_tokens_per_micro_batch"}
            ablation = {**previous.get("gpu_ablation", {}), f"{name}/{args.variant}": kept}
            write_result("trainer", {**previous, "gpu_ablation": ablation}, console=console)
            return
        block = {"card": torch.cuda.get_device_name(), **figures}
        shapes = {**previous.get("gpu_shapes", {}), name: block}
        metrics = {**previous, "gpu_shapes": shapes}
    else:
        kept = {
            k: v for k, v in previous.items() if k in ("gpu", "gpu_shapes", "fsdp_1gpu", "fsdp_cpu")
        }
        metrics = {**figures, **kept}
    write_result("trainer", metrics, console=console)


if __name__ == "__main__":
    main()
