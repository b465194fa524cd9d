"""
salt-kiosk execution module for kiosks and relays.

Configuration (minion config, ``kiosk:`` key): see :mod:`salt_kiosk.config`.

Events fired: none.
"""

try:
    import salt_kiosk
    from salt_kiosk import files

    HAS_LIB = True
except ImportError as _exc:  # the library travels with pip, not with saltutil.sync_all
    HAS_LIB = False
    _IMPORT_ERROR = str(_exc)

__virtualname__ = "kiosk"


def __virtual__():
    if not HAS_LIB:
        return (False, f"the salt_kiosk library is not importable ({_IMPORT_ERROR}); install it with pip install salt-kiosk")
    return __virtualname__


def md5(path):
    """
    Return the md5 checksum (hex) of a file on this minion.

    path
        Absolute path of a regular file.

    CLI Example:

    .. code-block:: bash

        salt 'kiosk-*' kiosk.md5 /opt/kiosk/current/app.tar.gz
    """
    return files.md5_file(str(path))


def version():
    """
    Return the version of salt-kiosk serving this module.

    CLI Example:

    .. code-block:: bash

        salt '*' kiosk.version
    """
    return salt_kiosk.__version__
