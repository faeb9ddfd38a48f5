"""Retrieval quality: recall@1, recall@5 and MRR of full-text, vectors-only and hybrid search.

The labelled set is tests/retrieval_set/ (18 short documents, 33 queries: 14 sharing the
document's words, 19 paraphrased), scored by tests/retrieval_eval.py. The documents are
uploaded and ingested through the API of a real stack (bench/harness.py: API and worker
processes, ingestion workflows), then every query is searched in this process with
core.retrieval.search exactly as a run's file_search does (full-text: without an embedder;
hybrid: with it) and with the vector leg alone.

    python -m bench.retrieval_recall
        the fake LLM's `/v1/embeddings`: a hashed bag of words, so its "vectors" measure
        word overlap (no synonyms, no meaning); it checks the plumbing, not semantics
    EMBEDDINGS_URL=http://127.0.0.1:8089/v1 EMBEDDINGS_MODEL=all-MiniLM-L6-v2 \\
        python -m bench.retrieval_recall
        any OpenAI-compatible embeddings server (EMBEDDINGS_API_KEY is passed on)
    python -m bench.retrieval_recall --local-model /tmp/embed-venv/bin/python
        starts bench/local_embeddings_server.py (all-MiniLM-L6-v2 on the CPU) with that
        interpreter and uses it

Writes bench/results/retrieval_recall[-MODEL].json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
from contextlib import AsyncExitStack
from typing import Any

import httpx

from bench.harness import api_client, bench_stack
from bench.report import ROOT, Report, log
from core.db import create_engine, create_sessionmaker
from core.embeddings import Embedder
from launcher.processes import ChildProcess, free_port
from tests.retrieval_eval import MODES, documents, evaluate, queries

LOCAL_MODEL = "all-MiniLM-L6-v2"


async def ingest(http: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    """Upload the set, ingest it into one store; (store id, document name -> file id)."""
    file_ids = {}
    for name, data in documents().items():
        response = await http.post("/files", files={"file": (name, data)},
                                   data={"purpose": "assistants"})
        response.raise_for_status()
        file_ids[name] = response.json()["id"]
    response = await http.post("/vector_stores", json={"name": "retrieval recall",
                                                       "file_ids": list(file_ids.values())})
    response.raise_for_status()
    store = response.json()
    deadline = time.monotonic() + 300
    while store["file_counts"]["in_progress"] and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        store = (await http.get(f"/vector_stores/{store['id']}")).json()
    counts = store["file_counts"]
    if counts["completed"] != len(file_ids):
        raise RuntimeError(f"ingestion did not complete: {counts}")
    return store["id"], file_ids


def start_local_model(python: str, data_dir: Any) -> tuple[ChildProcess, str]:
    port = free_port()
    proc = ChildProcess("local-embeddings", [python, "-m", "bench.local_embeddings_server",
                                             "--port", str(port)],
                        data_dir / "local-embeddings.log", cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    proc.wait_until(lambda: httpx.get(f"{url}/health", timeout=2).status_code == 200, 180)
    return proc, f"{url}/v1"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--local-model", metavar="PYTHON",
                        help="start bench/local_embeddings_server.py with this interpreter")
    args = parser.parse_args()

    url = os.environ.get("EMBEDDINGS_URL") or "fake"
    model = os.environ.get("EMBEDDINGS_MODEL") or (
        "fake-embed" if url == "fake" else "text-embedding-3-small")
    async with AsyncExitStack() as cleanup:
        if args.local_model:
            import tempfile
            from pathlib import Path

            log(f"starting {LOCAL_MODEL} with {args.local_model} ...")
            proc, url = start_local_model(args.local_model, Path(tempfile.mkdtemp()))
            cleanup.callback(proc.stop)
            model = LOCAL_MODEL
        stack = await cleanup.enter_async_context(
            bench_stack(warmup_runs=1, embeddings_url=url, embeddings_model=model))
        assert stack.embeddings_url is not None
        fake = stack.embeddings_url == stack.llm_url
        label = "fake hashed bag-of-words (tests/fake_llm.py)" if fake else (
            f"{model} at {stack.embeddings_url}")
        async with api_client(stack) as http:
            started = time.monotonic()
            store_id, file_ids = await ingest(http)
            ingest_seconds = time.monotonic() - started
        log(f"ingested {len(file_ids)} documents in {ingest_seconds:.1f}s; embedder: {label}")

        embedder = Embedder(stack.embeddings_url, model,
                            os.environ.get("EMBEDDINGS_API_KEY") or None)
        engine = create_engine(stack.env["DATABASE_URL"], pool_size=2)
        cleanup.push_async_callback(engine.dispose)
        sessions = create_sessionmaker(engine)
        results = {}
        for mode in MODES:
            async with sessions() as session:
                started = time.monotonic()
                results[mode] = await evaluate(session, store_id, file_ids, mode, embedder)
                results[mode]["ms_per_query"] = round(
                    (time.monotonic() - started) * 1000 / len(queries()), 1)

    name = "retrieval_recall" + ("" if fake else "-" + re.sub(r"[^\w.-]+", "_", model))
    report = Report(name)
    for mode in MODES:
        r = results[mode]
        for metric in ("recall@1", "recall@5", "mrr"):
            report.add(f"{mode} {metric}", r[metric], "",
                       compared_to=(f"keyword {r['keyword'][metric]}, "
                                    f"paraphrase {r['paraphrase'][metric]}"))
    report.details = {"embedder": label, "embeddings_model": model, "fake_embedder": fake,
                      "documents": len(file_ids), "queries": len(queries()),
                      "ingest_seconds": round(ingest_seconds, 1), "modes": results}
    print_table(label, results)
    report.finish()


def print_table(label: str, results: dict[str, dict[str, Any]]) -> None:
    print(f"\nembedder: {label}; {results['hybrid']['n']} queries "
          f"({results['hybrid']['keyword']['n']} keyword, "
          f"{results['hybrid']['paraphrase']['n']} paraphrase)")
    head = ("mode", "R@1", "R@5", "MRR", "R@5 keyword", "R@5 paraphrase", "ms/query")
    print("  ".join(f"{h:>14}" for h in head))
    for mode, r in results.items():
        cells = (mode, r["recall@1"], r["recall@5"], r["mrr"], r["keyword"]["recall@5"],
                 r["paraphrase"]["recall@5"], r["ms_per_query"])
        print("  ".join(f"{c:>14}" for c in cells))
    for mode, r in results.items():
        missed = [f"{q['query']!r} (rank {q['rank']})" for q in r["queries"]
                  if q["rank"] is None or q["rank"] > 5]
        if missed:
            print(f"  {mode} missed at 5: " + "; ".join(missed))


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
