"""Lambda source code of the four functions: authorizer, main (REST), websocket and cleanup.

Layers, each importing only the ones below it (``tests/functions/test_layers.py`` enforces it):
the functions (``authorizer``, ``main``, ``websocket``, ``cleanup``) → ``chat`` → ``data`` →
``core`` → ``domain`` → ``contract``. Each function's zip ships the modules its handler
imports, in this layout, so handlers import ``functions.<name>`` in Lambda exactly as they do
in the tests. See docs/code-layout.md.
"""
