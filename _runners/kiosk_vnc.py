"""
noVNC remote viewing: websockify token files from the kiosk inventory.

Point websockify at the directory (``websockify --token-plugin TokenFile
--token-source <out_dir> 6080 ...``) and open
``vnc.html?path=websockify?token=<kiosk code>`` in noVNC.

Configuration (master config): ``kiosk:db``, ``kiosk:campuses``,
``kiosk:vnc_token_secret`` (optional: tokens become ``<code>-<hmac>``).

Events fired: none.
"""

try:
    from salt_kiosk import config as kconfig
    from salt_kiosk import store
    from salt_kiosk import vnc

    HAS_LIB = True
except ImportError as _exc:  # the library travels with pip, not with saltutil.sync_all
    HAS_LIB = False
    _IMPORT_ERROR = str(_exc)

__virtualname__ = "kiosk_vnc"


def __virtual__():
    if not HAS_LIB:
        return (False, f"the salt_kiosk library is not importable ({_IMPORT_ERROR}); install it with pip install salt-kiosk")
    return __virtualname__


def tokens(out_dir, campus=None):
    """
    Write one websockify token file per campus (``<out_dir>/<campus>.conf``,
    lines ``token: host:port``), atomically. Kiosks without an IP or a VNC port
    are reported under ``skipped`` with the reason.

    CLI Example:

    .. code-block:: bash

        salt-run kiosk_vnc.tokens /etc/websockify/tokens
        salt-run kiosk_vnc.tokens /etc/websockify/tokens campus=east
    """
    secret = (__opts__.get("kiosk") or {}).get("vnc_token_secret")
    return vnc.write_tokens(store.open_store(__opts__), out_dir, campus=campus, secret=secret,
                            campuses=list(kconfig.campuses(__opts__)))
