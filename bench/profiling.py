"""py-spy profiles of the stack's processes, summarised by package and by our functions."""

from __future__ import annotations

import shutil
import signal
import sys
from pathlib import Path

from bench.report import RESULTS, log
from launcher.processes import ChildProcess


def start_profile(proc: ChildProcess, name: str, seconds: float) -> ChildProcess | None:
    """py-spy (if installed) on a child for `seconds` or until stopped (SIGINT, so it still
    writes its output); collapsed stacks in bench/results/."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        log("py-spy is not installed (pip install py-spy); not profiling")
        return None
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.collapsed.txt"
    return ChildProcess(f"py-spy-{name}", [spy, "record", "--pid", str(proc.pid), "--format", "raw",
                                           "--rate", "200", "--duration", str(int(seconds)),
                                           "--nonblocking", "--output", str(out)],
                        RESULTS / f"{name}.py-spy.log", stop_signal=signal.SIGINT)


OUR_PACKAGES = ("api", "core", "activities", "workflows", "launcher", "worker.py", "bench")
# Innermost frames that mean "waiting", not working (py-spy's idle detection misses these).
IDLE_LEAVES = ("Condition.wait", "Queue.get", "Runner.run", "BaseSelector.select", "select",
               "Event.wait", "_worker")


def _package(path: str) -> str:
    """py-spy's short path as a package: `sqlalchemy`, `temporalio`, `stdlib:asyncio`, ours."""
    top = path.split("/", 1)[0]
    if top in OUR_PACKAGES:
        return path
    if "/" not in path or top in ("asyncio", "concurrent", "json", "importlib", "email"):
        return "stdlib:" + top.removesuffix(".py")
    return top


def profile_summary(collapsed: Path, limit: int = 12) -> dict[str, list[tuple[str, float]]]:
    """From py-spy's raw output: % of working samples (idle waits dropped) by the package of
    the innermost frame (self time), and by our own functions anywhere on the stack."""
    if not collapsed.exists():
        return {}
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    samples = idle = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = [f for f in stack.split(";") if f.endswith(")") and " (" in f]
        if not frames or frames[-1].split(" (")[0] in IDLE_LEAVES:
            idle += n
            continue
        samples += n
        leaf = _package(frames[-1].rsplit(" (", 1)[1].rsplit(":", 1)[0])
        own[leaf] = own.get(leaf, 0) + n
        seen = set()
        for frame in frames:
            function, _, where = frame.rpartition(" (")
            path = where.rsplit(":", 1)[0]
            if path.split("/", 1)[0] in OUR_PACKAGES and function != "<module>":
                key = f"{path}:{function}"
                if key not in seen:
                    seen.add(key)
                    inclusive[key] = inclusive.get(key, 0) + n
            elif function in ("SandboxedWorkflowRunner.create_instance",
                              "_Instance._run_code"):
                key = f"temporalio sandbox: {function}"
                if key not in seen:
                    seen.add(key)
                    inclusive[key] = inclusive.get(key, 0) + n

    def ranked(totals: dict[str, int]) -> list[tuple[str, float]]:
        best = sorted(totals.items(), key=lambda kv: -kv[1])[:limit]
        return [(name, round(100 * n / samples, 1)) for name, n in best]

    return {"samples": [("working samples", float(samples)), ("idle samples", float(idle))],
            "self_by_package": ranked(own),
            "inclusive_our_functions": ranked(inclusive)} if samples else {}


def print_profile(title: str, summary: dict[str, list[tuple[str, float]]]) -> None:
    if not summary:
        return
    print(f"\n  profile of {title} ({summary['samples'][0][1]:.0f} non-idle thread samples at "
          "200 Hz)")
    print("    self time by package:          " + ", ".join(
        f"{name} {pct}%" for name, pct in summary["self_by_package"]))
    print("    inclusive, our functions:")
    for name, pct in summary["inclusive_our_functions"]:
        print(f"      {pct:5.1f}%  {name}")
