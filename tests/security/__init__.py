"""Least privilege, proven: the synthesized role policies read as data, and the functions' real
code run against a moto server that enforces them."""
