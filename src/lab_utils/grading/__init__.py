"""Graded labs: build them, grade submissions in a sandbox, prove each grader tells right from wrong.

=====================  ==========================================================================
``hidden``             hidden tests as probe (in the sandbox) + judge (here) pairs; plain-data codec
``package``            the grading build of ``lab_utils``: graded references and their twins deleted
``build``              ``otter assign`` the student notebook; the grading bundle
``sandbox``            bubblewrap: read-only system, private scratch, no network, limits
``runner``             inside the sandbox: run the cells, then the probes; plain results out
``grade``              one submission, a folder in parallel, the gradebook CSV
``report``             the instructor's per-question summary and score plot
``prove``              solution 100 %, untouched 0, wrong answers and shortcuts lose their points
=====================  ==========================================================================

Command line: ``python -m lab_utils.grading build|grade|prove ...`` (see ``--help``). Students keep
otter's ``grader.check("qN")`` in their notebook for the public tests' feedback.
"""
