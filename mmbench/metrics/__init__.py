"""Metric functions: pure, over arrays and lists, one module per task kind.

They never import a plugin or a dataset adapter; task runners call them.
"""
