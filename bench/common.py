"""What the benchmarks share: the machine line, percentiles, a process's peak RSS, and the
append to bench/results.md. Figures are recorded, never asserted."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.md"
#: Clock ticks per second, the unit of the CPU times in `/proc/<pid>/stat`.
TICKS = os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def machine() -> str:
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{os.cpu_count()} cores ({cpu}), {mem_gib:.0f} GiB, "
            f"Python {platform.python_version()}, {platform.system()} {platform.release()}")


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} (1 min), {five:.2f} (5 min)"


def commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                         capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return (out or "unknown") + (" + uncommitted changes" if dirty else "")


def _status_kib(pid: int, field: str) -> int:
    """A `/proc/<pid>/status` memory field in KiB; 0 once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def peak_rss_mib(pid: int) -> float:
    """The kernel's high-water mark of the process's resident set (VmHWM): its peak over the
    whole life of the process, with no sampling to miss a spike. Read it before stopping it."""
    return _status_kib(pid, "VmHWM") / 1024


def rss_mib(pid: int) -> float:
    return _status_kib(pid, "VmRSS") / 1024


def _stat(path: Path) -> list[str]:
    """The fields of a `/proc/<pid>/stat` after the command name (which may hold spaces and
    parentheses): state, ppid, ..., utime at 11, stime at 12; [] once the process is gone."""
    try:
        return path.read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _cpu_ticks(stat: Path) -> int:
    """User plus system clock ticks from a process's or thread's `stat`; 0 once it is gone."""
    fields = _stat(stat)
    return int(fields[11]) + int(fields[12]) if fields else 0


def _descendants(pid: int) -> list[int]:
    """`pid` and every process below it (a launcher script's JVM, a worker's children)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = _stat(stat)
        if fields:
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time the processes and their descendants have used so far."""
    return sum(_cpu_ticks(Path(f"/proc/{pid}/stat"))
               for pid in {p for root in pids for p in _descendants(root)}) / TICKS


#: The JVM's just-in-time compiler threads (`/proc/<pid>/task/<tid>/comm`, cut to 15 bytes).
JIT_THREADS = ("C1 CompilerThre", "C2 CompilerThre")


def jit_seconds(pids: list[int]) -> float:
    """CPU time the JIT compiler threads of the processes (and their descendants) have used
    so far: the development server compiling its paths, which real MongoDB never does."""
    total = 0
    for pid in {p for root in pids for p in _descendants(root)}:
        for task in Path(f"/proc/{pid}/task").glob("[0-9]*"):
            try:
                name = (task / "comm").read_text().strip()
            except OSError:
                continue
            if name.startswith(JIT_THREADS):
                total += _cpu_ticks(task / "stat")
    return total / TICKS


def settle(pids: list[int], idle: float = 0.05, bound: float = 60.0) -> float:
    """Wait until the processes have used less than `idle` of a core over 2 s (at most `bound`
    seconds); the seconds waited. The development server's JVM goes on collecting garbage and
    compiling for a while after heavy use, so a measurement started at once would pay for the
    work before it."""
    started = time.monotonic()
    while pids and time.monotonic() - started < bound:
        before = cpu_seconds(pids)
        time.sleep(2)
        if cpu_seconds(pids) - before < 2 * idle:
            break
    return time.monotonic() - started


def append_results(title: str, body: str) -> None:
    if not RESULTS.exists():
        RESULTS.write_text("# Benchmark results\n\nFigures, not asserts.\n")
    with RESULTS.open("a") as out:
        out.write(f"\n## {title} — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit()}\n\n")
        out.write(body.rstrip("\n") + "\n")
