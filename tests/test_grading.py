"""The grading machinery: plain-data codec, grading build, judge, sandbox isolation, report.

The lab proofs themselves (every lab's grader against its planted answers) are tests/test_labs.py.
"""

import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from lab_utils.grading import grade as grade_module
from lab_utils.grading.build import LabBuild
from lab_utils.grading.grade import Grade, grade_submission, judge, write_gradebook
from lab_utils.grading.hidden import Hidden, Raised, decode, dumps, encode, loads, raised
from lab_utils.grading.package import check_grading_package, grading_package
from lab_utils.grading.prove import pack_shortcuts, snoop_cell
from lab_utils.grading.report import write_report
from lab_utils.grading.sandbox import require_bwrap


# ----------------------------------------------------------------------------- plain data
def test_plain_data_round_trip():
    value = {"ints": [1, 2], ("adam", "fp32"): 16, "t": torch.arange(6, dtype=torch.float32).view(2, 3),
             "a": np.array([[1, 2]], dtype=np.int64), "tuple": (1, "x"), "nan": float("nan"),
             "err": Raised("ValueError", "bad"), "scalar": np.float64(2.5), "none": None}
    back = loads(dumps(value))
    assert back[("adam", "fp32")] == 16 and back["tuple"] == (1, "x") and back["none"] is None
    assert torch.equal(back["t"], value["t"]) and back["t"].dtype == torch.float32
    assert np.array_equal(back["a"], value["a"]) and back["a"].dtype == np.int64
    assert np.isnan(back["nan"]) and back["scalar"] == 2.5 and raised(back["err"], "ValueError")


def test_only_plain_data_crosses():
    class Sneaky:
        def __eq__(self, other):
            return True

    with pytest.raises(TypeError, match="return numbers"):
        encode(Sneaky())
    with pytest.raises(TypeError):
        encode(np.array([Sneaky()], dtype=object))
    with pytest.raises(ValueError, match="not plain data"):
        decode({"__pickle__": "..."})


# ----------------------------------------------------------------------------- grading build
def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))


def test_grading_build_deletes_references_and_their_importers(tmp_path):
    src = tmp_path / "src" / "lab_utils"
    _write(src, {
        "__init__.py": "",
        "graded.py": "def graded_reference(fn):\n    return fn\n",
        "topic/__init__.py": "",
        "topic/algo.py": """
            from ..graded import graded_reference

            def helper():
                return 1

            @graded_reference  # the reference
            def answer(x):
                return x + helper()
            """,
        "topic/uses.py": "from lab_utils.topic.algo import answer\n",
        "topic/uses_uses.py": "from lab_utils.topic import uses\n",
        "topic/safe.py": "from lab_utils.topic.algo import helper\n",
    })
    pkg = grading_package(tmp_path / "build", src)
    assert pkg.removed_functions == {"lab_utils.topic.algo": ["answer"]}
    assert pkg.removed_modules == ["lab_utils.topic.uses", "lab_utils.topic.uses_uses"]
    algo = (pkg.package / "topic" / "algo.py").read_text()
    assert "def answer" not in algo and "def helper" in algo and "graded_reference  # the" not in algo
    assert (pkg.package / "topic" / "safe.py").exists()
    assert check_grading_package(pkg, import_modules=False) == []
    (pkg.package / "topic" / "copy.py").write_text("def answer(x):\n    return x\n")   # a leftover copy
    assert check_grading_package(pkg, import_modules=False) == [
        "lab_utils/topic/copy.py still defines answer"]


def test_real_grading_build_has_no_reference(tmp_path):
    pkg = grading_package(tmp_path)
    names = {n for ns in pkg.removed_functions.values() for n in ns}
    assert {"bytes_per_parameter", "memory_breakdown", "even_segments", "scoreboard"} <= names
    assert "lab_utils.fitting.calculator" in pkg.removed_modules   # built on the references: a twin
    assert check_grading_package(pkg) == []


# ----------------------------------------------------------------------------- judge
def probe_double(double):
    return [double(3), double(-1)]


def judge_double(out):
    assert out == [6, -2], f"expected [6, -2], got {out}"


def probe_errors(double):
    try:
        double(None)
    except TypeError as exc:
        return f"TypeError: {exc}"
    return "no error"


def judge_errors(out):
    assert out.startswith("TypeError")


