"""The engine value (issue #29, item 1): one short string says where and how runs train; it parses, prints back
to itself, and a bad one is one line naming what was wrong and what is accepted."""

from __future__ import annotations

import pickle

import pytest

import dhclib
from dhclib.errors import ConfigError
from dhclib.runs.engine import Engine, SlurmOptions

PARSED = {
    "here": Engine(),
    "stack:8": Engine(stack=8),
    "stack:auto+graphs": Engine(stack="auto", graphs=True),
    "local:2": Engine(where="local:2"),
    "local:2,stack:8": Engine(where="local:2", stack=8),
    "dask:local:3,lease=0.5": Engine(where="dask:local:3", lease=0.5),
    "dask:tcp://10.0.0.5:8786,lease=300": Engine(where="dask:tcp://10.0.0.5:8786", lease=300),
    "slurm": Engine(where="slurm"),
    "slurm:partition=gpu,time_min=120,gpus=1,stack:auto+graphs":
        Engine(where="slurm", stack="auto", graphs=True, slurm=SlurmOptions(partition="gpu", time_min=120, gpus=1)),
}


@pytest.mark.parametrize("text", PARSED)
def test_an_engine_string_parses_and_prints_back_to_itself(text):
    engine = Engine.of(text)
    assert engine == PARSED[text] and str(engine) == text and Engine.of(str(engine)) == engine
    assert pickle.loads(pickle.dumps(engine)) == engine  # it travels to workers with each unit of work


def test_parts_come_in_any_order_and_defaults_are_left_out():
    assert Engine.of("stack:4,lease=30,local:2") == Engine.of("local:2,stack:4,lease=30")
    assert str(Engine.of("slurm,gpus=1,partition=gpu")) == "slurm:partition=gpu,gpus=1"
    assert str(Engine.of("here,stack:1,lease=60")) == "here"
    assert str(Engine(lease=0.1)) == "lease=0.1" and str(Engine(lease=1e-3)) == "lease=0.001"
    assert Engine.of(None) == Engine() and Engine.of(Engine(stack=2)) == Engine(stack=2)
    assert dhclib.Engine is Engine


def test_the_stack_size_follows_the_device_only_for_auto():
    assert Engine.of("stack:auto").stack_size("cpu") == 1 and Engine.of("stack:auto").stack_size("cuda") == 80
    assert Engine.of("stack:4").stack_size("cuda:1") == 4 and Engine().stack_size("cuda") == 1
    assert Engine().here and not Engine.of("local:1").here


@pytest.mark.parametrize("bad, why", [
    ("there", "unknown place 'there'"),
    ("local:0", "'local:0' needs N >= 1"),
    ("dask:local:x", "'dask:local:x' needs N >= 1"),
    ("dask:nohost", "'nohost' is not a Dask scheduler address"),
    ("stack:0", "the stack must be an integer >= 1 or 'auto', got 0"),
    ("stack:2+fast", "unknown stack option 'fast'"),
    ("stack:1+graphs", "+graphs applies to stacked runs"),
    ("lease=0", "the lease must be a finite number of seconds > 0"),
    ("lease=soon", "lease='soon' is not a number of seconds"),
    ("local:2,gpus=1", "Slurm options (gpus=1) need slurm, not local:2"),
    ("slurm,time_min=x", "slurm option time_min must be an integer >= 1, got 'x'"),
    ("slurm,mem=8 G", "slurm option mem must be a word"),
    ("local:1,local:2", "names two values where one is accepted"),
    ("stack:2,stack:4", "names two values where one is accepted"),
    ("speed=2", "unknown option 'speed'"),
    ("local:2,,stack:2", "an empty part"),
])
def test_a_bad_engine_is_one_line_naming_it_and_what_is_accepted(bad, why):
    with pytest.raises(ConfigError) as caught:
        Engine.of(bad)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("engine: ") and why in message
    assert "accepted: here | local:N | dask:local:N | dask:tcp://HOST:PORT | slurm" in message


def test_an_engine_built_in_python_is_checked_as_its_string_is():
    for kwargs in (dict(stack=2.5), dict(stack=True), dict(lease=float("inf")), dict(graphs=1, stack=2),
                   dict(where="local:2", slurm=SlurmOptions(gpus=1)), dict(slurm={"gpus": 1})):
        with pytest.raises(ConfigError, match="^engine: "):
            Engine(**kwargs)
    with pytest.raises(ConfigError, match="expected a string or an Engine, got 8"):
        Engine.of(8)
    assert Engine(lease=30) == Engine.of("lease=30.0")  # one engine whatever the number's type


def test_the_drivers_take_the_engine_and_reject_a_bad_one_before_planning(tmp_path):
    with pytest.raises(ConfigError, match="^engine: unknown place 'pool:2'"):
        dhclib.run_many("split_mnist", "finetune", "0", "quick", "cpu", None, tmp_path, engine="pool:2")
    for old in ("stack", "executor", "cuda_graphs", "lease"):  # the keywords the engine replaced: named so
        with pytest.raises(ConfigError, match=f"^'{old}' is not an override: pass it as engine="):
            dhclib.run_many("split_mnist", "finetune", "0", "quick", "cpu", None, tmp_path, **{old: 2})
    assert not list(tmp_path.iterdir())
