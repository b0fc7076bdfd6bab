"""Free ports for services started later: distinct within one pick, and never a port the
caller already chose."""

from __future__ import annotations

from fulmen._net import free_ports
from fulmen.up._stack import _ports


def test_ports_picked_together_are_distinct_and_avoid_those_given() -> None:
    given = free_ports(3)
    picked = free_ports(20, besides=given)
    assert len(set(picked)) == 20
    assert not set(picked) & set(given)


def test_a_stack_keeps_the_ports_it_was_given_and_fills_the_rest_with_distinct_ones() -> None:
    (wanted,) = free_ports(1)
    ports = _ports([0, wanted, 0, 0])
    assert ports[1] == wanted
    assert len(set(ports)) == 4
    assert all(ports)