HIDDEN = (Hidden("q1", 2, probe_double, judge_double),
          Hidden("q1", 1, probe_errors, judge_errors, requires=("judge_double",)))


def test_judge_requires_the_core_test():
    assert judge({"probe_double": encode([6, -2]), "probe_errors": "TypeError: x"}, HIDDEN, {"q1": 3})[0] == {"q1": 3}
    scores, failed = judge({"probe_double": encode([6, 2]), "probe_errors": "TypeError: x"}, HIDDEN, {"q1": 3})
    assert scores == {"q1": 0} and "earns its points only with judge_double" in failed["judge_errors"]
    scores, failed = judge({"probe_double": encode([6, -2])}, HIDDEN, {"q1": 3})
    assert scores == {"q1": 2} and failed["judge_errors"].startswith("not run")
    scores, failed = judge({"probe_double": {"__tensor__": "garbage"}}, HIDDEN, {"q1": 3})
    assert scores == {"q1": 0} and failed["judge_double"].startswith("unreadable")


def probe_seeded(f):
    return f()


def judge_seeded(out):
    """Rebuilds its reference from the global RNG, as lab judges do (torch.manual_seed, then draws)."""
    for seed in range(40):
        torch.manual_seed(seed)
        time.sleep(0.001)                   # a thread switch between the seed and the draws, as I/O would
        ref = torch.randn(2000)
        assert torch.equal(ref, torch.randn(0).new_tensor(out[seed])), f"seed {seed}"


def test_concurrent_judges_take_turns_with_the_global_rng():
    """grade_folder judges in threads; without the judge lock another judge's seeding lands between a
    judge's seed and its draws (this test failed before the lock: lab 01's solution lost q3 under prove)."""
    want = []
    for seed in range(40):
        torch.manual_seed(seed)
        want.append(torch.randn(2000).tolist())
    test = (Hidden("q1", 1, probe_seeded, judge_seeded),)
    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = list(pool.map(lambda _: judge({"probe_seeded": encode(want)}, test, {"q1": 1}), range(16)))
    assert all(scores == {"q1": 1} for scores, _ in runs), [f for _, f in runs if f][:1]


# ----------------------------------------------------------------------------- the sandbox
@pytest.fixture(scope="module")
def grading_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("grading")
    grading_package(root)
    return root


def _notebook(path: Path, *cells: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, path)
    return path


def _build(root: Path) -> LabBuild:
    return LabBuild(root, root, root, root, HIDDEN, {"q1": 3})


def test_sandboxed_submission_is_graded(tmp_path, grading_root):
    require_bwrap()
    nb = _notebook(tmp_path / "s.ipynb", "import otter\ngrader = otter.Notebook()",
                   "def double(x):\n    return 2 * x", 'grader.check("q1")')
    g = grade_submission(nb, _build(grading_root), timeout=60)
    assert (g.status, g.scores) == ("ok", {"q1": 3}), g


def test_sandbox_hides_the_host_and_the_references(tmp_path, grading_root):
    """From inside: no repository, no hidden tests, no network, no writable host folder, no reference."""
    require_bwrap()
    secret = tmp_path / "hidden.py"
    secret.write_text("WRONG_ANSWERS = 'the hidden tests'")
    repo = Path(__file__).resolve().parents[1]
    nb = _notebook(tmp_path / "s.ipynb", textwrap.dedent(f"""
        import os, socket
        seen = []
        for p in [{str(secret)!r}, {str(repo / 'labs')!r}, {str(repo / 'src')!r}, {str(Path(__file__).resolve())!r}]:
            if os.path.exists(p):
                seen.append(p)
        for d in ["/", "/usr"]:             # read-only inside the sandbox
            try:
                open(os.path.join(d, "x.txt"), "w").write("x")
                seen.append("wrote " + d)
            except OSError:
                pass
        for d in [{str(tmp_path)!r}, {str(repo)!r}]:   # checked from outside below: a folder under /tmp
            try:                                       # exists inside only on the sandbox's own tmpfs
                open(os.path.join(d, "x.txt"), "w").write("x")
            except OSError:
                pass
        try:
            socket.create_connection(("pypi.org", 443), timeout=3)
            seen.append("network")
        except OSError:
            pass
        try:
            from lab_utils.fitting.memory import bytes_per_parameter
            seen.append("reference")
        except ImportError:
            pass
        import lab_utils
        seen.append(lab_utils.__file__)
        def double(x):
            return seen
        """))
    g = grade_submission(nb, _build(grading_root), timeout=60)
    assert g.failed["judge_double"].startswith("wrong: expected [6, -2], got [['/grading/lab_utils/__init__.py'], "
                                               "['/grading/lab_utils/__init__.py']]"), g
    assert not (tmp_path / "x.txt").exists() and not (repo / "x.txt").exists()


