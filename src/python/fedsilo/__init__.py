"""fedsilo: cross-silo federated learning for HPC clusters.

The PyTorch binding is ``fedsilo.torch``: the silo's training loop is the user's PyTorch code;
the exchange (compression, secure aggregation), the server step, checkpoints, requeue, metrics
and the Slurm integration are fedsilo's C++ core (``fedsilo._core``).
"""

from ._core import version as __version__  # noqa: F401


class FederationError(RuntimeError):
    """An error every rank of the federation agreed on (each rank raises the same message).

    ``exit_code`` is the code ``fedsilo train`` would exit with (2: bad input, 5: stopped for
    a requeue, 7: cancelled, 1: anything else).
    """

    def __init__(self, message, exit_code=1):
        super().__init__(message)
        self.exit_code = exit_code
