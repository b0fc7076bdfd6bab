"""A tiny Llama-shaped causal LM with a locally trained tokenizer, for CPU tests.

Shaped like SmolLM2 where tests can tell: a byte-level BPE tokenizer that splits digits,
``<|endoftext|>``/``<|im_start|>``/``<|im_end|>`` as ids 0/1/2, eos and pad ``<|im_end|>``,
and a ChatML chat template (``<|im_start|>role\\n…<|im_end|>\\n``) that also renders ``tools``.
The weights are random (the model talks nonsense, deterministically); the tokenizer is
trained on a built-in corpus of arithmetic word problems, calculator tool calls and JSON.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

__all__ = ["TINY_CHAT_TEMPLATE", "tiny_model_dir"]

_SPECIAL_TOKENS: Final = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")  # ids 0, 1, 2
_VOCAB_SIZE: Final = 1024

TINY_CHAT_TEMPLATE: Final = (
    "{%- if messages and messages[0]['role'] == 'system' %}"
    "{%- set system = messages[0]['content'] %}{%- set turns = messages[1:] %}"
    "{%- else %}"
    "{%- set system = 'You are a helpful assistant.' %}{%- set turns = messages %}"
    "{%- endif %}"
    "{{- '<|im_start|>system\\n' + system }}"
    "{%- if tools %}{{- '\\n\\nTools:' }}"
    "{%- for tool in tools %}{{- '\\n' + (tool | tojson) }}{%- endfor %}"
    "{%- endif %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- for message in turns %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string %}{{- message['content'] }}{%- endif %}"
    "{%- if message['tool_calls'] is defined and message['tool_calls'] %}"
    "{%- for call in message['tool_calls'] %}{{- call['function'] | tojson }}{%- endfor %}"
    "{%- endif %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
"""ChatML like SmolLM2's template (a default system turn when there is none), plus the
``tools`` (one JSON schema a line in the system turn) and assistant ``tool_calls``."""


def tiny_model_dir(directory: Path, *, seed: int = 0) -> Path:
    """Write a tiny Llama-shaped causal LM and its tokenizer into ``directory``; return it.

    * ``AutoModelForCausalLM``/``AutoTokenizer.from_pretrained(directory)`` load it offline;
      the model has hidden size 64, 2 layers, 4 heads (2 key/value heads), 512 positions,
      tied embeddings and a vocabulary of about 1k tokens; fp32 safetensors, ~0.5 MB.
      Initialised with std 0.3, so its (nonsense) outputs vary with the prompt, and include
      lone bytes of multi-byte characters: a test of incremental detokenization.
    * Deterministic: the same ``seed`` writes the same weights, and the tokenizer does not
      depend on the seed at all, so models of different seeds share one tokenizer (a full
      fine-tune "version" of another is just another seed).
    * Takes well under a second; ``directory`` is created if needed and overwritten.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = _tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        # Far above Llama's 0.02, at which a random model repeats one token whatever the
        # prompt; at 0.3 greedy outputs vary with the prompt (and with the seed).
        initializer_range=0.3,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):  # seed the init without touching the caller's RNG
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)  # type: ignore[no-untyped-call]  # unannotated __init__
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def _tokenizer() -> PreTrainedTokenizerFast:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=_VOCAB_SIZE,
        min_frequency=1,
        special_tokens=list(_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_corpus(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]  # unannotated __init__
        tokenizer_object=backend,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
        model_max_length=512,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = TINY_CHAT_TEMPLATE
    return tokenizer


_NAMES: Final = (
    "Tom",
    "Anna",
    "Sam",
    "Mia",
    "Ben",
    "Lily",
    "Omar",
    "Zoe",
    "Lucas",
    "Emma",
    "Noah",
    "Olivia",
    "Liam",
    "Sofia",
    "Ethan",
    "Chloe",
    "Jack",
    "Grace",
    "Leo",
    "Ruby",
    "Max",
    "Nora",
    "Hugo",
    "Ella",
)
_ITEMS: Final = (
    "apples",
    "pencils",
    "books",
    "coins",
    "cookies",
    "marbles",
    "stickers",
    "cards",
    "oranges",
    "bananas",
    "candies",
    "balloons",
    "flowers",
    "stamps",
    "shells",
    "tickets",
    "cupcakes",
    "crayons",
    "toys",
    "eggs",
    "bottles",
    "boxes",
    "pages",
    "chairs",
)
_PLACES: Final = (
    "school",
    "the store",
    "the market",
    "the park",
    "the library",
    "the bakery",
    "home",
    "the garden",
    "the farm",
    "the beach",
)
_UNITS: Final = (
    "dollars",
    "cents",
    "minutes",
    "hours",
    "days",
    "weeks",
    "meters",
    "kilometers",
    "liters",
    "kilograms",
    "grams",
    "miles",
)
_GAINS: Final = ("buys", "finds", "gets", "is given", "wins", "picks", "collects", "receives")
_LOSSES: Final = ("gives away", "loses", "eats", "sells", "uses", "drops", "shares", "spends")
_NUMBER_WORDS: Final = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
    "thirty",
    "forty",
    "fifty",
    "hundred",
    "thousand",
    "half",
    "twice",
    "double",
    "triple",
    "quarter",
    "third",
)
_OPERATORS: Final = ("+", "-", "*", "/")
_PHRASES: Final = (
    "You are a helpful assistant. Use the calculator tool for arithmetic.",
    "Answer with a number. Solve the problem step by step, then give the final answer.",
    "Think about the question first. Then call the tool with the expression to evaluate.",
    "If the result is not a whole number, round it to two decimal places.",
    "Each of them has the same number. How much does each one cost in total altogether?",
    "There are more than before, fewer than yesterday, and as many as last week.",
    "Let me compute this with the calculator. The result of the expression is shown below.",
    "Sorry, I cannot answer that question. Please ask me about numbers instead.",
    "system user assistant tool function arguments expression result error content role",
    "true false null 0 1 2 3 4 5 6 7 8 9 = ( ) [ ] { } , : . ? ! ; ' % $ # @ & ^ ~ _ < > |",
    '{"type": "function", "function": {"name": "calculator", "description": "Evaluate an '
    'arithmetic expression.", "parameters": {"type": "object", "properties": '
    '{"expression": {"type": "string"}}, "required": ["expression"]}}}',
)


