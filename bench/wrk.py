"""Run wrk with one of the Lua scripts in bench/lua/ and read back its BENCH_RESULT line."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LUA = Path(__file__).resolve().parent / "lua"
MARKER = "BENCH_RESULT "


@dataclass(frozen=True)
class WrkSettings:
    threads: int = 2
    connections: int = 32
    timeout: str = "5s"

    def describe(self) -> str:
        return (
            f"wrk -t{self.threads} -c{self.connections} --timeout {self.timeout} "
            "(closed loop, no rate limit)"
        )


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    return found


def version() -> str:
    result = subprocess.run([wrk_binary(), "-v"], capture_output=True, text=True, check=False)
    return (result.stdout or result.stderr).splitlines()[0].strip()


def run(
    url: str,
    script: str,
    seconds: float,
    settings: WrkSettings,
    args: list[str] | None = None,
    connections: int | None = None,
) -> dict[str, Any]:
    """Drive `url` for `seconds`; returns requests/s, latency percentiles (ms) and errors."""
    command = _command(url, script, seconds, settings, connections, args or [])
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    line = next(
        (row for row in completed.stdout.splitlines() if row.startswith(MARKER)),
        None,
    )
    if completed.returncode != 0 or line is None:
        raise RuntimeError(
            f"wrk failed ({completed.returncode}):\n{completed.stdout}\n{completed.stderr}"
        )
    raw = json.loads(line.removeprefix(MARKER))
    return summarise(raw)


def spawn(
    url: str, script: str, seconds: float, settings: WrkSettings, args: list[str]
) -> subprocess.Popen[str]:
    """Start wrk without waiting (the soak runs two at once and interrupts each when its
    script says every thread is done); read it back with collect()."""
    command = _command(url, script, seconds, settings, None, args)
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def _command(
    url: str,
    script: str,
    seconds: float,
    settings: WrkSettings,
    connections: int | None,
    args: list[str],
) -> list[str]:
    """wrk's command line; refuses any target but this machine."""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"refusing to send traffic anywhere but 127.0.0.1: {url}")
    command = [
        wrk_binary(),
        f"-t{settings.threads}",
        f"-c{connections or settings.connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        settings.timeout,
        "-s",
        str(LUA / script),
        url,
    ]
    return [*command, "--", *args] if args else command


def collect(process: subprocess.Popen[str], timeout: float = 60) -> dict[str, Any]:
    stdout, stderr = process.communicate(timeout=timeout)
    line = next((row for row in stdout.splitlines() if row.startswith(MARKER)), None)
    if line is None:
        raise RuntimeError(f"wrk failed ({process.returncode}):\n{stdout}\n{stderr}")
    return summarise(json.loads(line.removeprefix(MARKER)))


def summarise(raw: dict[str, Any]) -> dict[str, Any]:
    seconds = raw["duration_us"] / 1e6
    latency = raw["latency_us"]
    percentiles = latency["percentiles"]
    errors = raw["errors"]
    socket_errors = errors["connect"] + errors["read"] + errors["write"] + errors["timeout"]
    return {
        "requests": raw["requests"],
        "seconds": round(seconds, 3),
        "rps": round(raw["requests"] / seconds, 1) if seconds else 0.0,
        "p50_ms": round(percentiles["50"] / 1000, 2),
        "p90_ms": round(percentiles["90"] / 1000, 2),
        "p99_ms": round(percentiles["99"] / 1000, 2),
        "max_ms": round(latency["max"] / 1000, 2),
        "mean_ms": round(latency["mean"] / 1000, 2),
        "non_2xx_3xx": errors["status"],
        "socket_errors": socket_errors,
        "socket_error_detail": {
            key: errors[key] for key in ("connect", "read", "write", "timeout") if errors[key]
        },
        "statuses": raw["statuses"],
        "exhausted": raw["exhausted"],
        "bytes": raw["bytes"],
    }
