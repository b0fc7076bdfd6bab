"""The embedded default's policy server: OpenAI-compatible chat completions with token ids
and raw-model logprobs like vLLM, and vLLM's runtime LoRA API, on Starlette and uvicorn.

Production serves policies with vLLM; this server answers the same requests on a CPU,
so agents, the gateway and trainers run unchanged against either (docs/serving.md)::

    server = PolicyServer(base_model_dir())
    with serve_in_thread(server) as base_url:   # http://127.0.0.1:<port>/v1
        client = openai.OpenAI(base_url=base_url, api_key="unused")  # open on loopback

    keys = ServeSettings().load_api_keys()      # FULMEN_SERVE_API_KEYS / _API_KEY_FILE
    serve(server, host="0.0.0.0", port=8000, keys=keys)
"""

from fulmen.serving._app import create_app
from fulmen.serving._errors import (
    InvalidRequestError,
    ModelNotFoundError,
    PathNotAllowedError,
    ServingError,
)
from fulmen.serving._follow import AdapterFollower
from fulmen.serving._generation import FinishReason, Generation, TokenStep
from fulmen.serving._policy import PolicyServer
from fulmen.serving._run import serve, serve_in_thread
from fulmen.serving._sampling import SamplingParams, TokenLogprobs
from fulmen.serving._served_models import ModelInfo, ModelKind, Precision
from fulmen.serving._settings import DEFAULT_MODEL_ROOTS, ServeSettings

__all__ = [
    "DEFAULT_MODEL_ROOTS",
    "AdapterFollower",
    "FinishReason",
    "Generation",
    "InvalidRequestError",
    "ModelInfo",
    "ModelKind",
    "ModelNotFoundError",
    "PathNotAllowedError",
    "PolicyServer",
    "Precision",
    "SamplingParams",
    "ServeSettings",
    "ServingError",
    "TokenLogprobs",
    "TokenStep",
    "create_app",
    "serve",
    "serve_in_thread",
]
