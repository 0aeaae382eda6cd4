# The first kernel module loads the OpenMP runtime: with sleeping idle threads (see
# fastnmf._threads.loading_openmp).
from .._threads import loading_openmp

with loading_openmp():
    from . import _common  # noqa: F401
del loading_openmp
