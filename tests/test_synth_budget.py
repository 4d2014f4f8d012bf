"""No synthesizer spends more ε than asked, on any constructor-argument path (and PATE never trains on no vote)."""

import warnings

import pytest
import torch
from test_synth_data import small_frame, small_schema

from lab_utils.synth.dpgan import DPGAN
from lab_utils.synth.mwem import MWEM
from lab_utils.synth.pategan import PATEGAN
from lab_utils.synth.quail import QUAIL

torch.set_num_threads(1)
GAN = dict(iterations=2, batch_size=16, hidden=8)
CT = dict(iterations=2, batch_size=16, embedding_dim=8, hidden=8)


def _dpctgan(**kw):
    pytest.importorskip("ctgan")
    from lab_utils.synth.dpctgan import DPCTGAN
    return DPCTGAN(**{**CT, **kw})


def _patectgan(**kw):
    pytest.importorskip("ctgan")
    from lab_utils.synth.patectgan import PATECTGAN
    return PATECTGAN(**{**CT, "teachers": 3, "teacher_steps": 1, **kw})


PATHS = {
    "MWEM default": lambda: MWEM(iterations=3),
    "MWEM way=1": lambda: MWEM(iterations=3, way=1),
    "MWEM way=3": lambda: MWEM(iterations=2, way=3),
    "MWEM grouped (max_cells=10)": lambda: MWEM(iterations=2, max_cells=10),
    "MWEM output=average": lambda: MWEM(iterations=3, output="average"),
    "DPGAN default": lambda: DPGAN(n_critic=2, **GAN),
    "DPGAN n_critic=1, clip 0.5": lambda: DPGAN(n_critic=1, grad_clip=0.5, **GAN),
    "PATEGAN lam=None": lambda: PATEGAN(teachers=3, teacher_steps=1, **GAN),
    "PATEGAN lam given": lambda: PATEGAN(teachers=3, teacher_steps=1, lam=0.004, **GAN),
    "PATEGAN student_steps=3": lambda: PATEGAN(teachers=3, teacher_steps=1, student_steps=3, **GAN),
    "PATEGAN logistic teachers": lambda: PATEGAN(teachers=3, teacher="logistic", **GAN),
    "DP-CTGAN prep 0.1": lambda: _dpctgan(prep_share=0.1),
    "DP-CTGAN prep 0.7": lambda: _dpctgan(prep_share=0.7),
    "DP-CTGAN sigma cap 0.8, 40 steps": lambda: _dpctgan(max_noise_multiplier=0.8, iterations=40),
    "DP-CTGAN no sigma cap": lambda: _dpctgan(max_noise_multiplier=None),
    "PATE-CTGAN lam=None": lambda: _patectgan(),
    "PATE-CTGAN lam given, prep 0.3": lambda: _patectgan(lam=0.004, prep_share=0.3),
    "QUAIL(MWEM) split 0.7": lambda: QUAIL(lambda: MWEM(iterations=2), target="y", split=0.7, epochs=1),
    "QUAIL(DPGAN) split 0.3": lambda: QUAIL(lambda: DPGAN(n_critic=1, **GAN), target="y", split=0.3, epochs=1),
}


@pytest.mark.parametrize("epsilon", [0.7, 3.0])
@pytest.mark.parametrize("path", list(PATHS))
def test_epsilon_spent_never_exceeds_the_request(path, epsilon):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Opacus' "optimal order is the largest alpha"
        synth = PATHS[path]().fit(small_frame(), epsilon, 1e-5, schema=small_schema())
    assert 0 < synth.epsilon_spent <= epsilon, (path, synth.epsilon_spent)
    if hasattr(synth, "accountant"):  # PATE: every planned vote was taken, none beyond the plan
        steps = getattr(synth, "student_steps", 1)
        assert synth.accountant.queries == synth.iterations * steps * synth.batch_size > 0


@pytest.mark.parametrize("make", [lambda: PATEGAN(teachers=3, teacher_steps=1, lam=0.5, **GAN),
                                  lambda: _patectgan(lam=0.5)])
def test_pate_lambda_that_cannot_pay_is_refused_before_training(make):
    with pytest.raises(ValueError, match="cannot pay for the 32 planned teacher votes"):
        make().fit(small_frame(), 1.0, 1e-5, schema=small_schema())
