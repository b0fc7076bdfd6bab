"""Batched generation for the trainer's own needs (held-out evaluation, offline replays):
bf16 where the hardware has it, and the raw-distribution logprob of every chosen token
(log_softmax at temperature 1, as the policy server and vLLM report).

The prompts' shared head (`shared_head`) is run once per call and its key/value cache shared
by every row, the rows' own tails padded in between (`[head][pad…][tail]`; positions come
from the attention mask, so the padding is invisible). On the calculator task that skips
96 of ~122 prompt tokens per row."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from peft import PeftModel
from transformers import BatchEncoding, DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from fulmen.models._precision import Precision, autocast, decode_precision
from fulmen.trainers._shared_head import shared_head

Messages = Sequence[dict[str, str]]


@dataclass(frozen=True, slots=True)
class Generation:
    """One completion: the prompt and response token ids (the response ends with the end
    token when the model stopped), each response token's logprob, the decoded text."""

    prompt_ids: tuple[int, ...]
    response_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    text: str


def prompt_ids(tokenizer: PreTrainedTokenizerBase, messages: Messages) -> list[int]:
    """The token ids the chat template gives `messages`, ready for the assistant's turn."""
    encoded = tokenizer.apply_chat_template(
        [dict(m) for m in messages], add_generation_prompt=True, tokenize=True, return_dict=True
    )
    assert isinstance(encoded, BatchEncoding)  # what tokenize=True, return_dict=True give
    return [int(i) for i in encoded["input_ids"]]


@torch.no_grad()
def generate(
    model: PreTrainedModel | PeftModel,
    tokenizer: PreTrainedTokenizerBase,
    conversations: Sequence[Messages],
    *,
    max_new_tokens: int = 48,
    temperature: float = 0.0,
    batch_size: int = 32,
    seed: int = 0,
    precision: Precision = "auto",
    on_batch: Callable[[int], None] | None = None,
) -> list[Generation]:
    """Complete every conversation; `temperature` 0 is greedy. The forward runs in
    `precision` (`auto`: `decode_precision`'s choice). `on_batch(n)` is told after each
    batch of n conversations (progress bars)."""
    device = model.device
    precision = decode_precision(device, precision)
    end_ids = _end_ids(tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end_ids[0]
    generator_seed = torch.Generator().manual_seed(seed)
    prompts = [prompt_ids(tokenizer, c) for c in conversations]
    head = prompts[0][: shared_head(prompts)] if prompts else []
    head_cache = _head_cache(model, head, precision) if head else None
    out: list[Generation] = []
    for batch in _chunks(prompts, batch_size):
        tails = [ids[len(head) :] for ids in batch]
        gap = max(len(tail) for tail in tails)
        input_ids = torch.tensor([head + [pad_id] * (gap - len(t)) + t for t in tails])
        mask = torch.tensor([[1] * len(head) + [0] * (gap - len(t)) + [1] * len(t) for t in tails])
        width = input_ids.shape[1]
        cache = None
        if head_cache is not None:
            cache = copy.deepcopy(head_cache)
            cache.batch_repeat_interleave(len(batch))
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator_seed)))
        sampling = {"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": 0}
        with autocast(device, precision):
            result = model.generate(  # type: ignore[operator]  # peft's union confuses mypy
                input_ids=input_ids.to(device),
                attention_mask=mask.to(device),
                past_key_values=cache,
                max_new_tokens=max_new_tokens,
                pad_token_id=pad_id,
                eos_token_id=end_ids,
                output_logits=True,
                return_dict_in_generate=True,
                **(sampling if temperature > 0 else {"do_sample": False}),
            )
        chosen = result.sequences[:, width:]  # (batch, steps)
        logits = torch.stack(result.logits, dim=1).float()  # (batch, steps, vocab)
        logprobs = torch.log_softmax(logits, dim=-1).gather(-1, chosen.unsqueeze(-1)).squeeze(-1)
        for row, ids in enumerate(batch):
            response = _until_end(chosen[row].tolist(), end_ids)
            out.append(
                Generation(
                    prompt_ids=tuple(ids),
                    response_ids=tuple(response),
                    logprobs=tuple(logprobs[row, : len(response)].tolist()),
                    text=str(tokenizer.decode(response, skip_special_tokens=True)),
                )
            )
        if on_batch is not None:
            on_batch(len(batch))
    return out


def _head_cache(
    model: PreTrainedModel | PeftModel, head: list[int], precision: Precision
) -> DynamicCache:
    """The key/value cache of `head`, for a batch of one."""
    cache = DynamicCache(config=model.config)
    with autocast(model.device, precision):
        model(input_ids=torch.tensor([head], device=model.device), past_key_values=cache)
    return cache


def _end_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    ids = {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")}
    return sorted(i for i in ids if isinstance(i, int) and i != tokenizer.unk_token_id)


def _until_end(tokens: list[int], end_ids: list[int]) -> list[int]:
    for index, token in enumerate(tokens):
        if token in end_ids:
            return tokens[: index + 1]
    return tokens


def _chunks(items: list[list[int]], size: int) -> Iterator[list[list[int]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
