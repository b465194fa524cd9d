"""
The console's static files: nothing loaded from elsewhere, nothing inserted
as HTML, every string in strings.js, and the rest_cherrypy settings pointing
at the files of this package.
"""

import os
import re

from salt_kiosk import console

JS = os.path.join(console.STATIC, "console.js")
STRINGS = os.path.join(console.STATIC, "strings.js")


def read(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def test_settings_point_at_the_packaged_files():
    settings = console.rest_cherrypy_settings()
    assert settings == {
        "app": console.INDEX,
        "app_path": "/console",
        "static": console.STATIC,
        "static_path": "/console-static",
    }
    for name in ("console.js", "strings.js", "console.css"):
        assert os.path.isfile(os.path.join(settings["static"], name))
    index = read(settings["app"])
    for name in ("console.js", "strings.js", "console.css"):
        assert f"{console.STATIC_PATH}/{name}" in index


def test_the_page_allows_only_its_own_origin():
    index = read(console.INDEX)
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', index).group(1)
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'" and directives["connect-src"] == "'self'"
    assert "unsafe" not in policy
    assert "<script>" not in index and "style=" not in index  # nothing inline


def test_no_remote_address_and_no_html_insertion():
    for name in ("index.html", "static/console.js", "static/strings.js", "static/console.css"):
        # The SVG namespace is a name, not an address anything is fetched from.
        text = read(os.path.join(os.path.dirname(console.INDEX), name)).replace('"http://www.w3.org/2000/svg"', "")
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text, re.I), name
        assert "@import" not in text and "url(" not in text, name
    code = read(JS)
    for forbidden in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert forbidden not in code, forbidden
    # The token travels in a header, never with cookies.
    assert code.count('credentials: "omit"') >= 3 and "document.cookie" not in code


def test_every_string_the_console_shows_is_in_strings_js():
    strings = read(STRINGS)
    english = set(re.findall(r'^\s+"([a-z]+\.[a-zA-Z_.]+)":', strings, re.M))
    code = read(JS)
    used = set(re.findall(r'\bt\("([a-z]+\.[a-zA-Z_.]*[a-zA-Z_])"', code))
    assert used and used - english == set()
    # Keys built from a prefix: power states and the kiosk page's fields.
    for state in ("on", "off", "unknown", "unswept"):
        assert f"power.{state}" in english
    fields = re.search(r"const fields = \[([^\]]+)\]", code).group(1)
    for field in re.findall(r'"(\w+)"', fields):
        assert f"kiosk.f.{field}" in english
    for action in ("wake", "shutdown", "job"):
        assert f"action.{action}" in english
