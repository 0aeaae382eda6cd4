"""fastnmf: fast non-negative matrix factorization with Cython kernels that release the GIL."""

from ._api import nmf
from ._batch import BatchError, nmf_batch
from ._result import NMFResult

__version__ = "0.1.0"
__all__ = ["nmf", "nmf_batch", "NMFResult", "BatchError", "__version__"]
