"""Mechanics of the benchmark harness (``bench/run.py``): wrk runs, processes, memory, reports.

Nothing here knows which benchmarks exist; ``run.py`` holds the sequence and
the targets.
"""
from __future__ import annotations

import json
import math
import os
import platform
import re
import shlex
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WRK_LUA = ROOT / "bench" / "wrk"


# --- commands ----------------------------------------------------------------

@dataclass
class CommandLog:
    """Every command the run executes, secrets redacted, for the report's "exact commands"."""

    secrets: dict[str, str] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    def redact(self, text: str) -> str:
        for secret, label in self.secrets.items():
            text = text.replace(secret, label)
        return text

    def add(self, argv: list[str]) -> None:
        shown = [os.path.relpath(a, ROOT) if a.startswith(str(ROOT) + "/") else a for a in argv]
        self.lines.append(self.redact(shlex.join(shown)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]




def stop_process(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """SIGTERM (then SIGKILL) the process group of a process this harness started itself."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


# --- wrk ---------------------------------------------------------------------

@dataclass
class WrkResult:
    requests: int
    seconds: float
    ok: int
    non2xx: int
    socket_errors: int  # connect + read + write errors and timeouts
    latency_ms: dict[str, float]
    statuses: dict[str, int]
    max_counter: int  # most requests one wrk thread generated (scripts that number them)
    web_cpu_us: float | None = None  # the web server's CPU per request during the run (set by bench/run.py)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def ok_rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        return self.non2xx + self.socket_errors

    def cpu_text(self) -> str:
        """The web server's CPU per request, as a suffix for the report ("" when not measured)."""
        return f", web CPU {self.web_cpu_us:,.0f} µs/request" if self.web_cpu_us is not None else ""

    def latency_text(self, *percentiles: str) -> str:
        """The given latency percentiles, throughput, errors and web CPU, as a report cell ("p99 12.3 ms, ..., 0 errors")."""
        lat = ", ".join(f"{p} {self.latency_ms[p]:.1f} ms" for p in percentiles)
        return f"{lat}, {self.ok_rps:,.0f} req/s, {self.error_text()}{self.cpu_text()}"

    def error_text(self) -> str:
        if not self.errors:
            return "0 errors"
        bad = {code: n for code, n in self.statuses.items() if not code.startswith("2")}
        parts = [f"{n} x HTTP {code}" for code, n in sorted(bad.items())]
        if self.socket_errors:
            parts.append(f"{self.socket_errors} socket errors/timeouts")
        return f"{self.errors} errors (" + ", ".join(parts) + ")"


def wrk(*, url: str, script: str, args: list[str], connections: int, duration: int, threads: int,
        timeout: int, log: CommandLog, out_dir: Path, name: str) -> WrkResult:
    """Run wrk with one of bench/wrk/*.lua and parse its WRK_JSON line (see report.lua)."""
    argv = [
        "wrk", f"-t{min(threads, connections)}", f"-c{connections}", f"-d{duration}s", f"--timeout={timeout}s",
        "-s", str(WRK_LUA / script), url, "--", *args,
    ]
    log.add(argv)
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=duration + timeout + 120)
    (out_dir / f"wrk-{name}.txt").write_text(log.redact(done.stdout + done.stderr))
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk {name} failed (exit {done.returncode}): {log.redact(done.stderr or done.stdout)[-2000:]}")
    data = json.loads(line.removeprefix("WRK_JSON "))
    return WrkResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        ok=data["ok"],
        non2xx=data["non2xx"],
        socket_errors=data["connect_errors"] + data["read_errors"] + data["write_errors"] + data["timeouts"],
        latency_ms={k: v / 1000.0 for k, v in data["latency_us"].items()},
        statuses=data["statuses"],
        max_counter=data["max_counter"],
    )


# --- external in-process benches ------------------------------------------

@dataclass
class ExternalResult:
    """What another engineer's bench script printed: parsed JSON if it has --json, else its last table rows."""

    command: str
    ok: bool
    data: dict | list | None = None
    table: list[str] = field(default_factory=list)
    stdout: str = ""
    error: str = ""

    def figures(self) -> str:
        if self.data is not None:
            return json.dumps(self.data, ensure_ascii=False)
        return "<br>".join(r for r in self.table if not re.fullmatch(r"\|?[\s|:-]+\|?", r))

    def number(self, *, unit_words: tuple[str, ...], pattern: str | None = None) -> float | None:
        """A loose look for the headline figure: a JSON value, a table cell, or a line of text.

        JSON: the first numeric value whose key contains one of ``unit_words``.
        Table: the first data row's cell in the first column whose header contains one of them.
        Text: the first group of ``pattern`` in the output.
        """
        words = tuple(w.lower() for w in unit_words)
        if isinstance(self.data, dict):
            return _first_number(self.data, words)
        if pattern and (match := re.search(pattern, self.stdout)):
            return float(match.group(1).replace(",", ""))
        if len(self.table) >= 2:
            header = [c.strip().lower() for c in self.table[0].strip("|").split("|")]
            rows = [r for r in self.table[1:] if not re.fullmatch(r"\|?[\s|:-]+\|?", r)]
            for i, name in enumerate(header):
                if any(w in name for w in words) and rows:
                    cells = rows[0].strip("|").split("|")
                    if i < len(cells):
                        match = re.search(r"-?\d[\d,]*(?:\.\d+)?", cells[i])
                        if match:
                            return float(match.group().replace(",", ""))
        return None


