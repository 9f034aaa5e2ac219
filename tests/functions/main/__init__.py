"""Tests of the main (REST) function: routes, CORS, fuzzed requests."""
