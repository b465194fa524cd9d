"""
noVNC remote viewing: websockify token files from the kiosk inventory.

Point websockify at the directory (``websockify --token-plugin TokenFile
--token-source <kiosk:vnc_token_dir> 6080 ...``) and open
``vnc.html?path=websockify?token=<kiosk code>`` in noVNC.

Configuration (master config): ``kiosk:db``, ``kiosk:campuses``,
``kiosk:vnc_token_secret`` (optional: tokens become ``<code>-<hmac>``) and:

``kiosk:vnc_token_dir``
    Required: the directory token files are written to (no default).
    ``tokens`` writes there, or into the ``out_dir`` it is given when that
    resolves (``realpath``) inside it. A directory inside Salt's configuration
    (the master's config directory, ``/etc/salt``, ``pki_dir``) is refused,
    even when ``kiosk:vnc_token_dir`` points there: a token file must never be
    read as Salt configuration.

``kiosk:novnc_url``
    The address of noVNC's ``vnc.html`` (``http://`` or ``https://``) that
    ``link`` (the console's noVNC button) points at.

Every token line is checked when it is written (code, IPv4 address, port
1-65535); a kiosk whose inventory row fails is skipped with the reason.

Events fired: none.
"""

try:
    from salt_kiosk import config as kconfig
    from salt_kiosk import vnc
    from salt_kiosk.db import store
    from salt_kiosk.errors import refusals_exit_nonzero

    HAS_LIB = True
except ImportError as _exc:  # the library travels with pip, not with saltutil.sync_all
    HAS_LIB = False
    _IMPORT_ERROR = str(_exc)

    def refusals_exit_nonzero(func):  # __virtual__ refuses the module; the name must still exist
        return func


__virtualname__ = "kiosk_vnc"


def __virtual__():
    if not HAS_LIB:
        return (
            False,
            f"the salt_kiosk library is not importable ({_IMPORT_ERROR}); install it with pip install salt-kiosk",
        )
    return __virtualname__


@refusals_exit_nonzero
def tokens(out_dir=None, campus=None):
    """
    Write one websockify token file per campus (``<campus>.conf``, lines
    ``token: ip:port``), atomically, into ``kiosk:vnc_token_dir`` (master
    config) or ``out_dir``, which must resolve inside it. Kiosks without an IP
    or a VNC port, or whose inventory row fails the checks, are reported under
    ``skipped`` with the reason.

    out_dir
        Optional: a directory inside ``kiosk:vnc_token_dir`` (default: that directory).

    campus
        Optional: write only this campus's file.

    CLI Example:

    .. code-block:: bash

        salt-run kiosk_vnc.tokens
        salt-run kiosk_vnc.tokens campus=east
        salt-run kiosk_vnc.tokens /var/lib/kiosk/websockify-tokens/east-only campus=east
    """
    return vnc.tokens(
        __opts__, store.open_store(__opts__), out_dir=out_dir, campus=campus, campuses=list(kconfig.campuses(__opts__))
    )


@refusals_exit_nonzero
def link(kiosk):
    """
    The noVNC address that views one kiosk: ``kiosk:novnc_url`` with the
    kiosk's websockify token (``path=websockify?token=...``). The console's
    kiosk page opens it. Refused when ``kiosk:novnc_url`` is not set or the
    kiosk has no valid IP and VNC port in the inventory.

    kiosk
        A minion id or kiosk code.

    CLI Example:

    .. code-block:: bash

        salt-run kiosk_vnc.link kiosk-e1
    """
    return vnc.viewer_link(__opts__, store.open_store(__opts__), kiosk)
