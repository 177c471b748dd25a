"""Inference: fits, test statistics, limits, scans."""
