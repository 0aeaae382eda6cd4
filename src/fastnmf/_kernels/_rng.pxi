# The sweep order's random numbers (SplitMix64) and permutations.
# Included by _common.pyx (one module: the cdef functions are declared in _common.pxd).


cdef inline uint64_t splitmix64(uint64_t* state) noexcept nogil:
    state[0] += 0x9E3779B97F4A7C15ULL
    cdef uint64_t z = state[0]
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL
    return z ^ (z >> 31)


cdef void next_permutation(Py_ssize_t k, Py_ssize_t* perm, bint shuffle,
                           uint64_t* state) noexcept nogil:
    """The order of one sweep: 0..k-1, or a Fisher–Yates shuffle of it from SplitMix64."""
    cdef Py_ssize_t i, j, tmp
    for i in range(k):
        perm[i] = i
    if shuffle:
        for i in range(k - 1, 0, -1):
            j = <Py_ssize_t> (splitmix64(state) % <uint64_t> (i + 1))
            tmp = perm[i]
            perm[i] = perm[j]
            perm[j] = tmp
