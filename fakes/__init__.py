"""The test doubles of the AWS services the functions call, shared by ``tests/`` and ``make dev``.

Both import them from here, so there is one double per service to extend; ``devserver/`` keeps
only the local stack itself and ``tests/support/`` only pytest fixtures and test data.
Nothing here is packaged into a Lambda zip (only ``functions/`` is).
"""
