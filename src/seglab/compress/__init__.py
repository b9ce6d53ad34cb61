"""Compression: low-rank factorisation, rank selection, quantisation, export, latency, table."""
