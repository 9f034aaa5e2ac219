"""Project tooling that runs outside the Lambda packages (``make scan``, ``make docs``)."""
