"""Exercise 2: the gradient of a matrix product (walkthrough Step 5).

C = A @ B for A of shape (n, k) and B of shape (k, m); backward gets
g = dL/dC, of shape (n, m), and returns (dL/dA, dL/dB).

Derive, in index notation, not by matching shapes. Write

    C[i, j] = sum over p of A[i, p] * B[p, j].

A[i, p] appears in C[i, j] for every j, with the factor B[p, j], so

    dL/dA[i, p] = sum over j of g[i, j] * B[p, j].

Which matrix product is that? Do the same for dL/dB[p, j]: which C[i, j]
contain B[p, j], and with which factor?

(Why not guess from shapes: dA must be (n, k), g is (n, m), B is (k, m), so
"g @ B^T is the only product with the right shape". For square matrices
g @ B has the right shape too, and is wrong. The check has a square case.)

Check: python -m tinyconvmixer.exercises check matmul

Hints:
  1. A sum over j of X[i, j] * Y[p, j] is (X @ Y.T)[i, p].
  2. dL/dB[p, j] = sum over i of A[i, p] * g[i, j].
  3. ndarray.T, or .swapaxes(-1, -2), transposes.
"""


def matmul_backward(a, b, g):
    """(dL/da, dL/db) for c = a @ b with 2-D arrays a (n, k), b (k, m) and g = dL/dc (n, m)."""
    raise NotImplementedError("matmul_backward: not written yet (exercise 2; its docstring says how)")
