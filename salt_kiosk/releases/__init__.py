"""Releases on the master of masters: the catalogue of published versions
(``catalogue``), the hop-1 file server (``serve``), staging on the relays
(``stage``) and rollouts to kiosks with their status (``rollout``). The node
side of a release is in ``salt_kiosk.node.release_stage`` (relays) and
``salt_kiosk.node.release_install`` (kiosks)."""
