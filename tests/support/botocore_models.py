"""One parsed copy of each botocore data file per test process.

A function container builds one boto3 session and parses each service model it uses once
(:mod:`functions.core.aws`). The tests start a fresh container for every test
(``reset_clients``), so every test parsed DynamoDB's, S3's and the other models again: the
largest single CPU cost of the suite (py-spy, 2026-12-06). :func:`share` gives every botocore
loader of the process one cache, keyed by the loader's search path as well, so two loaders
share a parsed file only when they would read the same one: what a session already does for
all of its clients. Only the parsing is shared: each session still resolves its own
credentials, region and endpoints from the environment of its test.

So is what each client builds from a parsed endpoint rule set: its tree of rules, about 2 ms of
CPU a client (half of what a new client cost once the handlers' answers were shared, see
:mod:`tests.support.botocore_hooks`). The tree never changes once built, and a client's
endpoint provider only reads it.
"""

from __future__ import annotations

from typing import Any

import botocore.endpoint_provider
import botocore.loaders
import botocore.session

_MODELS: dict[tuple[tuple[str, ...], tuple[Any, ...]], Any] = {}
_create_loader = botocore.loaders.create_loader
# The rule sets built, by the identity of the parsed data they came from (kept alongside, so
# an id is never reused while its entry lives).
_RULE_SETS: dict[tuple[int, ...], tuple[tuple[Any, ...], Any]] = {}
_RuleSet = botocore.endpoint_provider.RuleSet


class _SharedCache:
    """The mapping ``botocore.loaders.instance_cache`` reads and writes as ``loader._cache``."""

    def __init__(self, loader: botocore.loaders.Loader) -> None:
        self._loader = loader

    def _key(self, key: tuple[Any, ...]) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        # boto3 appends its own data folder after creating the loader: read the path per call.
        return tuple(self._loader.search_paths), key

    def __contains__(self, key: tuple[Any, ...]) -> bool:
        return self._key(key) in _MODELS

    def __getitem__(self, key: tuple[Any, ...]) -> Any:
        return _MODELS[self._key(key)]

    def __setitem__(self, key: tuple[Any, ...], value: Any) -> None:
        _MODELS[self._key(key)] = value


def _sharing_loader(search_path_string: str | None = None) -> botocore.loaders.Loader:
    loader = _create_loader(search_path_string)
    loader._cache = _SharedCache(loader)  # what instance_cache reads
    return loader


def _shared_rule_set(**data: Any) -> Any:
    """What ``EndpointProvider`` calls as ``RuleSet(**ruleset_data, partitions=...)``."""
    parts = tuple(data[name] for name in sorted(data))
    key = tuple(map(id, parts))
    known = _RULE_SETS.get(key)
    if known is None or any(a is not b for a, b in zip(known[0], parts, strict=True)):
        known = _RULE_SETS[key] = (parts, _RuleSet(**data))
    return known[1]


def share() -> None:
    """Make every botocore session created from now on in this process share parsed files and
    the endpoint rule sets built from them."""
    botocore.session.create_loader = _sharing_loader
    botocore.endpoint_provider.RuleSet = _shared_rule_set
