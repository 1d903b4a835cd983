"""Gradient checking: backward() against central finite differences, op by op.

    python -m tinyconvmixer.gradcheck                 every op, in float64, in a few seconds
    python -m tinyconvmixer.gradcheck --inject NAME   plant a bug: which checks catch it?

    check.py    gradcheck(): the check itself (start here)
    cases.py    the inputs each op is checked on
    parity.py   the same ops beside PyTorch, and AdamW beside torch.optim.AdamW
    bugs.py     a catalogue of bugs students write, planted with engine/dispatch.py
    suite.py    the command: the kinds of check, the table, --inject, --mystery
"""

from .check import GradcheckResult, InputReport, gradcheck

__all__ = ["gradcheck", "GradcheckResult", "InputReport", "main"]


def main(argv=None):
    """`python -m tinyconvmixer.gradcheck` (suite.py)."""
    from .suite import main as suite_main
    return suite_main(argv)
