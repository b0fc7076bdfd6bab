"""Request validation and conversion (fulmen.serving._requests)."""

from __future__ import annotations

import json

import pytest

from fulmen.serving import InvalidRequestError, SamplingParams
from fulmen.serving._requests import ChatCompletionRequest, LoadLoraAdapterRequest, parse

USER = {"role": "user", "content": "What is 3+4?"}


def chat(**fields: object) -> ChatCompletionRequest:
    request = parse(ChatCompletionRequest, json.dumps({"model": "m", "messages": [USER], **fields}))
    request.check()
    return request


def refused(**fields: object) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as caught:
        chat(**fields)
    return caught.value


def test_defaults_are_openai_s() -> None:
    request = chat()
    assert request.sampling() == SamplingParams(max_tokens=None, temperature=1.0, top_p=1.0)
    assert request.stops == ()
    assert request.template_tools() is None


def test_sampling_fields() -> None:
    request = chat(
        max_tokens=5,
        max_completion_tokens=7,
        temperature=0,
        top_p=0.5,
        seed=3,
        stop="\n",
        logprobs=True,
        top_logprobs=2,
    )
    assert request.sampling() == SamplingParams(
        max_tokens=7, temperature=0.0, top_p=0.5, seed=3, top_logprobs=2
    )
    assert request.stops == ("\n",)
    assert chat(stop=["a", "b"]).stops == ("a", "b")
    assert chat(top_logprobs=0, logprobs=False).sampling().top_logprobs == 0


def test_messages_become_chat_template_messages() -> None:
    messages = [
        {
            "role": "developer",
            "content": [{"type": "text", "text": "Be "}, {"type": "text", "text": "brief."}],
        },
        USER,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "calc", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "content": "7", "tool_call_id": "c1"},
    ]
    request = chat(messages=messages)
    assert request.template_messages() == [
        {"role": "system", "content": "Be brief."},
        USER,
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "calc", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "content": "7", "tool_call_id": "c1"},
    ]


def test_tools_go_to_the_template_unless_tool_choice_is_none() -> None:
    tool = {"type": "function", "function": {"name": "calc", "parameters": {"type": "object"}}}
    assert chat(tools=[tool]).template_tools() == [tool]
    assert chat(tools=[tool], tool_choice="none").template_tools() is None


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"n": 2}, "n"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"frequency_penalty": 1}, "frequency_penalty"),
        ({"logit_bias": {"5": 10}}, "logit_bias"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"temperature": 3}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"stop": ["a", ""]}, "stop"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages.0.role"),
    ],
)
def test_refusals_name_the_parameter(fields: dict[str, object], param: str) -> None:
    assert refused(**fields).param == param


def test_image_content_is_refused() -> None:
    image = {"type": "image_url", "image_url": {"url": "http://x"}}
    error = refused(messages=[{"role": "user", "content": [image]}])
    assert error.param is not None
    assert error.param.startswith("messages.0.content")


def test_neutral_values_of_unsupported_fields_are_accepted() -> None:
    chat(n=1, presence_penalty=0, frequency_penalty=0.0, logit_bias={}, tool_choice="auto")
    chat(response_format={"type": "text"}, user="someone", store=False)  # unknown: ignored


def test_bodies_that_are_not_json_objects() -> None:
    with pytest.raises(InvalidRequestError, match="not valid JSON"):
        parse(ChatCompletionRequest, b"{")
    with pytest.raises(InvalidRequestError):
        parse(ChatCompletionRequest, b"[]")
    with pytest.raises(InvalidRequestError) as caught:
        parse(LoadLoraAdapterRequest, b'{"lora_name": "a"}')
    assert caught.value.param == "lora_path"
