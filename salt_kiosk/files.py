"""
File helpers shared by delivery and release code.
"""

import hashlib
import os

from salt_kiosk.errors import KioskInputError

CHUNK = 1024 * 1024


def md5_file(path):
    """
    Return the hex md5 of the file at ``path``, read in 1 MiB chunks.
    """
    if not os.path.isfile(path):
        raise KioskInputError(f"{path!r} does not exist or is not a regular file")
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
