"""Benchmark: latency and memory of ``shopaug serve`` under an open-loop load.

Targets (issue 7): /recommend p99 < 50 ms at 200 req/s, /search p99 < 100 ms at
100 req/s, zero errors, memory flat over a 5-minute soak.

The server runs in its own process (uvicorn, one worker, asyncio loop) on 127.0.0.1.
Requests are sent on a fixed schedule whatever the server's pace (open loop), and each
latency is counted from the moment the request was due, so a stalled server cannot hide
its queue. The baseline is /health at the same rate, measured in the same run: the ratio
says what the model work costs over the HTTP stack itself. Server RSS is sampled every
2 s (psutil).

    python bench/serve_load.py [--run-dir RUN] [--duration 30] [--soak 300]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

HOST = "127.0.0.1"  # the only address this script ever talks to


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _start_server(run_dir: Path, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "shopaug", "serve", str(run_dir), "--host", HOST,
           "--port", str(port), "--llm", "engine=fake"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"http://{HOST}:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not answer /health within 60 s")


def _targets(run_dir: Path, seed: int = 0) -> dict[str, list[str]]:
    """Request paths per route: known users plus 10% unknown ones, and 1-3 word
    queries taken from catalog titles."""
    import pandas as pd

    serving = run_dir / "serving"
    rng = random.Random(seed)
    users = pd.read_parquet(serving / "history.parquet")["user_id"].astype(str).unique()
    titles = pd.read_parquet(serving / "items.parquet")["title"].astype(str).tolist()
    recs = [f"/recommend/{u}?k=10" for u in users]
    recs += [f"/recommend/new-{i}?k=10" for i in range(len(users) // 10)]
    queries = []
    for _ in range(2000):
        words = rng.choice(titles).lower().split()
        n = min(len(words), rng.randint(1, 3))
        start = rng.randint(0, len(words) - n)
        queries.append("/search?k=10&q=" + quote(" ".join(words[start:start + n])))
    rng.shuffle(recs)
    return {"/health": ["/health"], "/recommend": recs, "/search": queries}


async def _phase(client, paths: list[str], rate: float, seconds: float) -> dict:
    """Send ``rate`` req/s for ``seconds``, open loop; latency from each due time, kept
    per route (first path segment) so a mixed soak still reports each route."""
    per_route: dict[str, dict] = {}
    lags: list[float] = []
    total = int(rate * seconds)
    start = time.perf_counter() + 0.05

    async def one(path: str, due: float) -> None:
        lags.append(time.perf_counter() - due)
        stats = per_route.setdefault("/" + path.split("?")[0].split("/")[1],
                                     {"latencies": [], "errors": {}})
        try:
            r = await client.get(path)
            error = None if r.status_code == 200 else str(r.status_code)
        except Exception as exc:  # timeouts, refused connections: all count as errors
            error = type(exc).__name__
        if error:
            stats["errors"][error] = stats["errors"].get(error, 0) + 1
        stats["latencies"].append(time.perf_counter() - due)

    tasks = []
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(paths[i % len(paths)], due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    return {"rate": rate, "requests": total, "achieved_rate": total / elapsed,
            "routes": per_route, "client_lag_p99_ms": _pct(lags, 99) * 1000}


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def _sample_rss(pid: int, out: list[tuple[float, float]], stop: asyncio.Event) -> None:
    import psutil

    proc = psutil.Process(pid)
    t0 = time.perf_counter()
    while not stop.is_set():
        out.append((time.perf_counter() - t0, proc.memory_info().rss / 2**20))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=2.0)


def _slope(samples: list[tuple[float, float]]) -> float:
    """Least-squares RSS growth in MB per minute."""
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mt = sum(t for t, _ in samples) / n
    mr = sum(r for _, r in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    return 60 * sum((t - mt) * (r - mr) for t, r in samples) / var if var else 0.0


async def _run(port: int, pid: int, plan: list[tuple[str, list[str], float, float]]) -> dict:
    import httpx

    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    samples: list[tuple[float, float]] = []
    stop = asyncio.Event()
    results = {}
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", limits=limits,
                                 timeout=10.0) as client:
        sampler = asyncio.create_task(_sample_rss(pid, samples, stop))
        for _ in range(3):  # connections up, every user's list computed once
            await asyncio.gather(*(client.get(p) for p in plan[1][1][:400]))
        for name, paths, rate, seconds in plan:
            results[name] = await _phase(client, paths, rate, seconds)
        stop.set()
        await sampler
    return {"phases": results, "rss": samples}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run-dir", type=Path, help="a run with serving/ (default: build the "
                    "demo run, ~10 s)")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds per route")
    ap.add_argument("--rec-rate", type=float, default=200.0)
    ap.add_argument("--search-rate", type=float, default=100.0)
    ap.add_argument("--soak", type=float, help="seconds of mixed /recommend + /search "
                    "load at both rates together (e.g. 300), instead of separate phases")
    args = ap.parse_args()
    tmp = None
    run_dir = args.run_dir
    if run_dir is None:
        from shopaug.serve.sample import demo_run

        tmp = tempfile.TemporaryDirectory(prefix="serve-load-")
        run_dir = demo_run(Path(tmp.name) / "runs", report=False)
    targets = _targets(run_dir)
    port = _free_port()
    server = _start_server(run_dir, port)
    try:
        base_seconds = min(args.duration, 10.0)
        plan = [("/health", targets["/health"], args.rec_rate, base_seconds)]
        if args.soak:
            recs, searches = targets["/recommend"], targets["/search"]
            # two /recommend per /search: both target rates at once
            mixed = [p for i in range(len(searches)) for p in (
                recs[2 * i % len(recs)], recs[(2 * i + 1) % len(recs)], searches[i])]
            plan.append(("soak /recommend+/search", mixed, args.rec_rate + args.search_rate,
                         args.soak))
        else:
            plan += [("/recommend", targets["/recommend"], args.rec_rate, args.duration),
                     ("/search", targets["/search"], args.search_rate, args.duration)]
        out = asyncio.run(_run(port, server.pid, plan))
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        if tmp is not None:
            tmp.cleanup()
    base_p99 = _pct(out["phases"]["/health"]["routes"]["/health"]["latencies"], 99)
    print(f"server: uvicorn, 1 worker, asyncio loop, {HOST}:{port}; run {run_dir.name}")
    print(f"{'phase':<26}{'route':<12}{'rate':>6}{'achieved':>10}{'p50 ms':>9}{'p95 ms':>9}"
          f"{'p99 ms':>9}{'errors':>8}{'p99/health':>12}{'client lag p99 ms':>19}")
    summary = {}
    for name, phase in out["phases"].items():
        for route, r in sorted(phase["routes"].items()):
            p50, p95, p99 = (_pct(r["latencies"], q) * 1000 for q in (50, 95, 99))
            nerr = sum(r["errors"].values())
            print(f"{name:<26}{route:<12}{phase['rate']:>6.0f}{phase['achieved_rate']:>10.1f}"
                  f"{p50:>9.2f}{p95:>9.2f}{p99:>9.2f}{nerr:>8}"
                  f"{p99 / (base_p99 * 1000):>12.2f}{phase['client_lag_p99_ms']:>19.2f}")
            summary[f"{name} {route}"] = {
                "p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "errors": r["errors"],
                "requests": len(r["latencies"]), "achieved_rate": phase["achieved_rate"]}
    rss = out["rss"]
    mbs = [r for _, r in rss]
    print(f"server RSS (MB), {len(rss)} samples every 2 s: start {mbs[0]:.1f}, end "
          f"{mbs[-1]:.1f}, max {max(mbs):.1f}, slope {_slope(rss):+.2f} MB/min")
    print(json.dumps({"phases": summary, "rss_mb": {"start": mbs[0], "end": mbs[-1],
                                                    "max": max(mbs),
                                                    "slope_mb_per_min": _slope(rss)}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
