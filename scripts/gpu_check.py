"""The GPU check: every chapter at the ``gpu`` scale plus ``tests/gpu/``, timed, on one CUDA machine.

Run it through ``bash scripts/gpu_check.sh`` (which installs the wheels of ``.whl/`` and writes the
kernelspec); see CONTRIBUTING.md, "The GPU check". Each chapter notebook runs in its own process
(nbclient, one fresh kernel) and ``tests/gpu`` in a pytest process, on one GPU, each under its own
time limit; the limits sum to at most ``--budget`` seconds so the whole check fits in 10 minutes on
one H100.
The results go to ``reports/gpu_check.json`` and ``reports/gpu_check.md``: per chapter the result,
wall time, the limit and whether it was hit, and peak GPU memory (PyTorch's
``max_memory_allocated`` in the kernel, and the device-wide peak sampled with ``nvidia-smi``), with
the GPU's name, torch/CUDA versions and the date.

Exit codes: 0 all passed, 1 something failed or hit its limit, 2 no CUDA GPU (nothing ran).
``--allow-cpu`` runs the same machinery without a GPU, only to test it (the report says so).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REPORT_NAME = "gpu_check"
# Per-run limits in seconds on one H100/H200 at the gpu scale. They sum to DEFAULT_BUDGET_S, which
# leaves the wheel install and kernel start-ups inside 10 minutes. A chapter not listed gets
# DEFAULT_LIMIT_S; when the limits add up to more than the budget they are all scaled down to fit.
# Not yet measured on a GPU: the first real run's wall times should replace these guesses.
LIMITS_S = {
    "single_gpu": 25,
    "checkpointing": 40,
    "zero": 50,
    "sharded": 40,
    "pipeline": 40,
    "terapipe": 40,
    "dp_synth": 40,
    "fairness": 40,
    "model_search": 40,
    "federated": 60,
    "gpu_tests": 45,   # tests/gpu/ but the NCCL file: timer, memory formulas, ZeRO-Offload, fairscale FSDP
    "gpu_nccl": 80,   # tests/gpu/test_parallel_nccl.py: the distributed references on NCCL
}
DEFAULT_LIMIT_S = 60
DEFAULT_BUDGET_S = 540
GPU_TESTS, GPU_NCCL = "gpu_tests", "gpu_nccl"
NCCL_TESTS = "tests/gpu/test_parallel_nccl.py"
PACKAGES = ("torch", "torchvision", "deepspeed", "fairscale", "opacus", "ctgan", "numpy", "pandas",
            "nbclient", "ipykernel")
_PROBE = """\
import json as _j, sys as _s
_t = _s.modules.get("torch")
_peak = None
if _t is not None and _t.cuda.is_available() and _t.cuda.is_initialized():
    _peak = max(_t.cuda.max_memory_allocated(i) for i in range(_t.cuda.device_count()))
