"""Optional: sample the gunicorn workers with py-spy while a scenario runs (--profile DIR).

Each worker's samples go to DIR/<backend>-<scenario>-<pid>.txt in py-spy's "raw" (collapsed
stack) format, which flamegraph.pl and speedscope read; summarise() turns them into the share
of samples spent in (inclusive) and directly on (self) each function, written beside them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def binary() -> str | None:
    """py-spy on PATH, or beside this Python (pip install py-spy into the venv)."""
    beside = Path(sys.executable).with_name("py-spy")
    return shutil.which("py-spy") or (str(beside) if beside.exists() else None)


def available() -> bool:
    return binary() is not None


def record(output: Path, *target: str) -> list[str]:
    """py-spy record at 250 Hz into `output` (collapsed stacks); `target` says what to sample:
    "--pid", PID, ... or "--", a command and its arguments."""
    sampling = ["--rate", "250", "--format", "raw", "--output", str(output)]
    return [binary() or "py-spy", "record", *sampling, *target]


class Sampler:
    """py-spy record attached to each worker PID for `seconds`."""

    def __init__(self, directory: Path, label: str, pids: list[int], seconds: float) -> None:
        self.outputs: list[Path] = []
        self.processes: list[subprocess.Popen[bytes]] = []
        directory.mkdir(parents=True, exist_ok=True)
        for pid in pids:
            output = directory / f"{label}-{pid}.txt"
            self.outputs.append(output)
            duration = str(max(1, round(seconds)))
            command = record(output, "--pid", str(pid), "--duration", duration, "--nonblocking")
            self.processes.append(
                subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )

    def wait(self) -> list[Path]:
        for process in self.processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return [path for path in self.outputs if path.exists()]


def _key(frame: str) -> str:
    match = FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    file = match["file"]
    for marker in ("site-packages/", "/petition/", "/lib/python3"):
        if marker in file:
            file = file.split(marker, 1)[1]
            if marker == "/petition/":
                file = "petition/" + file
            break
    return f"{match['function']} ({file})"


# Frames every request passes through: left out of the inclusive list so that it shows work.
PLUMBING = ("gunicorn/", "<frozen", "runpy", "flask/app.py")


def _package(key: str) -> str:
    if "<sqlalchemy generated" in key:
        return "sqlalchemy"
    file = key.rsplit("(", 1)[-1].rstrip(")")
    if file.endswith(".html") or file.endswith(".txt"):
        return "templates (jinja2)"
    return file.split("/", 1)[0].removesuffix(".py")


def summarise(paths: list[Path], top: int = 30) -> str:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = [_key(frame) for frame in stack.split(";") if frame]
            total += count
            for key in set(frames):
                inclusive[key] += count
            for package in {_package(key) for key in frames if not key_is_plumbing(key)}:
                packages[package] += count
            if frames:
                own[frames[-1]] += count
    if not total:
        return "no samples\n"
    lines = [f"{total} samples (active CPU only) from {len(paths)} worker(s)", ""]
    lines.append("inclusive  package (a sample counts once for each package on its stack)")
    lines += [f"{100 * n / total:8.1f}%  {key}" for key, n in packages.most_common(top)]
    lines += ["", "inclusive  function (without the gunicorn/Flask plumbing every request has)"]
    work = [(key, n) for key, n in inclusive.most_common() if not key_is_plumbing(key)]
    lines += [f"{100 * n / total:8.1f}%  {key}" for key, n in work[:top]]
    lines += ["", "self       function"]
    lines += [f"{100 * n / total:8.1f}%  {key}" for key, n in own.most_common(top)]
    return "\n".join(lines) + "\n"


def key_is_plumbing(key: str) -> bool:
    return any(marker in key for marker in PLUMBING)
