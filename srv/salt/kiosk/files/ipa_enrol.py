"""
FreeIPA enrolment of a kiosk, the one-time password read from standard input.

Installed by the kiosk formula (srv/salt/kiosk/kiosk.sls) as
``<kiosk:paths:sbin>/kiosk-ipa-enrol`` and run by its ``cmd.run`` state with
the OTP on stdin:

    python3 -I kiosk-ipa-enrol --domain D --server S --hostname H  < otp

``ipa-client-install`` accepts the password only as an option (``-w`` /
``--password``; ``-W`` prompts and is refused with ``--unattended``). Running
it as a program would put the OTP on its command line, readable by every local
user in ``ps`` and ``/proc/<pid>/cmdline``. This helper runs the FreeIPA client
installer inside its own process instead (what ``/usr/sbin/ipa-client-install``
itself does: ``ipaclient.install.ipa_client_install.run()``), with the
password only in the in-process ``sys.argv``; no process this helper or Salt
starts carries it on its command line. (FreeIPA's own helpers, started by the
installer during the join, are outside this helper's reach.)

Exit status: the installer's, or 2 when no password arrives on stdin or the
FreeIPA client is not importable with this interpreter.
"""

import sys


def main(args):
    otp = sys.stdin.readline().strip()
    if not otp:
        sys.stderr.write("kiosk-ipa-enrol: no one-time password on standard input\n")
        return 2
    try:
        from ipaclient.install import ipa_client_install  # pylint: disable=import-outside-toplevel
    except ImportError as exc:
        sys.stderr.write(
            f"kiosk-ipa-enrol: the FreeIPA client is not importable with {sys.executable} ({exc}); "
            "install the FreeIPA client package or set kiosk:freeipa:python to its interpreter\n"
        )
        return 2
    sys.argv = ["ipa-client-install", "--unattended", *args, "--password", otp]
    del otp
    ipa_client_install.run()  # exits with the installer's status
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