def test_snooping_detector_finds_a_leaky_sandbox(tmp_path, grading_root, monkeypatch):
    """The prove step's snooping notebook scores 0 in the sandbox; without it, it finds the hidden
    tests and scores: the detector works (a planted broken sandbox)."""
    require_bwrap()
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "hidden.py").write_text("judge_double = 'WRONG_ANSWERS'")
    cells = [snoop_cell([tmp_path / "lab"], ["judge_double"]), "if LEAK:\n    def double(x):\n        return 2 * x"]
    nb = _notebook(tmp_path / "snoop.ipynb", *cells)
    assert grade_submission(nb, _build(grading_root), timeout=120).scores == {"q1": 0}
    monkeypatch.setattr(grade_module, "bwrap_command", lambda bwrap, root, nb, out, cmd, threads: [
        "env", f"PYTHONPATH={root}", "bash", "-c", f"ln -sf {nb} /tmp/_leak.ipynb; "
        f"sed 's#/job/submission.ipynb#/tmp/_leak.ipynb#; s#/out/#{out}/#' | " + " ".join(cmd)])
    try:
        assert grade_submission(nb, _build(grading_root), timeout=120).scores == {"q1": 3}
        assert (tmp_path / "lab" / "written-by-a-submission.txt").exists()
    finally:  # the unsandboxed run wrote into the host's /tmp, as a leaky sandbox would
        Path("/tmp/written-by-a-submission.txt").unlink(missing_ok=True)
        Path("/tmp/_leak.ipynb").unlink(missing_ok=True)


def test_hanging_probe_is_stopped_and_the_rest_graded(tmp_path, grading_root):
    require_bwrap()
    slow = (Hidden("q1", 2, probe_double, judge_double, timeout=2), HIDDEN[1])
    nb = _notebook(tmp_path / "s.ipynb", "import time\ndef double(x):\n    if x == 3:\n        time.sleep(60)\n"
                   "    return 2 * x")
    g = grade_submission(nb, LabBuild(grading_root, grading_root, grading_root, grading_root, slow, {"q1": 3}),
                         timeout=60)
    assert g.status == "ok" and g.seconds < 30 and "ProbeTimeout" in g.failed["judge_double"], g


# ----------------------------------------------------------------------------- gradebook and report
def test_gradebook_and_report(tmp_path):
    b = LabBuild(tmp_path, tmp_path, tmp_path, tmp_path, HIDDEN + (Hidden("q2", 2, probe_double, judge_double),),
                 {"q1": 3.0, "q2": 2.0})
    grades = [Grade("alice.ipynb", {"q1": 3.0, "q2": 2.0}), Grade("bob.ipynb", {"q1": 0.0, "q2": 0.0}, "timeout",
                                                                  detail="killed after the 60 s limit",
                                                                  failed={"judge_double": "wrong: got 5"})]
    write_gradebook(grades, b, tmp_path / "g.csv")
    assert (tmp_path / "g.csv").read_text().splitlines() == [
        "submission,q1,q2,total,max,status", "alice.ipynb,3,2,5,5,ok", "bob.ipynb,0,0,0,5,timeout"]
    report = write_report(grades, b, tmp_path / "g.csv").read_text()
    assert "| q1 | 3.00 | 1.50 | 1.50 | 1 | 0 | 1 | judge_double | 1 | wrong: got 5 |" in report
    assert "bob.ipynb: timeout (killed after the 60 s limit)" in report
    assert (tmp_path / "g.scores.png").stat().st_size > 1000


def test_shortcuts_on_different_questions_share_a_submission():
    packed = pack_shortcuts({"a": {"q1": "x"}, "b": {"q1": "y", "q2": "y"}, "c": {"q2": "z"}, "d": {"q3": "w"}})
    assert packed == [(["a", "c", "d"], {"q1": "x", "q2": "z", "q3": "w"}), (["b"], {"q1": "y", "q2": "y"})]
