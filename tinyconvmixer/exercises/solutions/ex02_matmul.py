"""Exercise 2, a reference solution: the gradient of a matrix product."""


def matmul_backward(a, b, g):
    """(dL/da, dL/db) for c = a @ b with 2-D arrays a (n, k), b (k, m) and g = dL/dc (n, m)."""
    ga = g @ b.T          # dA[i, p] = sum_j g[i, j] B[p, j]
    gb = a.T @ g          # dB[p, j] = sum_i A[i, p] g[i, j]
    return ga, gb