print("__LAB_GPU_PEAK__" + _j.dumps({"peak_gpu_allocated_bytes": _peak}))
"""
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


# ----------------------------------------------------------------------------- what to run
def discover(repo: Path = REPO) -> list[dict]:
    """Every chapter notebook (``book/<chapter>/*.ipynb``) and the GPU tests, with their limits."""
    runs = []
    for nb in sorted((repo / "book").glob("*/*.ipynb")):
        if ".ipynb_checkpoints" in nb.parts or "_build" in nb.parts:
            continue
        key = nb.parent.name
        runs.append({"chapter": key, "kind": "notebook", "path": str(nb.relative_to(repo)),
                     "limit_s": LIMITS_S.get(key, DEFAULT_LIMIT_S)})
    nccl = (repo / NCCL_TESTS).exists()
    runs.append({"chapter": GPU_TESTS, "kind": "pytest", "path": "tests/gpu", "limit_s": LIMITS_S[GPU_TESTS],
                 "pytest_args": [f"--ignore={NCCL_TESTS}"] if nccl else []})
    if nccl:
        runs.append({"chapter": GPU_NCCL, "kind": "pytest", "path": NCCL_TESTS, "limit_s": LIMITS_S[GPU_NCCL],
                     "pytest_args": []})
    return runs


def fit_limits(runs: list[dict], budget_s: float) -> list[dict]:
    """Scale the limits down proportionally when they add up to more than ``budget_s``."""
    total = sum(r["limit_s"] for r in runs)
    if total > budget_s:
        for r in runs:
            r["limit_s"] = max(10, int(r["limit_s"] * budget_s / total))
    return runs


# ----------------------------------------------------------------------------- machine facts
def machine_facts() -> dict:
    """GPU, torch, CUDA and package versions, read in a short subprocess (no CUDA context here)."""
    code = r"""
import json, os, sys, platform
import importlib.metadata as md
out = {"python": platform.python_version(), "cpu_cores": os.cpu_count()}
try:
    import torch
    out["torch"] = torch.__version__
    out["cuda"] = torch.version.cuda
    out["cuda_available"] = torch.cuda.is_available()
    if out["cuda_available"]:
        out["cudnn"] = torch.backends.cudnn.version()
        out["gpu_count"] = torch.cuda.device_count()
        p = torch.cuda.get_device_properties(0)
        out["gpu_name"] = p.name
        out["gpu_memory_bytes"] = p.total_memory
except Exception as e:
    out["torch_error"] = repr(e)
pk = {}
for name in sys.argv[1:]:
    try:
        pk[name] = md.version(name)
    except md.PackageNotFoundError:
        pk[name] = None
out["packages"] = pk
print(json.dumps(out))
"""
    res = subprocess.run([sys.executable, "-c", code, *PACKAGES], capture_output=True, text=True, timeout=300)
    if res.returncode != 0:
        return {"cuda_available": False, "torch_error": res.stderr.strip()[-2000:]}
    facts = json.loads(res.stdout.strip().splitlines()[-1])
    driver = _nvidia_smi("driver_version")
    if driver:
        facts["driver"] = driver[0]
    return facts


def _nvidia_smi(field: str) -> list[str] | None:
    try:
        res = subprocess.run(["nvidia-smi", f"--query-gpu={field}", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if res.returncode != 0:
        return None
    return [line.strip() for line in res.stdout.strip().splitlines() if line.strip()]


class DeviceMemorySampler:
    """The device-wide peak of memory used (all processes), sampled with ``nvidia-smi`` every ``period`` s."""

    def __init__(self, period: float = 0.5):
        self.period, self.peak, self._stop = period, None, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            used = _nvidia_smi("memory.used")
            if used is None:
                return
            mib = max(float(u) for u in used)
            self.peak = mib if self.peak is None else max(self.peak, mib)
            self._stop.wait(self.period)

    def __enter__(self) -> DeviceMemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    @property
    def peak_bytes(self) -> int | None:
        return None if self.peak is None else int(self.peak * 1024**2)


# ----------------------------------------------------------------------------- running, with a limit
def _descendants(pid: int) -> list[int]:
    """All descendants of ``pid`` (Linux /proc), including those in a new session (kernels, ranks)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out, stack = [], [pid]
    while stack:
        for c in children.get(stack.pop(), []):
            out.append(c)
            stack.append(c)
    return out


def _kill_tree(proc: subprocess.Popen) -> None:
    pids = _descendants(proc.pid) if Path("/proc").is_dir() else []
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in [proc.pid, *pids]:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            continue
        if sig == signal.SIGTERM:
            time.sleep(1)  # let the kernel and its ranks go too before SIGKILL


def run_limited(cmd: list[str], limit_s: float, env: dict, log: Path) -> tuple[int | None, float, bool]:
    """Run ``cmd`` with output to ``log``; kill it and every descendant after ``limit_s``."""
    t0 = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=limit_s)
            hit = False
        except subprocess.TimeoutExpired:
            _kill_tree(proc)
            rc, hit = None, True
    # a finished run may leave orphans (e.g. ranks); they are in its session: end them too
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return rc, time.perf_counter() - t0, hit


def _tail(text: str, n: int = 2500) -> str:
    text = "\n".join(line for line in _ANSI.sub("", text).splitlines()
                     if "Kernel is running over TCP without encryption" not in line).strip()
    return text if len(text) <= n else "…" + text[-n:]


def run_one(run: dict, kernel: str, scale: str, scratch: Path) -> dict:
    """Run one chapter or the GPU tests under its limit and return its result record."""
    env = dict(os.environ, LAB_SCALE=scale, MPLBACKEND="agg", TQDM_DISABLE="1", PYTHONHASHSEED="0")
    env.pop("CI", None)
    result_file = scratch / f"{run['chapter']}.result.json"
    log = scratch / f"{run['chapter']}.log"
    result_file.unlink(missing_ok=True)
    if run["kind"] == "notebook":
        cmd = [sys.executable, str(Path(__file__).resolve()), "--execute-notebook", run["path"],
               "--kernel", kernel, "--result", str(result_file)]
    else:
        junit = scratch / f"{run['chapter']}.junit.xml"
        env["LAB_GPU_PEAK_FILE"] = str(result_file)
        # everything in tests/gpu is GPU-only (marked `gpu`); run it all, so a forgotten marker loses nothing
        cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", f"--junitxml={junit}",
               *run.get("pytest_args", []), run["path"]]
    print(f"gpu_check: {run['chapter']:<14} (limit {run['limit_s']} s) ...", flush=True)
    with DeviceMemorySampler() as sampler:
        rc, wall, hit = run_limited(cmd, run["limit_s"], env, log)
    rec = {k: v for k, v in run.items() if k != "pytest_args"}
    rec.update(wall_s=round(wall, 1), limit_hit=hit, returncode=rc, peak_gpu_allocated_bytes=None,
               peak_gpu_used_bytes=sampler.peak_bytes, error=None)
    extra = json.loads(result_file.read_text()) if result_file.exists() else {}
    rec["peak_gpu_allocated_bytes"] = extra.get("peak_gpu_allocated_bytes")
    if run["kind"] == "pytest":
        rec["tests"] = parse_junit(scratch / f"{run['chapter']}.junit.xml")
    if hit:
        rec["status"] = "timeout"
        rec["error"] = f"hit its {run['limit_s']} s limit; last output:\n" + _tail(log.read_text(errors="replace"))
    elif rc == 0 and (run["kind"] == "pytest" or extra.get("status") == "pass"):
        rec["status"] = "pass"
    else:
        rec["status"] = "fail"
        rec["error"] = _tail(extra.get("error") or log.read_text(errors="replace"))
    print(f"gpu_check: {run['chapter']:<14} {rec['status']} in {wall:.1f} s", flush=True)
    return rec


def parse_junit(path: Path) -> dict | None:
    """Counts from pytest's JUnit XML: passed, failed, errors, skipped (with the skip reasons)."""
    if not path.exists():
        return None
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    reasons = []
    for s in suites:
        for k in counts:
            counts[k] += int(s.get(k, 0))
        for case in s.iter("testcase"):
            skip = case.find("skipped")
            if skip is not None:
                reasons.append(f"{case.get('name')}: {skip.get('message', '')}")
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    counts["skip_reasons"] = reasons
    return counts


# ----------------------------------------------------------------------------- inside a child process
def execute_notebook(path: str, kernel: str, result: str) -> int:
    """Child process: execute a notebook with nbclient in its folder, then read the kernel's GPU peak."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb_path = REPO / path
    nb = nbformat.read(nb_path, as_version=4)
    client = NotebookClient(nb, kernel_name=kernel, timeout=None, allow_errors=False,
                            resources={"metadata": {"path": str(nb_path.parent)}})
    out: dict = {"status": "pass", "error": None, "peak_gpu_allocated_bytes": None}
    with client.setup_kernel():
        try:
            cells = list(nb.cells)
            for index, cell in enumerate(cells):
                if cell.cell_type == "code":  # progress, so that a timeout says where it was
                    first = next((line for line in cell.source.splitlines() if line.strip()), "")[:70]
                    print(f"[{time.strftime('%H:%M:%S')}] cell {index + 1}/{len(cells)}: {first}", flush=True)
                client.execute_cell(cell, index)
        except CellExecutionError as e:
            out["status"], out["error"] = "fail", str(e)
        probe = nbformat.v4.new_code_cell(_PROBE)
        nb.cells.append(probe)
        try:
            client.execute_cell(probe, len(nb.cells) - 1)
            for o in probe.get("outputs", []):
                for line in o.get("text", "").splitlines():
                    if line.startswith("__LAB_GPU_PEAK__"):
                        out.update(json.loads(line[len("__LAB_GPU_PEAK__"):]))
        except Exception as e:  # the peak is a nicety; the chapter's result stands
            out["probe_error"] = repr(e)
    Path(result).write_text(json.dumps(out))
    return 0 if out["status"] == "pass" else 1


# ----------------------------------------------------------------------------- the report
def build_report(results: list[dict], facts: dict, *, scale: str, budget_s: float, started: str,
                 finished: str, allow_cpu: bool = False, commit: str | None = None) -> dict:
    """The report's JSON structure (schema 1) from per-run records and machine facts."""
    gpu_name = facts.get("gpu_name") if facts.get("cuda_available") else None
    return {
        "schema": 1,
        "date": started[:10],
        "started_utc": started,
        "finished_utc": finished,
        "gpu": gpu_name or "none (CPU run with --allow-cpu: a test of the machinery, not a GPU measurement)",
        "gpu_count": facts.get("gpu_count", 0),
        "gpu_memory_bytes": facts.get("gpu_memory_bytes"),
        "driver": facts.get("driver"),
        "torch": facts.get("torch"),
        "cuda": facts.get("cuda"),
        "cudnn": facts.get("cudnn"),
        "python": facts.get("python"),
        "cpu_cores": facts.get("cpu_cores"),
        "packages": facts.get("packages", {}),
        "scale": scale,
        "allow_cpu": allow_cpu,
        "commit": commit,
        "budget_s": budget_s,
        "total_wall_s": round(sum(r.get("wall_s") or 0 for r in results), 1),
        "passed": all(r.get("status") == "pass" for r in results) and bool(results),
        "limits_hit": [r["chapter"] for r in results if r.get("limit_hit")],
        "chapters": results,
    }


def _fmt_bytes(n: float | None) -> str:
    if n is None:
        return "—"
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{int(n)} B"


def _fmt_time(s: float | None) -> str:
    if s is None:
        return "—"
    return f"{s:.1f} s" if s < 60 else f"{s / 60:.1f} min"


def render_markdown(report: dict) -> str:
    """The report as a markdown page (a table per run, then the limits hit and the errors)."""
    lines = [f"# GPU check — {report['date']}", "",
             f"- GPU: **{report['gpu']}**" + (f" ×{report['gpu_count']}" if report.get("gpu_count", 0) > 1 else "")
             + (f", {_fmt_bytes(report['gpu_memory_bytes'])}" if report.get("gpu_memory_bytes") else "")
             + (f", driver {report['driver']}" if report.get("driver") else ""),
             f"- torch {report['torch']}, CUDA {report['cuda'] or '—'}, cuDNN {report.get('cudnn') or '—'}, "
             f"Python {report['python']}, {report['cpu_cores']} CPU cores",
             f"- scale: `{report['scale']}`; started {report['started_utc']}, finished {report['finished_utc']}"
             + (f"; commit `{report['commit']}`" if report.get("commit") else ""),
             f"- total: {_fmt_time(report['total_wall_s'])} of a {_fmt_time(report['budget_s'])} budget; "
             f"result: **{'all passed' if report['passed'] else 'FAILED'}**"]
    if report.get("allow_cpu"):
        lines.append("- **CPU run (`--allow-cpu`): tests the machinery only; not a GPU measurement.**")
    pk = ", ".join(f"{k} {v}" for k, v in report.get("packages", {}).items() if v)
    if pk:
        lines.append(f"- packages: {pk}")
    lines += ["", "| Chapter | Result | Wall time | Limit | Peak GPU memory (torch, allocated) "
              "| Peak device memory used (nvidia-smi) |", "|---|---|---|---|---|---|"]
    for r in report["chapters"]:
        result = r["status"] + (" (limit hit)" if r.get("limit_hit") else "")
        t = r.get("tests")
        if t:
            result += f": {t['passed']} passed, {t['failures'] + t['errors']} failed, {t['skipped']} skipped"
        lines.append(f"| `{r['chapter']}` ({r['path']}) | {result} | {_fmt_time(r.get('wall_s'))} "
                     f"| {_fmt_time(r['limit_s'])} | {_fmt_bytes(r.get('peak_gpu_allocated_bytes'))} "
                     f"| {_fmt_bytes(r.get('peak_gpu_used_bytes'))} |")
    lines += ["", "Limits hit: " + (", ".join(f"`{c}`" for c in report["limits_hit"]) or "none") + "."]
    for r in report["chapters"]:
        t = r.get("tests") or {}
        if t.get("skip_reasons"):
            lines += ["", f"Skipped in `{r['chapter']}`:", *[f"- {s}" for s in t["skip_reasons"]]]
    for r in report["chapters"]:
        if r.get("error"):
            lines += ["", f"## `{r['chapter']}`: {r['status']}", "", "```", r["error"], "```"]
    return "\n".join(lines) + "\n"


def write_report(report: dict, out_dir: Path) -> tuple[Path, Path]:
    """Write ``gpu_check.json`` and ``gpu_check.md`` into ``out_dir``; return both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    js, md = out_dir / f"{REPORT_NAME}.json", out_dir / f"{REPORT_NAME}.md"
    js.write_text(json.dumps(report, indent=1, sort_keys=False) + "\n")
    md.write_text(render_markdown(report))
    return js, md


def _commit() -> str | None:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


NO_CUDA_MESSAGE = ("gpu_check: FAILED - no CUDA GPU is visible to torch {torch} (CUDA build: {cuda}). "
                   "This check runs only on a CUDA machine: see 'The GPU check' in CONTRIBUTING.md. "
                   "On this machine run `make test` instead (--allow-cpu only tests the check's machinery).")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", action="append", default=[], metavar="CHAPTER",
                    help="run only these (repeat, or comma-separate): chapter folder names or gpu_tests")
    ap.add_argument("--scale", default="gpu", choices=("ci", "cpu", "gpu"), help="LAB_SCALE for the chapters")
    ap.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S, help="seconds all limits may sum to")
    ap.add_argument("--limit", action="append", default=[], metavar="CHAPTER=SECONDS", help="override a limit")
    ap.add_argument("--kernel", default=os.environ.get("LAB_GPU_KERNEL", "python3"), help="kernelspec name")
    ap.add_argument("--out-dir", type=Path, default=None,
                    help="where the report goes (default reports/; with --allow-cpu a temporary folder)")
    ap.add_argument("--allow-cpu", action="store_true",
                    help="run without CUDA, only to test this machinery (the report says so)")
    ap.add_argument("--execute-notebook", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.execute_notebook:
        return execute_notebook(args.execute_notebook, args.kernel, args.result)

    facts = machine_facts()
    if not facts.get("cuda_available") and not args.allow_cpu:
        if "torch" not in facts:
            print(f"gpu_check: FAILED - torch is not importable: {facts.get('torch_error', '')[-500:]}",
                  file=sys.stderr)
        else:
            print(NO_CUDA_MESSAGE.format(torch=facts.get("torch"), cuda=facts.get("cuda") or "none"),
                  file=sys.stderr)
        return 2
    if args.scale == "gpu" and not facts.get("cuda_available"):
        print("gpu_check: --scale gpu needs CUDA; use --scale ci or cpu with --allow-cpu", file=sys.stderr)
        return 2

    if facts.get("gpu_count", 0) > 1 and not os.environ.get("CUDA_VISIBLE_DEVICES"):
        # the report speaks of one GPU: the chapters must not spread over the others
        os.environ["CUDA_VISIBLE_DEVICES"] = "0"
        print(f"gpu_check: {facts['gpu_count']} GPUs here; running on the first only (CUDA_VISIBLE_DEVICES=0)")
        facts["gpu_count"] = 1
    runs = discover()
    only = {c for o in args.only for c in o.split(",") if c}
    if only:
        unknown = only - {r["chapter"] for r in runs}
        if unknown:
            print(f"gpu_check: unknown chapter(s) {sorted(unknown)}; known: {[r['chapter'] for r in runs]}",
                  file=sys.stderr)
            return 2
        runs = [r for r in runs if r["chapter"] in only]
    for item in args.limit:
        name, _, secs = item.partition("=")
        for r in runs:
            if r["chapter"] == name:
                r["limit_s"] = int(float(secs))
    unlisted = [r["chapter"] for r in runs if r["chapter"] not in LIMITS_S]
    if unlisted:
        print(f"gpu_check: no time limit set for {unlisted} (LIMITS_S in scripts/gpu_check.py): "
              f"{DEFAULT_LIMIT_S} s each, and all limits scaled to fit {args.budget:.0f} s", flush=True)
    runs = fit_limits(runs, args.budget)
    out_dir = args.out_dir or (Path(tempfile.mkdtemp(prefix="gpu_check_cpu_")) if args.allow_cpu
                               else REPO / "reports")
    gpu = facts.get("gpu_name") or "no GPU (--allow-cpu)"
    print(f"gpu_check: {gpu}, torch {facts.get('torch')}, CUDA {facts.get('cuda')}, scale {args.scale}, "
          f"{len(runs)} run(s), limits sum to {sum(r['limit_s'] for r in runs)} s", flush=True)

    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    results = []
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as scratch:
        for run in runs:
            results.append(run_one(run, args.kernel, args.scale, Path(scratch)))
    finished = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    report = build_report(results, facts, scale=args.scale, budget_s=args.budget, started=started,
                          finished=finished, allow_cpu=args.allow_cpu, commit=_commit())
    js, md = write_report(report, out_dir)
    print(render_markdown(report))
    print(f"gpu_check: wrote {js} and {md}" + ("" if args.allow_cpu else "; commit them (git add reports/)"))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
