"""Model directories: the tiny test model, loading with adapters, and SmolLM2 from its GGUF.

`test_smollm2_*` use the real cache (~/.cache/fulmen/models, or $FULMEN_MODEL_CACHE): the
first run in a fresh cache converts the GGUF (about a minute, two or more on a busy machine);
later runs load the cached directory in seconds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from fulmen.models import ModelsError, base_model_dir, load_policy, tiny_model_dir
from fulmen.serving import PolicyServer, serve_in_thread


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 shared cores: extra threads only contend
    yield
    torch.set_num_threads(threads)


def test_tiny_models_are_deterministic_per_seed(tmp_path: Path) -> None:
    first = tiny_model_dir(tmp_path / "a")
    again = tiny_model_dir(tmp_path / "b")
    other = tiny_model_dir(tmp_path / "c", seed=1)
    names = {p.name for p in first.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "generation_config.json"} <= names
    for name in names:
        assert (first / name).read_bytes() == (again / name).read_bytes(), name
    assert (other / "model.safetensors").read_bytes() != (first / "model.safetensors").read_bytes()
    assert (other / "tokenizer.json").read_bytes() == (first / "tokenizer.json").read_bytes()


def test_the_tiny_model_loads_with_the_auto_classes(tmp_path: Path) -> None:
    directory = tiny_model_dir(tmp_path / "tiny")
    model = AutoModelForCausalLM.from_pretrained(directory)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    assert model.config.model_type == "llama"
    assert model.config.hidden_size == 64
    assert model.config.num_hidden_layers == 2
    assert 800 <= len(tokenizer) <= 2048
    assert model.config.vocab_size == len(tokenizer)
    assert (tokenizer.eos_token, tokenizer.pad_token) == ("<|im_end|>", "<|im_end|>")
    assert tokenizer.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"]) == [1, 2]
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id == 2
    call = '{"tool": "calculator", "expression": "3+4"}'
    assert tokenizer.decode(tokenizer(call)["input_ids"]) == call
    assert len(tokenizer(call)["input_ids"]) < len(call) / 2  # BPE merged the JSON and words
    assert tokenizer.tokenize("123") == ["1", "2", "3"]  # digits split, like SmolLM2


def test_the_tiny_chat_template_is_chatml(tmp_path: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir(tmp_path / "tiny"))
    messages = [{"role": "user", "content": "What is 3+4?"}]
    assert tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False) == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nWhat is 3+4?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    tool = {"type": "function", "function": {"name": "calculator"}}
    with_tools = tokenizer.apply_chat_template(
        [{"role": "system", "content": "Be brief."}, *messages], tools=[tool], tokenize=False
    )
    assert with_tools.startswith(
        "<|im_start|>system\nBe brief.\n\nTools:\n"
        '{"type": "function", "function": {"name": "calculator"}}<|im_end|>\n'
    )


def test_load_policy_merges_an_adapter(tmp_path: Path) -> None:
    directory = tiny_model_dir(tmp_path / "tiny")
    model, tokenizer = load_policy(directory)
    assert not model.training
    assert model.dtype == torch.float32
    config = LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        peft_model = get_peft_model(model, config)
    peft_model.save_pretrained(tmp_path / "adapter")
    merged, _ = load_policy(directory, adapter=tmp_path / "adapter")
    assert not isinstance(merged, PeftModel)
    ids = torch.tensor([tokenizer("Tom has 3 apples.")["input_ids"]])
    with torch.inference_mode():
        expected = peft_model(ids).logits
        plain = load_policy(directory)[0](ids).logits
        assert torch.allclose(merged(ids).logits, expected, atol=1e-5)
        assert not torch.allclose(plain, expected, atol=1e-3)


def test_load_policy_refuses_what_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(ModelsError, match="not a model directory"):
        load_policy(tmp_path)
    directory = tiny_model_dir(tmp_path / "tiny")
    with pytest.raises(ModelsError, match="not a PEFT adapter"):
        load_policy(directory, adapter=tmp_path)


@pytest.mark.slow
def test_smollm2_is_a_plain_hugging_face_directory() -> None:
    directory = base_model_dir()
    assert directory.name == "smollm2-135m-instruct"
    assert base_model_dir() == directory
    config = json.loads((directory / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["dtype"] == "float32"
    assert json.loads((directory / "fulmen-build.json").read_text())["source"].endswith(".gguf")
    model, tokenizer = load_policy(directory)
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert (tokenizer.eos_token, tokenizer.pad_token) == ("<|im_end|>", "<|im_end|>")
    assert model.generation_config.eos_token_id == 2
    text = "The answer is 42. Done."
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text  # no clean-up of spaces


@pytest.mark.slow
def test_smollm2_answers_through_the_policy_server() -> None:
    server = PolicyServer(base_model_dir())
    with serve_in_thread(server) as url:
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
        response = client.chat.completions.create(
            model="smollm2-135m-instruct",
            messages=[{"role": "user", "content": "What is the capital of France?"}],
            max_tokens=32,
            temperature=0,
            logprobs=True,
            extra_body={"return_token_ids": True},
        )
    choice = response.choices[0]
    assert choice.message.content is not None
    assert "Paris" in choice.message.content
    assert choice.finish_reason == "stop"
    token_ids: list[int] = choice.token_ids
    assert token_ids[-1] == 2  # <|im_end|> ends the turn, is in token_ids, not in the text
    assert "<|im_end|>" not in choice.message.content
    assert choice.logprobs is not None
    assert choice.logprobs.content is not None
    assert choice.logprobs.content[-1].token == "<|im_end|>"
    assert len(choice.logprobs.content) == len(token_ids)
