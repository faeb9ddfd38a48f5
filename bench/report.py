"""Numbers and reports: percentiles, the table every benchmark prints, its JSON record."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary_ms(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {"n": len(ms), "p50": round(percentile(ms, 50), 1), "p95": round(percentile(ms, 95), 1),
            "mean": round(statistics.fmean(ms), 1) if ms else float("nan"),
            "min": round(min(ms), 1) if ms else float("nan"),
            "max": round(max(ms), 1) if ms else float("nan")}


@dataclass
class Row:
    metric: str
    result: float
    unit: str
    target: str = ""  # e.g. "<= 120"
    compared_to: str = ""
    ok: bool | None = None

    def shown(self) -> str:
        value = f"{self.result:,.2f}" if abs(self.result) < 10 else f"{self.result:,.0f}"
        return f"{value} {self.unit}".strip()


def cpu_probe_ms(iterations: int = 2_000_000) -> float:
    """Milliseconds for a fixed pure-Python loop, best of 3. The 2-core VMs these numbers
    come from change speed with their neighbours (a 10M-iteration loop took 0.9 to 1.8 s
    within minutes on 2026-11-26), so every report says how fast the machine was."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(iterations):
            total += i
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


@dataclass
class Report:
    name: str
    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    load_before: tuple[float, float, float] = field(default_factory=os.getloadavg)
    cpu_probe_before: float = field(default_factory=cpu_probe_ms)

    def add(self, metric: str, result: float, unit: str, target: str = "",
            compared_to: str = "") -> Row:
        ok = None
        if target:
            op, _, bound = target.partition(" ")
            limit = float(bound)
            ok = result <= limit if op == "<=" else result >= limit
        row = Row(metric, result, unit, target, compared_to, ok)
        self.rows.append(row)
        return row

    def finish(self) -> Path:
        cores = os.cpu_count() or 0
        cpu_probe_after = cpu_probe_ms()
        headers = ("metric", "result", "target", "met", "compared to")
        table = [(r.metric, r.shown(), f"{r.target} {r.unit}" if r.target else "",
                  "" if r.ok is None else ("yes" if r.ok else "NO"), r.compared_to)
                 for r in self.rows]
        widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(headers)]
        print()
        print(f"== {self.name}  ({cores} cores, load avg before {self.load_before[0]:.2f}, "
              f"after {os.getloadavg()[0]:.2f}; CPU probe {self.cpu_probe_before:.0f} ms "
              f"before, {cpu_probe_after:.0f} after: lower is a faster machine)")
        print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
        print("  ".join("-" * w for w in widths))
        for t in table:
            print("  ".join(c.ljust(w) for c, w in zip(t, widths, strict=True)))
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"{self.name}.json"
        payload = {
            "benchmark": self.name,
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started)),
            "duration_seconds": round(time.time() - self.started, 1),
            "machine": {"cores": cores, "platform": platform.platform(),
                        "python": platform.python_version(),
                        "load_avg_before": self.load_before, "load_avg_after": os.getloadavg(),
                        "cpu_probe_ms_before": self.cpu_probe_before,
                        "cpu_probe_ms_after": cpu_probe_after},
            "git": _git_rev(),
            "results": [r.__dict__ for r in self.rows],
            "details": self.details,
        }
        path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
        print(f"\nwrote {path.relative_to(ROOT)}")
        return path


def _git_rev() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True,
                               text=True, check=True).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
