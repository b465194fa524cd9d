"""The kiosk database: every table (``schema``), the versioned migrations
(``migrations``), engines and the store handle (``store``), least-privilege
accounts (``accounts``). Master side only."""
