"""A stand-in for the Lambda Python runtime's ``sys.path``: a built function package next to
only what the runtime itself provides (boto3 and its dependencies).

Used to prove that each package is complete (its handler imports with nothing else around)
and to time cold imports in ``make bench``.
"""

from __future__ import annotations

import zipfile
from importlib import metadata
from pathlib import Path

RUNTIME_DISTRIBUTIONS = (
    "boto3",
    "botocore",
    "s3transfer",
    "jmespath",
    "urllib3",
    "python-dateutil",
    "six",
)


def runtime_site(folder: Path) -> Path:
    """A folder of links to boto3 and its dependencies, as installed in this environment."""
    folder.mkdir(parents=True, exist_ok=True)
    for dist in RUNTIME_DISTRIBUTIONS:
        for file in metadata.distribution(dist).files or []:
            top = file.parts[0]
            if (
                top.endswith((".dist-info", "__pycache__"))
                or top == ".."
                or (folder / top).exists()
            ):
                continue
            (folder / top).symlink_to(Path(str(file.locate())).parents[len(file.parts) - 1] / top)
    return folder


def extract(package: Path, folder: Path) -> Path:
    """Unpack a function zip as Lambda does into /var/task."""
    with zipfile.ZipFile(package) as archive:
        archive.extractall(folder)
    return folder
