"""Request metrics in the Prometheus text exposition format, written by hand (no client
library): request counts per route and status, a latency histogram per route, RSS."""

from __future__ import annotations

import bisect
import os
import threading
from collections import defaultdict

#: latency bucket upper bounds in seconds (the +Inf bucket is implied)
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Thread-safe counters; route labels are route templates (``/recommend/{user_id}``),
    never raw paths, so a scan of random URLs cannot grow the label set."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.buckets: dict[str, list[int]] = {}
        self.sums: dict[str, float] = defaultdict(float)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(route, method, status)] += 1
            counts = self.buckets.setdefault(route, [0] * (len(BUCKETS) + 1))
            counts[bisect.bisect_left(BUCKETS, seconds)] += 1
            self.sums[route] += seconds

    def render(self) -> str:
        with self._lock:
            requests = sorted(self.requests.items())
            buckets = {r: list(c) for r, c in sorted(self.buckets.items())}
            sums = dict(self.sums)
        out = ["# HELP shopaug_http_requests_total HTTP requests by route, method and status.",
               "# TYPE shopaug_http_requests_total counter"]
        out += [f'shopaug_http_requests_total{{route="{_label(r)}",method="{m}",'
                f'status="{s}"}} {n}' for (r, m, s), n in requests]
        out += ["# HELP shopaug_http_request_duration_seconds Request latency by route.",
                "# TYPE shopaug_http_request_duration_seconds histogram"]
        for route, counts in buckets.items():
            label = _label(route)
            total = 0
            for bound, n in zip((*BUCKETS, None), counts, strict=True):
                total += n
                le = "+Inf" if bound is None else repr(bound)
                out.append(f'shopaug_http_request_duration_seconds_bucket{{route="{label}",'
                           f'le="{le}"}} {total}')
            out.append(f'shopaug_http_request_duration_seconds_sum{{route="{label}"}} '
                       f"{sums[route]:.6f}")
            out.append(f'shopaug_http_request_duration_seconds_count{{route="{label}"}} {total}')
        out += ["# HELP process_resident_memory_bytes Resident memory size in bytes.",
                "# TYPE process_resident_memory_bytes gauge",
                f"process_resident_memory_bytes {rss_bytes()}"]
        return "\n".join(out) + "\n"
