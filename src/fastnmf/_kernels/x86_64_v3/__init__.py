"""The kernel modules compiled for one instruction-set level (see fastnmf/_kernels/__init__.py)."""
