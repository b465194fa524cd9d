"""
Publish rights of the caller of a runner, checked with Salt's own ACL
machinery (master side).

A runner that publishes a function or a target its caller chooses
(``kiosk_jobs.run``) must not let a salt-api user do through the runner what
Salt would refuse them directly. :func:`check_publish` computes the caller's
access list the way the master does for a publish (``salt.auth.LoadAuth``'s
``get_auth_list`` per ``external_auth`` backend, ``publisher_acl`` for local
system users, ``publisher_acl_blacklist`` for everyone) and asks
``salt.utils.minions.CkMinions.auth_check`` whether that list allows the
function, with its arguments, on every targeted minion.

The caller is the runner's ``__user__``: the eauth user name for salt-api and
``salt-run --eauth`` calls, the local user for ``salt-run`` (``root``, or
``sudo_<name>`` under sudo), ``Reactor`` for the master's reactor. A runner
cannot tell an eauth login from a local one by the name alone, so a name that
any ``external_auth`` backend lists (by name, by a matching glob, by ``*``) is
always checked against its eauth rights, under every backend that lists it.
Names no backend lists: the master's own user (``root`` or the master's
``user``), ``sudo_<name>`` and ``Reactor`` keep every right, as on the
``salt`` command line; other local users need a ``publisher_acl`` entry.

Targets in ACL entries (``{'kiosk-*': ['test.ping']}``) are matched against the
minion ids the master knows (its accepted keys) and the kiosks of the
inventory: the master of masters holds no keys of the kiosks behind its
syndics, so Salt's own matcher alone would see none of them. Grain and pillar
targets in an ACL match only what the master's cache holds (for kiosks behind
syndics: nothing), so such entries never grant anything here.
"""

import logging

from salt_kiosk.errors import KioskAccessError

log = logging.getLogger(__name__)

#: Callers that are the master itself (besides the master's own user).
MASTER_CALLERS = ("root", "Reactor")


def _ckminions(opts, universe):
    import salt.utils.minions  # pylint: disable=import-outside-toplevel

    known = set(universe)

    class InventoryCkMinions(salt.utils.minions.CkMinions):
        """Salt's matcher over the accepted keys plus the inventory's kiosks."""

        def _pki_minions(self):
            return set(super()._pki_minions()) | known

        def _check_glob_minions(self, expr, greedy, minions=None):
            return super()._check_glob_minions(expr, greedy, minions=minions or sorted(self._pki_minions()))

        def _check_list_minions(self, expr, greedy, ignore_missing=False, minions=None):
            return super()._check_list_minions(
                expr, greedy, ignore_missing=ignore_missing, minions=minions or sorted(self._pki_minions())
            )

        def _check_pcre_minions(self, expr, greedy, minions=None):
            return super()._check_pcre_minions(expr, greedy, minions=minions or sorted(self._pki_minions()))

    return InventoryCkMinions(opts)


def _listed(config, user):
    import salt.utils.stringutils  # pylint: disable=import-outside-toplevel

    return any(
        isinstance(key, str)
        and not key.startswith("^")
        and not key.endswith("%")
        and (key == "*" or salt.utils.stringutils.expr_match(key, user))
        for key in config
    )


def access_lists(opts, user, ckminions=None):
    """
    The caller's access lists: ``{source: auth_list}`` with one entry per
    ``external_auth`` backend that lists ``user`` and, for a local user no
    backend lists, its ``publisher_acl`` entry. Empty when nothing lists
    ``user``.
    """
    import salt.auth  # pylint: disable=import-outside-toplevel

    lists = {}
    external = opts.get("external_auth") or {}
    loadauth = None
    for backend, config in external.items():
        if not isinstance(config, dict):
            continue
        if loadauth is None:
            loadauth = salt.auth.LoadAuth(opts, ckminions=ckminions)
        auth_list = loadauth.get_auth_list({"eauth": backend, "username": user})
        if auth_list or _listed(config, user):
            lists[f"external_auth:{backend}"] = list(auth_list or [])
    if not lists:
        acl = opts.get("publisher_acl") or {}
        if isinstance(acl, dict) and _listed(acl, user):
            import salt.utils.minions  # pylint: disable=import-outside-toplevel
            import salt.utils.user  # pylint: disable=import-outside-toplevel

            groups = salt.utils.user.get_group_list(user) if not user.startswith("sudo_") else []
            checker = ckminions or salt.utils.minions.CkMinions(opts)
            lists["publisher_acl"] = checker.fill_auth_list(acl, user, groups)
    return lists


def is_master_caller(opts, user):
    """True for the master itself: its own user, ``sudo_<name>``, the reactor."""
    return user in MASTER_CALLERS or user == opts.get("user") or str(user).startswith("sudo_")


def check_publish(opts, user, fun, arg, minions, universe=()):
    """
    Raise :class:`~salt_kiosk.errors.KioskAccessError` unless ``user`` may
    publish ``fun`` with ``arg`` to every minion of ``minions``.

    ``universe``: minion ids the master cannot see but that ACL targets should
    match (the inventory's kiosks). Return the sources that allowed the call
    (``["master"]`` for the master's own callers).
    """
    import salt.acl  # pylint: disable=import-outside-toplevel

    user = str(user or "UNKNOWN")
    minions = sorted(set(minions))
    blacklist = salt.acl.PublisherACL(opts.get("publisher_acl_blacklist") or {})
    if blacklist.user_is_blacklisted(user) or blacklist.cmd_is_blacklisted(fun):
        raise KioskAccessError(
            f"user {user!r} may not publish {fun!r}: publisher_acl_blacklist refuses it; nothing was run"
        )
    checker = _ckminions(opts, set(universe) | set(minions))
    lists = access_lists(opts, user, ckminions=checker)
    if not lists:
        if is_master_caller(opts, user):
            return ["master"]
        raise KioskAccessError(
            f"user {user!r} holds no publish rights (neither external_auth nor publisher_acl lists it), "
            f"so it may not run {fun!r} on minions; nothing was run"
        )
    args = list(arg or [])
    for source, auth_list in lists.items():
        if checker.auth_check(auth_list, fun, [args], minions, "list", minions=set(minions)):
            continue
        refused = [m for m in minions if not checker.auth_check(auth_list, fun, [args], [m], "list", minions={m})]
        shown = ", ".join(refused[:10]) + (f" and {len(refused) - 10} more" if len(refused) > 10 else "")
        log.warning("kiosk: refused %s publishing %s to %s (%s)", user, fun, shown, source)
        raise KioskAccessError(
            f"user {user!r} may not run {fun!r} with these arguments on {shown or 'these minions'}: "
            f"its {source} rights do not allow it; nothing was run"
        )
    return sorted(lists)
