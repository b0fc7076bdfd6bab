"""The RL step on a tiny Llama built from a config (no tokenizer, no download)."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import asdict, replace

import pytest
import torch
from torch import Tensor
from transformers import LlamaConfig, LlamaForCausalLM

from fulmen.trainers._logprobs import response_logprobs
from fulmen.trainers._rl_batch import MicroBatch, collate, micro_batches
from fulmen.trainers._rl_pack import PAD_DOCUMENT, pack, packed_micro_batches
from fulmen.trainers._rl_step import RLStepConfig, rl_step
from fulmen.trainers._samples import Sample
from fulmen.trainers._shared_head import MIN_SHARED_HEAD

VOCAB = 128
FP32 = RLStepConfig(precision="fp32", max_grad_norm=1e9)


def _model(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        vocab_size=VOCAB,
        max_position_embeddings=256,
    )
    return LlamaForCausalLM(config)


def _sample(rng: random.Random, prompt: int, response: int, advantage: float = 0.0) -> Sample:
    return Sample(
        prompt_ids=tuple(rng.randrange(VOCAB) for _ in range(prompt)),
        response_ids=tuple(rng.randrange(VOCAB) for _ in range(response)),
        behaviour_logprobs=tuple(-rng.uniform(0.5, 6.0) for _ in range(response)),
        advantage=advantage,
    )


def _samples(n: int, seed: int = 0) -> list[Sample]:
    rng = random.Random(seed)
    return [
        _sample(rng, rng.randint(1, 40), rng.randint(1, 20), rng.uniform(-1, 1)) for _ in range(n)
    ]


def _sequence_logprob(model: torch.nn.Module, sample: Sample) -> float:
    """Σ log π(response | prompt), the naive way: full logits, log_softmax, gather."""
    ids = torch.tensor([sample.prompt_ids + sample.response_ids])
    with torch.no_grad():
        logps = model(ids).logits[0, :-1].log_softmax(-1).gather(-1, ids[0, 1:, None])[:, 0]
    return logps[len(sample.prompt_ids) - 1 :].sum().item()


def _padded(batches: list[list[Sample]]) -> int:
    return sum(len(b) * max(s.num_tokens for s in b) for b in batches)


def test_micro_batches_respect_the_budget_and_cover_every_sample_once() -> None:
    samples = _samples(50)
    oversized = _sample(random.Random(1), 70, 10)  # 80 tokens > budget
    for overhead in (0, 16, 10_000):
        batches = micro_batches([*samples, oversized], max_tokens=64, overhead_tokens=overhead)
        flat = [s for b in batches for s in b]
        assert Counter(map(id, flat)) == Counter(map(id, [*samples, oversized]))  # once each
        for batch in batches:
            assert len(batch) * max(s.num_tokens for s in batch) <= 64 or batch == [oversized]
        assert batches[0] == [oversized]  # longest first
        lengths = [s.num_tokens for s in flat]
        assert lengths == sorted(lengths, reverse=True)
    with pytest.raises(ValueError, match="max_tokens"):
        micro_batches(samples, max_tokens=0)


def test_micro_batches_minimise_padding_plus_overhead() -> None:
    rng = random.Random(0)
    a, b, c, d = (_sample(rng, n - 1, 1) for n in (100, 90, 20, 20))
    # one micro-batch: 4·100 + 50 = 450; [a b][c d]: 2·100 + 50 + 2·20 + 50 = 340;
    # [a][b][c d]: 100 + 50 + 90 + 50 + 40 + 50 = 380; [a][b][c][d]: 230 + 200 = 430
    assert micro_batches([c, a, d, b], max_tokens=1000, overhead_tokens=50) == [[a, b], [c, d]]
    # free micro-batches: no padding at all; expensive ones: everything in one
    assert micro_batches([c, a, d, b], max_tokens=1000, overhead_tokens=0) == [[a], [b], [c, d]]
    assert micro_batches([c, a, d, b], max_tokens=1000, overhead_tokens=10**6) == [[a, b, c, d]]


def test_micro_batches_pad_less_than_arrival_order() -> None:
    samples = _samples(64)
    packed = micro_batches(samples, max_tokens=256)
    rows = -(-len(samples) // len(packed))  # as many micro-batches, in arrival order
    naive = [samples[i : i + rows] for i in range(0, len(samples), rows)]
    assert _padded(packed) < _padded(naive)


def test_response_logprobs_match_full_logits() -> None:
    model = _model().eval()
    batch = _samples(5)
    mb = collate(batch, device="cpu")
    # naive: every position's full-vocab logits, with the padding mask, then pick responses
    naive_model = _model().eval()
    attention = torch.zeros_like(mb.input_ids)
    for row, s in enumerate(batch):
        attention[row, : s.num_tokens] = 1
    full = naive_model(mb.input_ids, attention_mask=attention).logits.float().log_softmax(-1)
    naive = torch.zeros(mb.input_ids.shape)
    naive[:, 1:] = full[:, :-1].gather(-1, mb.input_ids[:, 1:, None])[..., 0]
    naive = naive * mb.response_mask
    # ours: no mask (right padding), chunks of 7 tokens so several chunks and a ragged one
    ours = response_logprobs(model, mb.input_ids, None, mb.response_mask, chunk_tokens=7)
    assert ours.shape == mb.input_ids.shape
    torch.testing.assert_close(ours, naive, atol=1e-5, rtol=1e-5)
    # and the gradients agree (the chunks are recomputed in backward)
    ours.sum().backward()
    naive.sum().backward()
    for (name, p), q in zip(model.named_parameters(), naive_model.parameters(), strict=True):
        assert p.grad is not None, name
        assert q.grad is not None, name
        torch.testing.assert_close(p.grad, q.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_response_logprobs_without_grad() -> None:
    model = _model()
    mb = collate(_samples(3), device="cpu")
    with torch.no_grad():
        out = response_logprobs(model, mb.input_ids, None, mb.response_mask)
    assert not out.requires_grad
    assert (out[~mb.response_mask] == 0).all()
    assert (out[mb.response_mask] < 0).all()


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_positive_advantage_raises_the_response_logprob(precision: str) -> None:
    model = _model()
    rng = random.Random(3)
    good, bad = _sample(rng, 12, 6, advantage=1.0), _sample(rng, 9, 5, advantage=-1.0)
    before = _sequence_logprob(model, good), _sequence_logprob(model, bad)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    config = replace(FP32, precision="bf16" if precision == "bf16" else "fp32")
    stats = rl_step(model, optimizer, [good, bad], config=config)
    after = _sequence_logprob(model, good), _sequence_logprob(model, bad)
    assert after[0] > before[0]
    assert after[1] < before[1]
    assert stats.tokens == 11
    assert stats.micro_batches == 1
    assert stats.grad_norm > 0
    assert stats.clip_fraction == 0.0  # old == current on a single step


def test_rl_step_is_deterministic_with_a_seed() -> None:
    def run() -> tuple[dict[str, float], list[torch.Tensor]]:
        model = _model(seed=7)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        stats = rl_step(model, optimizer, _samples(12), config=replace(FP32, max_tokens=96))
        return {k: v for k, v in asdict(stats).items() if k != "seconds"}, [
            p.detach().clone() for p in model.parameters()
        ]

    (stats_a, params_a), (stats_b, params_b) = run(), run()
    assert stats_a == stats_b
    assert stats_a["micro_batches"] > 1
    for a, b in zip(params_a, params_b, strict=True):
        assert torch.equal(a, b)


def test_micro_batching_does_not_change_the_update() -> None:
    # a token mean over the whole step: one micro-batch or many gives the same gradient
    samples = _samples(12)
    updates = []
    for max_tokens in (10_000, 64):
        model = _model(seed=1)
        start = [p.detach().clone() for p in model.parameters()]
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        stats = rl_step(model, optimizer, samples, config=replace(FP32, max_tokens=max_tokens))
        updates.append(
            (stats, [p.detach() - s for p, s in zip(model.parameters(), start, strict=True)])
        )
    (one, delta_one), (many, delta_many) = updates
    assert one.micro_batches == 1
    assert many.micro_batches > 1
    assert many.padded_tokens < one.padded_tokens
    assert many.loss == pytest.approx(one.loss, abs=1e-6)
    assert many.grad_norm == pytest.approx(one.grad_norm, rel=1e-4)
    for a, b in zip(delta_one, delta_many, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)


def test_packed_micro_batches_cover_every_sample_within_the_budget() -> None:
    samples = _samples(40)
    batches = packed_micro_batches(samples, max_tokens=100)
    assert Counter(s for b in batches for s in b) == Counter(samples)
    assert all(sum(s.num_tokens for s in b) <= 100 for b in batches)
    loads = [sum(s.num_tokens for s in b) for b in batches]
    assert loads == sorted(loads, reverse=True)
    assert len(batches) <= -(-sum(loads) // 100) + 1  # first fit decreasing wastes little
    assert batches == packed_micro_batches(samples, max_tokens=100)


def _weighted_response_logprobs(
    mb: MicroBatch, model: torch.nn.Module
) -> tuple[Tensor, list[Tensor]]:
    """(response-token logprobs in sample order, gradients of a weighted sum of them)."""
    out = response_logprobs(
        model, mb.input_ids, None, mb.response_mask, position_ids=mb.position_ids
    )
    picked = out[mb.response_mask]  # (N,) row-major: sample by sample, token by token
    (picked * torch.linspace(0.5, 2.0, picked.numel())).sum().backward()  # every token counts
    return picked.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]


def test_packed_rows_give_the_padded_logprobs_and_gradients() -> None:
    # one packed row (position ids restarting per sample, bucket padding as pad documents)
    # against right-padded rows: same per-token logprobs and gradients, fp32, within 1e-5
    samples = _samples(7, seed=4)
    packed = pack(samples, device="cpu", bucket=PAD_DOCUMENT * 2)
    assert packed.input_ids.shape == (
        1,
        PAD_DOCUMENT * 2 * -(-sum(s.num_tokens for s in samples) // (PAD_DOCUMENT * 2)),
    )
    padded_out, padded_grads = _weighted_response_logprobs(
        collate(samples, device="cpu"), _model(5)
    )
    packed_out, packed_grads = _weighted_response_logprobs(packed, _model(5))
    torch.testing.assert_close(packed_out, padded_out, atol=1e-5, rtol=1e-5)
    assert len(packed_grads) == len(padded_grads) > 0
    for a, b in zip(padded_grads, packed_grads, strict=True):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)


def test_a_packed_rl_step_gives_the_padded_update() -> None:
    samples = _samples(12, seed=6)
    updates = []
    for config in (
        replace(FP32, max_tokens=10_000),
        replace(FP32, max_tokens=150, layout="packed", pack_bucket_tokens=32),
    ):
        model = _model(seed=7)
        start = [p.detach().clone() for p in model.parameters()]
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        stats = rl_step(model, optimizer, samples, config=config)
        updates.append(
            (stats, [p.detach() - s for p, s in zip(model.parameters(), start, strict=True)])
        )
    (padded, delta_padded), (packed, delta_packed) = updates
    assert packed.micro_batches > 1
    assert packed.tokens == padded.tokens
    assert packed.padded_tokens < padded.padded_tokens
    assert packed.loss == pytest.approx(padded.loss, abs=1e-6)
    assert packed.grad_norm == pytest.approx(padded.grad_norm, rel=1e-4)
    for a, b in zip(delta_padded, delta_packed, strict=True):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=1e-4)


def _with_shared_head(samples: list[Sample], head: int) -> list[Sample]:
    shared = tuple(random.Random(9).randrange(VOCAB) for _ in range(head))
    return [replace(s, prompt_ids=shared + s.prompt_ids) for s in samples]


def test_a_shared_head_gives_the_same_logprobs_and_gradients() -> None:
    mb = collate(_with_shared_head(_samples(6), 20), device="cpu")
    results = []
    for head in (0, 20):
        model = _model(seed=2)
        out = response_logprobs(model, mb.input_ids, None, mb.response_mask, head=head)
        (out * torch.linspace(0.5, 2.0, out.shape[1])).sum().backward()  # every position counts
        results.append((out.detach(), [p.grad for p in model.parameters()]))
    (plain, plain_grads), (shared, shared_grads) = results
    assert shared.shape == plain.shape
    torch.testing.assert_close(shared, plain, atol=1e-5, rtol=1e-5)
    for a, b in zip(plain_grads, shared_grads, strict=True):
        assert a is not None
        assert b is not None
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)


def test_rl_step_runs_the_shared_head_once_for_the_same_update() -> None:
    samples = _with_shared_head(_samples(8), MIN_SHARED_HEAD + 4)
    updates = []
    for head in (False, True):
        model = _model(seed=3)
        start = [p.detach().clone() for p in model.parameters()]
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        with pytest.MonkeyPatch.context() as patch:
            if not head:
                patch.setattr("fulmen.trainers._rl_step.shared_head", lambda prompts: 0)
            stats = rl_step(model, optimizer, samples, config=replace(FP32, max_tokens=10_000))
        updates.append(
            (stats, [p.detach() - s for p, s in zip(model.parameters(), start, strict=True)])
        )
    (plain, delta_plain), (shared, delta_shared) = updates
    assert shared.padded_tokens == plain.padded_tokens - (MIN_SHARED_HEAD + 4) * (len(samples) - 1)
    assert shared.loss == pytest.approx(plain.loss, abs=1e-6)
    for a, b in zip(delta_plain, delta_shared, strict=True):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=1e-4)


def test_kl_to_a_reference() -> None:
    model, ref = _model(seed=2), _model(seed=2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    config = replace(FP32, kl_beta=0.1)
    first = rl_step(model, optimizer, _samples(4), config=config, ref_model=ref)
    assert first.kl_mean == pytest.approx(0.0, abs=1e-6)  # identical weights
    second = rl_step(model, optimizer, _samples(4), config=config, ref_model=ref)
    assert second.kl_mean > 0.0  # one step apart
    with pytest.raises(ValueError, match="ref_model"):
        rl_step(model, optimizer, _samples(4), config=config)


def test_rl_step_trains_a_lora_adapter() -> None:
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(
        _model(seed=4), LoraConfig(r=4, target_modules=["q_proj", "v_proj", "lm_head"])
    )
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    rng = random.Random(5)
    good = _sample(rng, 10, 6, advantage=1.0)
    before = _sequence_logprob(model, good)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):  # LoRA's B starts at 0: the first step moves B, the second the logits
        rl_step(model, optimizer, [good], config=FP32)
    assert _sequence_logprob(model, good) > before
    for name, p in model.named_parameters():
        if name in frozen:
            assert torch.equal(p, frozen[name]), name
