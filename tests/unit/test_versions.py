"""
Version skew: ``kiosk.version`` reports the loader modules' and the library's
versions, and :mod:`salt_kiosk.versions` lists the nodes where they differ
(publisher faked; the fleet path is tests/integration/test_versions.py).
"""

import ast
import os

import pytest
import salt.config
import salt.loader

import salt_kiosk
from salt_kiosk import loader, versions
from salt_kiosk.errors import KioskInputError


def modules_version():
    """``__kiosk_version__`` of the kiosk execution module shipped with this library."""
    path = os.path.join(loader.loader_dirs()["modules"][0], "kiosk.py")
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    found = [
        node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        for name in node.targets
        if isinstance(name, ast.Name) and name.id == "__kiosk_version__"
    ]
    assert len(found) == 1, "_modules/kiosk.py must set __kiosk_version__ once"
    return found[0]


def test_modules_and_library_versions_agree_in_the_checkout():
    # A release bump changes both salt_kiosk.__version__ and _modules/kiosk.py's __kiosk_version__.
    assert modules_version() == salt_kiosk.__version__


@pytest.fixture
def kiosk_version(tmp_path):
    opts = salt.config.minion_config(str(tmp_path / "minion"))
    opts.update(id="kiosk-e1", cachedir=str(tmp_path / "cache"), grains={}, pillar={})
    return salt.loader.minion_mods(opts)["kiosk.version"]


def test_kiosk_version_reports_modules_and_library(kiosk_version, monkeypatch):
    same = salt_kiosk.__version__
    assert kiosk_version() == {"modules": same, "library": same, "skew": False}
    monkeypatch.setattr(salt_kiosk, "__version__", "9.9.9")  # another library under these modules
    assert kiosk_version() == {"modules": same, "library": "9.9.9", "skew": True}


class FakePublish:
    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    def __call__(self, opts, jobs, timeout):
        self.calls.append((jobs, timeout))
        return dict.fromkeys(jobs, self.answers)


def test_collect_lists_the_skew_and_what_it_cannot_compare():
    publish = FakePublish(
        {
            "relay-e1": {"ret": {"modules": "0.2.0", "library": "0.2.0", "skew": False}, "retcode": 0},
            "kiosk-e1": {"ret": {"modules": "0.2.0", "library": "0.1.0", "skew": True}, "retcode": 0},
            "kiosk-e2": {"ret": "0.1.0", "retcode": 0},  # modules from before the two versions
            "kiosk-w1": {"ret": "'kiosk.version' is not available.", "retcode": 254},  # no library on the node
            "kiosk-w2": {"ret": {"modules": "0.2.0\n\u202eevil", "library": "0.2.0"}, "retcode": 0},
        }
    )
    report = versions.collect({}, "*", timeout=12, publish=publish)
    assert publish.calls == [({"versions": {"tgt": "*", "tgt_type": "glob", "fun": "kiosk.version"}}, 12)]
    assert report["nodes"] == {
        "relay-e1": {"modules": "0.2.0", "library": "0.2.0"},
        "kiosk-e1": {"modules": "0.2.0", "library": "0.1.0"},
        "kiosk-e2": {"modules": None, "library": "0.1.0"},
    }
    assert report["skew"] == ["kiosk-e1"] and report["unknown"] == ["kiosk-e2"]
    assert sorted(report["failed"]) == ["kiosk-w1", "kiosk-w2"]
    assert "is not available" in report["failed"]["kiosk-w1"]
    # A node's answer is data: escaped in the report, never stored as a version.
    assert "\\n\\u202eevil" in report["failed"]["kiosk-w2"] and "\n" not in report["failed"]["kiosk-w2"]


def test_collect_with_no_answer_lists_nothing():
    assert versions.collect({}, "kiosk-*", publish=FakePublish({})) == {
        "nodes": {},
        "skew": [],
        "unknown": [],
        "failed": {},
    }


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"target": "kiosk-* ; rm"}, "is not a minion id glob"),
        ({"target": "*", "timeout": 0}, "timeout 0 is out of range"),
        ({"target": "*", "timeout": "nan"}, "timeout 'nan' is out of range"),
    ],
)
def test_bad_arguments_are_refused_before_publishing(kwargs, message):
    publish = FakePublish({})
    with pytest.raises(KioskInputError, match=message):
        versions.collect({}, publish=publish, **kwargs)
    assert publish.calls == []
