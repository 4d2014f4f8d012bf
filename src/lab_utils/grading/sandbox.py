"""A bubblewrap sandbox per submission: read-only system, private scratch, no network, limits.

What a submission sees (:func:`bwrap_command`):

* the system (``/usr``, ``/etc``), the Python installation and the virtual environment, read-only;
* ``/grading/lab_utils``: the grading build (:mod:`lab_utils.grading.package`), first on ``sys.path``;
  the installed ``lab_utils`` is hidden under an empty folder where it would otherwise be visible;
* its notebook, read-only, at ``/job/submission.ipynb``;
* ``/scratch`` (its working folder and ``HOME``) and ``/tmp``: private in-memory file systems that vanish
  with the sandbox, however it ends — nothing is left behind when a run is killed;
* ``/out``: the one host folder it may write, where the runner puts its results;
* no network (its own empty network namespace), its own process, IPC and user namespaces, no
  capabilities, uid 65534.

Nothing else: not the repository, not the labs' hidden tests or solutions, not ``dist/``, not the
host's ``/tmp`` or ``/root``. Limits: wall clock (the caller kills the process group), address space
and file size (``setrlimit`` before ``exec``).
"""

from __future__ import annotations

import importlib.util
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

INSTALL_HINT = ("install bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`; `make grading-deps` does "
                "it), or grade on a machine that has it")
NAMESPACE_HINT = ("this machine does not let unprivileged processes create user namespaces, which the "
                  "sandbox needs: allow them (`sysctl -w kernel.unprivileged_userns_clone=1`, or on Ubuntu "
                  "24.04 `sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`) or grade inside a "
                  "VM/container that does")
SCRATCH_PREFIX = "lab_grade_"


def require_bwrap() -> str:
    """The ``bwrap`` executable, after checking that a sandbox can actually start here."""
    exe = shutil.which("bwrap")
    if exe is None:
        raise RuntimeError(f"grading needs the bubblewrap sandbox (`bwrap`), which is not installed: {INSTALL_HINT}")
    probe = subprocess.run([exe, "--ro-bind", "/", "/", "--unshare-all", "--cap-drop", "ALL",
                            "--unshare-user", "--uid", "65534", "--gid", "65534", "true"],
                           capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        raise RuntimeError(f"bwrap cannot start a sandbox ({probe.stderr.strip()}): {NAMESPACE_HINT}")
    return exe


def _python_roots() -> list[Path]:
    """Folders a Python process needs: the installation and the virtual environment."""
    roots = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve()}
    return sorted(r for r in roots if not any(r != o and o in r.parents for o in roots))


def _installed_lab_utils() -> Path | None:
    spec = importlib.util.find_spec("lab_utils")
    return Path(spec.origin).resolve().parent if spec and spec.origin else None


def bwrap_command(bwrap: str, grading_root: Path, notebook: Path, out_dir: Path,
                  command: list[str], threads: int = 1) -> list[str]:
    """The bwrap argument list that runs ``command`` inside the sandbox described above."""
    cmd = [bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
           "--unshare-user", "--uid", "65534", "--gid", "65534",
           "--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc",
           "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
           "--symlink", "usr/lib64", "/lib64", "--symlink", "usr/sbin", "/sbin",
           "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/scratch",
           "--dir", "/scratch/home"]
    for root in _python_roots():
        cmd += ["--ro-bind", str(root), str(root)]
    installed = _installed_lab_utils()
    if installed and any(root in installed.parents for root in _python_roots()):
        cmd += ["--tmpfs", str(installed)]   # a non-editable install: hide the full package
    cmd += ["--ro-bind", str(grading_root / "lab_utils"), "/grading/lab_utils",
            "--ro-bind", str(notebook), "/job/submission.ipynb",
            "--bind", str(out_dir), "/out",
            "--remount-ro", "/",   # the root's folders (mount points such as /work/main) stay read-only
            "--chdir", "/scratch", "--clearenv"]
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin", "HOME": "/scratch/home",
           "PYTHONPATH": "/grading", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0",
           "MPLBACKEND": "agg", "MPLCONFIGDIR": "/scratch/home/.mpl", "CI": "true", "LAB_SCALE": "ci",
           "TQDM_DISABLE": "1", "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    for k, v in env.items():
        cmd += ["--setenv", k, v]
    return cmd + command


def limits(memory_bytes: int, file_bytes: int):
    """A ``preexec_fn`` that caps the address space and the size of any file the submission writes."""
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return apply


def scratch_dir() -> Path:
    """A host folder for one submission's results, named after this process (see :func:`sweep`)."""
    sweep()
    return Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}_"))


def sweep(max_age_s: float = 60.0) -> list[Path]:
    """Remove result folders left by grading processes that were killed (their pid is gone)."""
    removed = []
    for path in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*"):
        try:
            pid = int(path.name[len(SCRATCH_PREFIX):].split("_")[0])
        except ValueError:
            continue
        alive = True
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            alive = False
        except PermissionError:
            pass
        if not alive and time.time() - path.stat().st_mtime > max_age_s:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed
