"""What every botocore session of a test process works out again about its event handlers,
worked out once.

A function container builds one session (:mod:`functions.core.aws`); the tests start a fresh
container for every test, and a new session registers about a hundred built-in handlers. For
each, botocore reads the handler's signature (``inspect.getfullargspec``, to check it takes
``**kwargs``) and rewrites its event name through the aliases of renamed services. Both
answers depend only on the handler's function and the event name: a session, its three
clients and their handler copies took about 25 ms of CPU, 16 ms with these answers kept for the
process (this machine). Only those answers are shared: every session still registers its own
handlers, and every client still copies them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from types import CodeType
from typing import Any

import botocore.hooks
from botocore.utils import EVENT_ALIASES

_TAKES_KWARGS: dict[CodeType, bool] = {}
_ALIASED: dict[str, str] = {}  # event name -> name after EVENT_ALIASES
_accepts_kwargs = botocore.hooks.accepts_kwargs
_aliaser_init = botocore.hooks.EventAliaser.__init__


def _sharing_accepts_kwargs(func: Callable[..., Any]) -> bool:
    # Keyed by the function's code, which says whether it takes **kwargs: not by a bound
    # method, which would keep its object (a session, a client) alive for the rest of the
    # process, and not by the function, which Powertools creates anew for every session.
    # Other callables, and a function that declares a signature of its own, are read afresh.
    function = getattr(func, "__func__", func)
    if not inspect.isfunction(function) or hasattr(function, "__signature__"):
        return _accepts_kwargs(func)
    code = function.__code__
    if code not in _TAKES_KWARGS:
        _TAKES_KWARGS[code] = _accepts_kwargs(func)
    return _TAKES_KWARGS[code]


def _sharing_aliaser_init(
    self: botocore.hooks.EventAliaser, event_emitter: Any, event_aliases: Any = None
) -> None:
    _aliaser_init(self, event_emitter, event_aliases)
    if self._event_aliases == EVENT_ALIASES:  # a client's emitter holds a copy of them
        self._alias_name_cache = _ALIASED


def share() -> None:
    """Make every botocore session and client created from now on in this process share
    those answers."""
    botocore.hooks.accepts_kwargs = _sharing_accepts_kwargs
    botocore.hooks.EventAliaser.__init__ = _sharing_aliaser_init  # type: ignore[method-assign]
