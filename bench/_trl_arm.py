"""The TRL arm of the trainer bench: TRL 1.16's GRPO loss path (`compute_loss` + backward per
micro-batch) on inputs laid out as its `_generate_and_score_completions` returns them."""

from __future__ import annotations

import tempfile
import warnings
from typing import Any

import numpy as np
import torch

from bench._trainer_workload import Workload
from fulmen.trainers._rl_step import Precision
from fulmen.trainers._samples import Sample

CLIP_LOW, CLIP_HIGH, TIS_CAP, LR = 0.2, 0.28, 2.0, 1e-6
"""Both arms' loss knobs and learning rate."""


def trl_trainer(model: Any, w: Workload, precision: Precision, device: str) -> Any:
    from datasets import Dataset
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast
    from trl import GRPOConfig, GRPOTrainer

    tokenizer = PreTrainedTokenizerFast(  # TRL wants a processing class; nothing is tokenized
        tokenizer_object=Tokenizer(models.WordLevel({"<pad>": 0, "<eos>": 1}, unk_token="<pad>")),
        pad_token="<pad>", eos_token="<eos>",
    )  # fmt: skip
    n = w.groups * w.group_size
    args = GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="trl-bench-"),
        use_cpu=device == "cpu", bf16=precision == "bf16", fp16=False,
        per_device_train_batch_size=n, gradient_accumulation_steps=1, num_generations=w.group_size,
        loss_type="dapo", beta=0.0, epsilon=CLIP_LOW, epsilon_high=CLIP_HIGH,
        importance_sampling_level="token", vllm_importance_sampling_mode="token_truncate",
        vllm_importance_sampling_clip_max=TIS_CAP, gradient_checkpointing=False,
        learning_rate=LR, max_grad_norm=1.0, report_to="none", save_strategy="no",
        temperature=1.0, log_completions=False,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = GRPOTrainer(
            model=model, reward_funcs=lambda **_: [0.0] * n, args=args,
            train_dataset=Dataset.from_dict({"prompt": ["x"] * n}), processing_class=tokenizer,
        )  # fmt: skip
    # What `use_vllm=True` + `vllm_importance_sampling_correction=True` switch on in compute_loss:
    # the per-token loss times `inputs["importance_sampling_ratio"]` (we pass it, as vLLM would).
    trainer.use_vllm = True
    trainer.vllm_importance_sampling_correction = True
    trainer.current_gradient_accumulation_steps = 1  # == steps_per_generation: normaliser = tokens
    assert not getattr(trainer.model, "is_gradient_checkpointing", False)
    return trainer


def trl_micro_batches(samples: list[Sample], w: Workload, device: str) -> list[dict[str, Any]]:
    """What `_generate_and_score_completions` returns for one generation batch, split as TRL does.

    Rows per micro-batch: the largest divisor of the sample count whose padded rows fit the
    same `max_tokens` budget as ours (at least 1).
    """
    rng = np.random.default_rng(len(samples))
    order = rng.permutation(len(samples))  # TRL shuffles the generation batch before splitting
    rows = [samples[i] for i in order]
    p_len = max(len(s.prompt_ids) for s in rows)
    c_len = max(len(s.response_ids) for s in rows)
    prompt_ids = torch.zeros((len(rows), p_len), dtype=torch.long)
    prompt_mask = torch.zeros((len(rows), p_len), dtype=torch.long)
    completion_ids = torch.zeros((len(rows), c_len), dtype=torch.long)
    completion_mask = torch.zeros((len(rows), c_len), dtype=torch.long)
    sampling = torch.zeros((len(rows), c_len))
    for i, s in enumerate(rows):
        p, c = len(s.prompt_ids), len(s.response_ids)
        prompt_ids[i, p_len - p :], prompt_mask[i, p_len - p :] = torch.tensor(s.prompt_ids), 1
        completion_ids[i, :c], completion_mask[i, :c] = torch.tensor(s.response_ids), 1
        sampling[i, :c] = torch.tensor(s.behaviour_logprobs)
    # TRL computes this from an extra no-grad forward (old_per_token_logps) that we do not charge
    # to it; the values do not change the cost, so a plausible min(exp(delta), cap) stands in.
    ratio = torch.exp(torch.randn((len(rows), c_len)) * 0.3).clamp(max=TIS_CAP) * completion_mask
    batch = {
        "prompt_ids": prompt_ids, "prompt_mask": prompt_mask,
        "completion_ids": completion_ids, "completion_mask": completion_mask,
        "advantages": torch.tensor([s.advantage for s in rows]),
        "importance_sampling_ratio": ratio, "sampling_per_token_logps": sampling,
    }  # fmt: skip
    per_mb = max(
        [
            d
            for d in range(1, len(rows) + 1)
            if len(rows) % d == 0 and d * (p_len + c_len) <= w.max_tokens
        ],
        default=1,
    )
    num_items = completion_mask.sum().to(device)
    return [
        {
            **{k: v[i : i + per_mb].to(device) for k, v in batch.items()},
            "num_items_in_batch": num_items,
        }
        for i in range(0, len(rows), per_mb)
    ]


def trl_step(trainer: Any, optimizer: torch.optim.Optimizer, inputs: list[dict[str, Any]]) -> None:
    """One optimizer step through TRL's loss path, as Trainer.training_step runs it."""
    model = trainer.model
    model.train()
    for mb in inputs:
        with trainer.compute_loss_context_manager():
            loss = trainer.compute_loss(model, mb)
        trainer.accelerator.backward(loss)
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
