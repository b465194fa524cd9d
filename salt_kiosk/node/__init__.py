"""The node side: code that runs on kiosks and relays. It imports the standard
library, Salt's minion-side utilities, its own drivers and only
``salt_kiosk.errors``, ``validate``, ``config``, ``files`` and ``clock`` of the
library; never the database, the power logic or ``salt.client``
(``tests/unit/test_layout.py`` checks it)."""
