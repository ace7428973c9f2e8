"""The Jacobi-Legendre charge-density model: radial functions, harmonics, the descriptor and its
compiled kernels, the model file."""
