"""The models a policy server serves, and token-by-token generation on them.

:class:`PolicyServer` holds one base model and, by name, LoRA adapters on it and models of
full weights (full fine-tunes), loaded and unloaded while requests run:

* Every forward pass, and every change to the base model's modules (an adapter injected or
  deleted, the active adapter switched), happens under one lock, one decoding step at a
  time. Concurrent requests interleave step by step, each with its own KV cache, so a long
  stream does not hold up a short request and an adapter loads between two steps.
* A request holds a lease on its model from :meth:`PolicyServer.start` until its
  :class:`Generation` is closed. :meth:`PolicyServer.unload` removes the name at once (new
  requests get :class:`ModelNotFoundError`); the weights go when the last lease is released,
  so in-flight requests finish on the model they started with. Reusing a name right away is
  allowed: the new model is a different one internally.
* Forward passes run under bf16 autocast where the CPU multiplies bf16 natively (AMX or
  AVX512-BF16), else in fp32 (on AVX2-only CPUs bf16 matmuls are ~50x slower). Reported
  logprobs are always computed in fp32 (:mod:`fulmen.serving._sampling`).
"""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Literal, assert_never

from fulmen.serving._errors import InvalidRequestError, ModelNotFoundError, PathNotAllowedError
from fulmen.serving._generation import Generation
from fulmen.serving._sampling import SamplingParams
from fulmen.serving._served_models import (
    ModelInfo,
    ModelKind,
    Precision,
    Variant,
    context_length,
    eos_token_ids,
    resolve_precision,
)
from fulmen.serving._settings import DEFAULT_MODEL_ROOTS

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    import torch
    from peft import PeftModel
    from transformers import Cache

__all__ = ["PolicyServer"]

_UNKNOWN = "<unknown>"  # the adapter layers' state must be set before the next forward pass


