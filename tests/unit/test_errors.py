"""
``salt_kiosk.errors.refusals_exit_nonzero``: the decorator every public runner
function wears.
"""

import types

import pytest

from salt_kiosk import errors

RUNNER_SOURCE = '''
def act(value):
    """Refuses a bad value; answers with the caller Salt injected."""
    if value == "bad":
        raise KioskInputError("value 'bad' is not accepted; use 'good'")
    if value == "other":
        raise ValueError("not a refusal")
    return {"user": __user__, "value": value}
'''


@pytest.fixture
def runner_module():
    """A runner module as Salt's loader makes one: a module with ``__context__``."""
    module = types.ModuleType("kiosk_fake_runner")
    module.__dict__["__context__"] = {}
    module.__dict__["KioskInputError"] = errors.KioskInputError
    exec(compile(RUNNER_SOURCE, "kiosk_fake_runner.py", "exec"), module.__dict__)  # noqa: S102
    module.act = errors.refusals_exit_nonzero(module.act)
    return module


def test_a_refusal_is_an_error_with_retcode_1(runner_module):
    ret = runner_module.act("bad")
    assert ret == {"error": "value 'bad' is not accepted; use 'good'", "retcode": 1}
    assert runner_module.__context__["retcode"] == 1


def test_other_exceptions_pass_through(runner_module):
    with pytest.raises(ValueError, match="not a refusal"):
        runner_module.act("other")
    assert "retcode" not in runner_module.__context__


def test_globals_injected_into_the_wrapper_reach_the_runner(runner_module):
    # Salt's runner client injects __user__ and __jid_event__ into the
    # __globals__ of the function it loaded, i.e. of the wrapper. A wrapper
    # living in salt_kiosk.errors' namespace left the runner without them
    # (kiosk_jobs.run saw the user "UNKNOWN").
    wrapped = runner_module.act
    assert wrapped.__globals__ is runner_module.__dict__
    wrapped.__globals__["__user__"] = "alice"
    assert wrapped("good") == {"user": "alice", "value": "good"}


def test_the_wrapper_keeps_name_and_docstring(runner_module):
    assert runner_module.act.__name__ == "act"
    assert "Refuses a bad value" in runner_module.act.__doc__
    assert runner_module.act.__wrapped__.__name__ == "act"
