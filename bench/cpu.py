"""CPU accounting around a measurement: what our server used, what wrk used, and what else ran.

The machine may be shared (tests, browsers): "foreign" CPU is the busy time of the whole machine
minus the workers' and wrk's own, as a share of all cores over the measurement. A high figure
means the req/s of that row were measured on a busy machine; the workers' CPU per request is
much less sensitive to that than req/s.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _machine_busy() -> float:
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / TICK


def process_cpu(pids: list[int]) -> dict[int, float]:
    found = {}
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()
        found[pid] = (int(fields[11]) + int(fields[12])) / TICK  # utime, stime
    return found


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuSnapshot:
    wall: float
    busy: float
    server: dict[int, float]
    children: float
    own: float

    @classmethod
    def take(cls, pids: list[int]) -> CpuSnapshot:
        return cls(
            time.monotonic(), _machine_busy(), process_cpu(pids), _children_cpu(), _own_cpu()
        )


def _delta(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(after[pid] - before.get(pid, 0.0) for pid in after)


def account(
    before: CpuSnapshot,
    pids: list[int],
    requests: int,
    database_before: dict[int, float] | None = None,
    database_pids: list[int] | None = None,
) -> dict[str, float]:
    """Shares of the machine over the measurement; `database_*` are the PostgreSQL backends
    and Redis serving the app, counted apart rather than as other processes."""
    after = CpuSnapshot.take(pids)
    wall = after.wall - before.wall
    server = _delta(before.server, after.server)
    database = _delta(database_before or {}, process_cpu(database_pids or []))
    client = after.children - before.children
    busy = after.busy - before.busy
    cores = os.cpu_count() or 1
    harness = after.own - before.own  # this process: the count folder thread
    foreign = max(0.0, busy - server - client - harness - database)
    return {
        "server_cpu_ms_per_req": round(1000 * server / requests, 3) if requests else 0.0,
        "server_cpu_pct": round(100 * server / (wall * cores), 1),
        "wrk_cpu_pct": round(100 * client / (wall * cores), 1),
        "database_cpu_ms_per_req": round(1000 * database / requests, 3) if requests else 0.0,
        "database_cpu_pct": round(100 * database / (wall * cores), 1),
        "foreign_cpu_pct": round(100 * foreign / (wall * cores), 1),
    }
