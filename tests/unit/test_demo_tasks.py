"""`fulmen demo --task`: the presets name a task, the agent that runs it and its agent
name; a `module:attribute` path runs with the default agent; anything else is refused
before the demo starts."""

from __future__ import annotations

import importlib

import pytest
from typer.testing import CliRunner

from fulmen.cli import app
from fulmen.demo import TASK_PRESETS, DemoSettings, task_settings
from fulmen.tasks import load_task


@pytest.mark.parametrize("name", sorted(TASK_PRESETS))
def test_presets_name_a_task_and_an_agent_that_runs_it(name: str) -> None:
    settings = DemoSettings(**task_settings(name))
    task = load_task(settings.task)
    agent = importlib.import_module(settings.agent)
    assert callable(agent.solve)
    assert isinstance(agent.DEFAULT_MODEL, str)
    assert settings.agent_name == task.name


def test_a_task_path_keeps_the_default_agent() -> None:
    assert task_settings("mypackage.tasks:MyTask") == {"task": "mypackage.tasks:MyTask"}


def test_an_unknown_task_is_refused_with_the_choices() -> None:
    result = CliRunner().invoke(app, ["demo", "--task", "chess"])
    assert result.exit_code == 2
    assert "calculator, lookup" in result.output
