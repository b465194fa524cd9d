"""
The fleet console: a static single-page app served by salt-api (rest_cherrypy)
from these files, signing in with eauth and calling runner functions over
salt-api with the token in the ``X-Auth-Token`` header.

rest_cherrypy serves ``index.html`` (:data:`INDEX`) for every path below
``app_path`` and the ``static/`` folder (:data:`STATIC`) below
``static_path``; :func:`rest_cherrypy_settings` gives the four options, which
the formula's central role writes into the master config (pillar
``kiosk:api:console``, on by default). Nothing is fetched from the internet:
every file is in this package and ``index.html`` allows scripts, styles and
requests from its own origin only (a Content-Security-Policy ``meta`` tag;
rest_cherrypy sets no such header itself).

Config keys: none of its own; ``kiosk:novnc_url`` (master config) is where the
kiosk page's noVNC button points (see ``kiosk_vnc.link``).
Events fired: none (the runner functions it calls fire theirs).
"""

import os

HERE = os.path.dirname(os.path.abspath(__file__))

#: The page rest_cherrypy serves for every path below :data:`APP_PATH`.
INDEX = os.path.join(HERE, "index.html")

#: The scripts and styles, served below :data:`STATIC_PATH`.
STATIC = os.path.join(HERE, "static")

#: Where the console is opened: ``https://<salt-api>/console``.
APP_PATH = "/console"

#: Where ``index.html`` loads its scripts and styles from.
STATIC_PATH = "/console-static"


def rest_cherrypy_settings():
    """The ``rest_cherrypy`` options that serve the console from this installed package."""
    return {"app": INDEX, "app_path": APP_PATH, "static": STATIC, "static_path": STATIC_PATH}
