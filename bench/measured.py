"""Run a command and measure it alone: its wall time, CPU and peak memory.

The kernel counts into a child's peak RSS (ru_maxrss) the memory of the process that forked it,
as it stood when the child was forked: a command started by the harness, which by then holds
a million seeded tokens and more, seemed 20 to 50 MB larger than it was. Here a small Python
starter, a few MB, starts the command and reports what the kernel says of it alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# Runs with -I -S: no site packages, nothing from the environment, about 8 MB.
_STARTER = """
import json, os, sys, time
report_fd, command = int(sys.argv[1]), sys.argv[2:]
os.set_inheritable(report_fd, False)
started = time.perf_counter()
pid = os.posix_spawn(command[0], command, os.environ)
_, status, usage = os.wait4(pid, 0)
report = {
    "returncode": os.waitstatus_to_exitcode(status),
    "seconds": time.perf_counter() - started,
    "peak_rss_kb": usage.ru_maxrss,
    "cpu_s": usage.ru_utime + usage.ru_stime,
}
os.write(report_fd, json.dumps(report).encode())
"""


@dataclass(frozen=True)
class Measured:
    returncode: int
    seconds: float
    peak_rss_mb: float
    cpu_s: float
    stdout: str
    stderr: str


def run(command: list[str], *, cwd: Path, env: dict[str, str]) -> Measured:
    """Run `command` (its first item a path) to the end; stdout and stderr are captured."""
    report_read, report_write = os.pipe()
    try:
        process = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _STARTER, str(report_write), *command],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(report_write,),
        )
    finally:
        os.close(report_write)
    with os.fdopen(report_read, "rb") as reports:
        out, err = process.communicate()
        text = reports.read()
    if process.returncode != 0 or not text:
        raise RuntimeError(f"could not start {command[0]}: {err.decode(errors='replace')}")
    report = json.loads(text)
    return Measured(
        returncode=report["returncode"],
        seconds=report["seconds"],
        peak_rss_mb=report["peak_rss_kb"] / 1024,
        cpu_s=report["cpu_s"],
        stdout=out.decode(errors="replace"),
        stderr=err.decode(errors="replace"),
    )
