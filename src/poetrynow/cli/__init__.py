"""Thin argparse front ends, one module per command; the work lives elsewhere."""