def _first_number(data, words) -> float | None:
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and any(w in str(key).lower() for w in words):
                return float(value)
        for value in data.values():
            if isinstance(value, (dict, list)):
                found = _first_number(value, words)
                if found is not None:
                    return found
    elif isinstance(data, list):
        for value in data:
            found = _first_number(value, words)
            if found is not None:
                return found
    return None


def run_external(*, python: str, script: Path, args: list[str], env: dict, log: CommandLog, timeout: int, out_dir: Path) -> ExternalResult:
    """Run a bench script; with ``--json`` when its --help offers it."""
    helptext = subprocess.run([python, str(script), "--help"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120).stdout
    use_json = "--json" in helptext
    argv = [python, str(script), *args, *(["--json"] if use_json else [])]
    log.add(argv)
    command = shlex.join([os.path.relpath(a, ROOT) if a.startswith(str(ROOT) + "/") else a for a in argv])
    try:
        done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return ExternalResult(command, False, error=f"timed out after {timeout} s")
    (out_dir / f"{script.stem}.txt").write_text(log.redact(done.stdout + done.stderr))
    if done.returncode != 0:
        return ExternalResult(command, False, error=f"exit {done.returncode}: {log.redact(done.stderr)[-500:]}")
    if use_json:
        for line in reversed(done.stdout.strip().splitlines()):
            try:
                parsed = json.loads(line)
            except ValueError:
                continue
            if isinstance(parsed, (dict, list)):
                return ExternalResult(command, True, data=parsed, stdout=done.stdout)
        try:
            return ExternalResult(command, True, data=json.loads(done.stdout), stdout=done.stdout)
        except ValueError:
            pass
    table = last_markdown_table(done.stdout)
    if not table:  # no table: keep its last non-empty line as the figure
        lines = [ln.strip() for ln in done.stdout.splitlines() if ln.strip()]
        table = lines[-1:]
    return ExternalResult(command, True, table=table, stdout=done.stdout)


def last_markdown_table(text: str) -> list[str]:
    tables, current = [], []
    for line in text.splitlines():
        if line.strip().startswith("|"):
            current.append(line.strip())
        elif current:
            tables.append(current)
            current = []
    if current:
        tables.append(current)
    return tables[-1] if tables else []


# --- processes and memory -------------------------------------------------

def _status_kb(pid: int, field_name: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_mb(pid: int) -> float | None:
    kb = _status_kb(pid, "VmRSS")
    return kb / 1024 if kb is not None else None


def pss_mb(pid: int) -> float | None:
    """Proportional set size: shared pages divided among their sharers (no double counting)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def children(pid: int) -> list[int]:
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                found.extend(int(p) for p in fh.read().split())
    except OSError:
        pass
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the processes have used so far (/proc/<pid>/stat; gone processes count 0)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
    return total / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        kids = children(current)
        out.extend(kids)
        todo.extend(kids)
    return out


def pids_where(predicate) -> list[int]:
    """Pids whose (comm, cmdline) satisfy ``predicate`` (read-only scan of /proc)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            comm = Path(f"/proc/{entry}/comm").read_text().strip()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if predicate(comm, cmdline):
            pids.append(int(entry))
    return pids


# --- report ------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: with 30 samples, p95 is the 29th)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def machine() -> dict[str, str]:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    return {"nproc": str(os.cpu_count()), "cpu": model, "ram": ram, "kernel": platform.release(), "python": platform.python_version()}


# The benchmark's sensors: multi-parameter stations with every limit set, so all the alert rules run
# (bench/run.py seeds them; bench/bench_consumer.py --values wrk uses the same).
BENCH_SENSOR_FIELDS = dict(flood_stage_m=4.0, rainfall_limit_mm_h=40.0, ground_movement_limit_mm_h=5.0, soil_moisture_limit=0.45)

CPU_PROBE_ITERATIONS = 5_000_000


def cpu_probe() -> float:
    """Seconds of CPU a fixed pure-Python loop takes (5 million additions).

    Why: the machines here are virtual and share their host. A loop like
    this one took from 1x to 1.8x its fastest time within one hour on one
    machine, and CPU-bound figures moved with it; recorded before every benchmark, it says how fast the
    machine was while each figure was taken, and compares machines.
    """
    started = time.process_time()
    total = 0
    for i in range(CPU_PROBE_ITERATIONS):
        total += i
    return time.process_time() - started


def git_revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev + (" + uncommitted changes" if dirty else "")


def now_utc() -> datetime:
    return datetime.now(UTC)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    def clean(cell: str) -> str:
        return str(cell).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(clean(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def wait_until(check, *, timeout: float, interval: float = 0.2, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
