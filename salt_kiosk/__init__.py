"""
salt-kiosk: run fleets of self-service kiosks with Salt.

The ``salt_kiosk`` package is the library behind the Salt loader modules in
``_modules``, ``_runners``, ``_states`` and friends. Every piece of logic lives
here and can be imported and tested without Salt daemons; the loader modules only
check arguments, read ``__opts__``/``__pillar__`` and shape returns.
"""

__version__ = "0.1.0"