def _corpus() -> list[str]:
    """Word problems, their calculator calls and answers, in ChatML; about 4k lines."""
    lines: list[str] = list(_PHRASES)
    for index, (name, item) in enumerate(itertools.product(_NAMES, _ITEMS)):
        a, b = index % 13 + 1, (index * 7 + 3) % 11 + 1
        word_a, word_b = _NUMBER_WORDS[a % 21], _NUMBER_WORDS[b % 21]
        gain, loss = _GAINS[index % len(_GAINS)], _LOSSES[index % len(_LOSSES)]
        place, unit = _PLACES[index % len(_PLACES)], _UNITS[index % len(_UNITS)]
        expression = f"{a * 10 + b}{_OPERATORS[index % len(_OPERATORS)]}{b}"
        other = _NAMES[(index + 5) % len(_NAMES)]
        lines += [
            f"{name} has {a} {item} and {gain} {b} more at {place}. How many {item} does "
            f"{name} have now?",
            f"{name} had {word_a} {item} and {loss} {word_b} of them to {other}. How many "
            f"{item} are left?",
            f"A trip to {place} takes {a} {unit}. How many {unit} do {b} trips take?",
            f"What is {a} times {b}? What is {a * 10 + b} divided by {b}? What is {a} plus {b}?",
            f'{{"tool": "calculator", "expression": "{a}+{b}"}}',
            f'{{"name": "calculator", "arguments": {{"expression": "{expression}"}}}}',
            f"<|im_start|>user\nWhat is {expression}?<|im_end|>\n<|im_start|>assistant\n"
            f'{{"tool": "calculator", "expression": "{expression}"}}<|im_end|>\n'
            f"<|im_start|>tool\n{a + b}<|im_end|>\n"
            f"<|im_start|>assistant\nThe answer is {a + b}.<|im_end|>",
            f"The answer is {a + b}. So {name} has {a + b} {item} in total.",
        ]
    return lines