class PolicyServer:
    """A base model (a Hugging Face directory) and the adapters and versions loaded on it.

    ``name`` is the base model's request name (default: the directory's name). Adapters and
    full-weight models load only from within ``model_roots`` (default: the trainers'
    ``.fulmen/artifacts``, relative to the working directory), symlinks and ``..`` resolved
    when a load is asked for. See the module docstring for the concurrency contract;
    :func:`fulmen.serving.create_app` puts an OpenAI-compatible HTTP API in front of it.
    """

    def __init__(
        self,
        model: Path,
        *,
        name: str | None = None,
        precision: Precision = "auto",
        model_roots: Sequence[Path] = DEFAULT_MODEL_ROOTS,
    ) -> None:
        from fulmen.models import load_policy

        base, tokenizer = load_policy(model)
        self.name = name or model.name
        self.model_roots = [root.absolute() for root in model_roots]
        self.precision: Literal["float32", "bfloat16"] = resolve_precision(precision)
        self._base = base
        self._peft: PeftModel | None = None
        self._active_adapter: str | None = None  # None: the adapter layers are off
        self._step_lock = threading.Lock()  # forward passes and the base model's modules
        self._registry_lock = threading.Lock()  # _variants, _loading, leases
        self._encode_lock = threading.Lock()  # fast tokenizers are not safe to encode concurrently
        self._adapter_ids = itertools.count()
        info = ModelInfo(self.name, "base", model, None, context_length(base), int(time.time()))
        self._variants = {
            self.name: Variant(info, base, tokenizer, None, eos_token_ids(base, tokenizer))
        }
        self._loading: set[str] = set()

    # -- the registry -----------------------------------------------------------------------

    def models(self) -> list[ModelInfo]:
        """The servable models, the base model first, then in load order."""
        with self._registry_lock:
            return [variant.info for variant in self._variants.values()]

    def load_adapter(self, name: str, path: Path) -> ModelInfo:
        """Load the PEFT LoRA adapter at ``path`` onto the base model, servable as ``name``.

        Raises:
            PathNotAllowedError: ``path`` is outside the model roots.
            InvalidRequestError: the name is taken, or ``path`` is not an adapter for this
                base model.
        """
        path = self._within_roots(path, "lora_path")
        if not (path / "adapter_config.json").is_file():
            raise InvalidRequestError(f"{path} is not a PEFT adapter (no adapter_config.json)")
        self._reserve(name)
        try:
            adapter_id = f"fulmen_{next(self._adapter_ids)}"
            with self._step_lock:
                self._inject(adapter_id, path)
            base = self._variants[self.name]
            length = base.info.max_model_len
            info = ModelInfo(name, "adapter", path, self.name, length, int(time.time()))
            variant = Variant(info, self._base, base.tokenizer, adapter_id, base.eos_token_ids)
        finally:
            self._release_reservation(name)
        self._register(variant)
        return info

    def load_weights(self, name: str, path: Path) -> ModelInfo:
        """Load the full model at ``path`` (a fine-tune of the base) servable as ``name``. Its
        own tokenizer is used when the directory has one, else the base model's.

        Raises:
            PathNotAllowedError: ``path`` is outside the model roots.
            InvalidRequestError: the name is taken, or ``path`` holds no loadable model.
        """
        from fulmen.models import ModelsError, load_policy

        path = self._within_roots(path, "model_path")
        self._reserve(name)
        try:
            try:
                model, tokenizer = load_policy(path)
            except (ModelsError, OSError, ValueError) as exc:
                raise InvalidRequestError(f"cannot load a model from {path}: {exc}") from exc
            if not (path / "tokenizer_config.json").is_file():
                tokenizer = self._variants[self.name].tokenizer
            length = context_length(model)
            info = ModelInfo(name, "weights", path, None, length, int(time.time()))
            variant = Variant(info, model, tokenizer, None, eos_token_ids(model, tokenizer))
        finally:
            self._release_reservation(name)
        self._register(variant)
        return info

    def unload(self, name: str, *, kind: ModelKind | None = None) -> None:
        """Stop serving ``name``; in-flight requests on it finish first (see module docstring).

        ``kind``, when given, must match (the HTTP API unloads adapters and full-weight
        models through separate endpoints).

        Raises:
            ModelNotFoundError: no such model (of that kind) is loaded.
            InvalidRequestError: ``name`` is the base model.
        """
        with self._registry_lock:
            variant = self._variants.get(name)
            if variant is not None and variant.info.kind == "base":
                raise InvalidRequestError(f"the base model `{name}` cannot be unloaded")
            if variant is None or (kind is not None and variant.info.kind != kind):
                raise ModelNotFoundError(name, what="adapter" if kind == "adapter" else "model")
            del self._variants[name]
            variant.retired = True
            idle = variant.leases == 0
        if idle:
            self._free(variant)

    def _within_roots(self, path: Path, param: str) -> Path:
        """``path`` resolved (symlinks, ``..``), when it is within a model root."""
        resolved = path.resolve()
        if any(resolved.is_relative_to(root.resolve()) for root in self.model_roots):
            return resolved
        raise PathNotAllowedError(str(path), self.model_roots, param=param)

    def _reserve(self, name: str) -> None:
        if not name or name != name.strip():
            raise InvalidRequestError(f"invalid model name {name!r}", param="name")
        with self._registry_lock:
            if name in self._variants or name in self._loading:
                raise InvalidRequestError(f"a model named `{name}` is already loaded")
            self._loading.add(name)

    def _release_reservation(self, name: str) -> None:
        with self._registry_lock:
            self._loading.discard(name)

    def _register(self, variant: Variant) -> None:
        with self._registry_lock:
            self._variants[variant.info.name] = variant

    def _inject(self, adapter_id: str, path: Path) -> None:
        """Add an adapter's layers to the base model (step lock held)."""
        from peft import PeftModel

        try:
            if self._peft is None:
                self._peft = PeftModel.from_pretrained(
                    self._base, path, adapter_name=adapter_id, is_trainable=False
                )
            else:
                self._peft.load_adapter(path, adapter_name=adapter_id, is_trainable=False)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise InvalidRequestError(f"cannot load the adapter at {path}: {exc}") from exc
        finally:
            self._active_adapter = _UNKNOWN

    def _free(self, variant: Variant) -> None:
        match variant.info.kind:
            case "adapter":
                assert self._peft is not None
                assert variant.adapter_id is not None
                with self._step_lock:
                    remaining = [a for a in self._peft.peft_config if a != variant.adapter_id]
                    if remaining and self._peft.active_adapter == variant.adapter_id:
                        # Else peft warns that it picks another active adapter itself.
                        self._peft.set_adapter(remaining[0], inference_mode=True)
                    self._peft.delete_adapter(variant.adapter_id)
                    self._active_adapter = _UNKNOWN
            case "weights":
                pass  # the model goes with the last reference to the variant
            case "base":
                raise AssertionError("the base model is never freed")
            case _:
                assert_never(variant.info.kind)

    # -- generation -------------------------------------------------------------------------

    def start(
        self,
        model: str,
        messages: Sequence[Mapping[str, object]],
        params: SamplingParams,
        *,
        tools: Sequence[Mapping[str, object]] | None = None,
    ) -> Generation:
        """Render ``messages`` (and ``tools``, for templates that use them) with ``model``'s
        chat template and start generating; the caller iterates and closes the result.

        ``params.max_tokens`` ``None`` means up to the model's context length.

        Raises:
            ModelNotFoundError: ``model`` is not loaded.
            InvalidRequestError: the template rejects the messages, or prompt plus
                ``max_tokens`` exceed the context length.
        """
        return self._start(model, params, lambda v: self._encode(v, messages, tools), "messages")

    def start_text(self, model: str, prompt: str, params: SamplingParams) -> Generation:
        """Start generating after ``prompt`` as it is (a text completion: no chat template;
        the tokenizer's special tokens, a BOS say, are added as vLLM does); as :meth:`start`
        otherwise, its errors included."""
        return self._start(model, params, lambda v: self._encode_text(v, prompt), "prompt")

    def _start(
        self,
        model: str,
        params: SamplingParams,
        encode: Callable[[Variant], list[int]],
        what: Literal["messages", "prompt"],
    ) -> Generation:
        variant = self._lease(model)
        try:
            prompt = encode(variant)
            limit = variant.info.max_model_len
            room = limit - len(prompt)
            wanted = params.max_tokens if params.max_tokens is not None else room
            if room <= 0 or wanted > room:
                raise InvalidRequestError(
                    f"This model's maximum context length is {limit} tokens. However, you "
                    f"requested {len(prompt) + max(wanted, 1)} tokens ({len(prompt)} in the "
                    f"{what}, {max(wanted, 1)} in the completion). Please reduce the length "
                    f"of the {what} or completion.",
                    param="max_tokens" if room > 0 else what,
                )
        except BaseException:
            self._release(variant)
            raise
        return Generation(self, variant, prompt, params, wanted)

    def _lease(self, name: str) -> Variant:
        with self._registry_lock:
            variant = self._variants.get(name)
            if variant is None:
                raise ModelNotFoundError(name)
            variant.leases += 1
            return variant

    def _release(self, variant: Variant) -> None:
        with self._registry_lock:
            variant.leases -= 1
            idle = variant.retired and variant.leases == 0
        if idle:
            self._free(variant)

    def _encode(
        self,
        variant: Variant,
        messages: Sequence[Mapping[str, object]],
        tools: Sequence[Mapping[str, object]] | None,
    ) -> list[int]:
        from jinja2 import TemplateError

        tokenizer = variant.tokenizer
        with self._encode_lock:
            try:
                text = tokenizer.apply_chat_template(
                    # Annotated as dict[str, str]; templates take any JSON (tool_calls).
                    [dict(m) for m in messages],  # type: ignore[arg-type]
                    tools=[dict(t) for t in tools] if tools else None,
                    add_generation_prompt=True,
                    tokenize=False,
                )
            except (TemplateError, TypeError, KeyError, ValueError) as exc:
                raise InvalidRequestError(f"the chat template rejects the messages: {exc}") from exc
            assert isinstance(text, str)
            ids: list[int] = tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids

    def _encode_text(self, variant: Variant, prompt: str) -> list[int]:
        with self._encode_lock:
            ids: list[int] = variant.tokenizer(prompt)["input_ids"]
        return ids

    def _forward(
        self, variant: Variant, input_ids: list[int], cache: Cache | None
    ) -> tuple[torch.Tensor, Cache]:
        """One decoding step: the logits after ``input_ids`` (shape ``[vocab]``) and the cache."""
        import torch

        tokens = torch.tensor([input_ids])  # [1, new tokens]
        with self._step_lock:
            self._activate(variant)
            with (
                torch.inference_mode(),
                torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.precision == "bfloat16"),
            ):
                output = variant.model(
                    input_ids=tokens, past_key_values=cache, use_cache=True, logits_to_keep=1
                )
        assert output.logits is not None
        assert output.past_key_values is not None
        return output.logits[0, -1], output.past_key_values  # [vocab]

    def _activate(self, variant: Variant) -> None:
        """Switch the base model's adapter layers to ``variant``'s adapter (step lock held)."""
        if self._peft is None or variant.model is not self._base:
            return
        if variant.adapter_id == self._active_adapter:
            return
        from peft.tuners.tuners_utils import BaseTuner

        tuner = self._peft.base_model  # the LoraModel; PeftModel annotates it as a bare Module
        assert isinstance(tuner, BaseTuner)
        if variant.adapter_id is None:
            tuner.disable_adapter_layers()
        else:
            tuner.enable_adapter_layers()
            self._peft.set_adapter(variant.adapter_id, inference_mode=True)
        self._active_adapter = variant.adapter_id
