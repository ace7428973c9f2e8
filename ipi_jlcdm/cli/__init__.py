"""Command-line front ends: thin wrappers over library functions, one module per command."""
