"""Search spaces in the syntax of Hydra's optuna sweeper, as Optuna distributions.

``interval(a, b)`` is a float range (an int range when both ends are ints, e.g.
``int(interval(1, 100))``); ``tag(log, ...)`` samples it on a log scale;
``range(start, stop, step)`` is the ints ``start, start+step, ... < stop``;
``choice(a, b)`` and ``a,b`` are categorical. Any other override is fixed: it is
part of every trial.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from hydra.errors import HydraException
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
    json_to_distribution,
)

from hyperspace_hydra.errors import HyperspaceError
from hyperspace_hydra.overrides import format_override

Space = dict[str, BaseDistribution]


def parse_space(overrides: Sequence[str]) -> tuple[Space, list[str]]:
    """Split command-line overrides into a search space and the fixed overrides.

    Raises :class:`HyperspaceError` for an override Hydra cannot parse or a sweep
    that has no distribution (e.g. a shuffled or empty choice, a log scale on a
    choice, an interval whose lower end is not below its upper end).
    """
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as error:
        raise HyperspaceError(f"bad search space: {' '.join(str(error).split())}") from error
    space: Space = {}
    fixed: list[str] = []
    for line, override in zip(overrides, parsed):
        if override.is_sweep_override():
            space[parameter_name(override)] = _distribution(override)
        else:
            fixed.append(line)
    return space, fixed


def parameter_name(override: Override) -> str:
    """The key an override sets, without its ``+``/``++`` prefix: a searched parameter is a path, however it is added."""
    return override.get_key_element().lstrip("+~")


def _distribution(override: Override) -> BaseDistribution:
    sweep = override.value()
    name = parameter_name(override)
    if not isinstance(sweep, (ChoiceSweep, RangeSweep, IntervalSweep)):
        raise HyperspaceError(f"bad search space for {name}: {override.input_line!r} is not interval(), range() or choice()")
    log = "log" in sweep.tags
    if isinstance(sweep, ChoiceSweep):
        if log or sweep.shuffle or not sweep.list:
            raise HyperspaceError(f"bad search space for {name}: a choice takes neither tag(log) nor shuffle, and needs options")
        return CategoricalDistribution([_plain(option) for option in sweep.list])
    if isinstance(sweep, RangeSweep):
        return _range_distribution(name, sweep, log)
    return _interval_distribution(name, sweep, log)


def _range_distribution(name: str, sweep: RangeSweep, log: bool) -> BaseDistribution:
    start, stop, step = sweep.start, sweep.stop, sweep.step
    if not (isinstance(start, int) and isinstance(stop, int) and isinstance(step, int)) or step <= 0 or stop <= start:
        raise HyperspaceError(f"bad search space for {name}: range(start, stop, step) needs ints with start < stop and step > 0")
    last = start + (stop - 1 - start) // step * step
    return IntDistribution(start, last, log=log, step=1 if log else step)


def _interval_distribution(name: str, sweep: IntervalSweep, log: bool) -> BaseDistribution:
    low, high = sweep.start, sweep.end
    if low is None or high is None or not low < high or (log and low <= 0):
        raise HyperspaceError(f"bad search space for {name}: interval(low, high) needs low < high (and low > 0 with tag(log))")
    if isinstance(low, int) and isinstance(high, int):
        return IntDistribution(low, high, log=log)
    return FloatDistribution(float(low), float(high), log=log)


def _plain(option: Any) -> Any:
    return option if isinstance(option, (str, int, float, bool)) or option is None else str(option)


def in_space(space: Space, params: Mapping[str, Any]) -> bool:
    """Whether ``params`` is a point of ``space``: a value inside each parameter's distribution, and no other parameter."""
    return set(params) == set(space) and all(contains(space[name], value) for name, value in params.items())


def contains(distribution: BaseDistribution, value: Any) -> bool:
    """Whether ``value`` is a point of ``distribution`` (of the right type and inside its bounds)."""
    if isinstance(distribution, CategoricalDistribution):
        return any(type(value) is type(choice) and value == choice for choice in distribution.choices)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(distribution, IntDistribution) and float(value) != int(value):
        return False
    return distribution._contains(distribution.to_internal_repr(value))


def trial_overrides(params: Mapping[str, Any], added: Collection[str] = ()) -> list[str]:
    """The overrides that set each searched parameter to its value in a trial; those in ``added``
    (parameters that exist only as target defaults) are written ``++name=value``."""
    return [format_override(name, value, prefix="++" if name in added else "") for name, value in params.items()]


def space_to_json(space: Space) -> dict[str, str]:
    """The space as plain data for the store."""
    return {name: distribution_to_json(distribution) for name, distribution in space.items()}


def space_from_json(data: Mapping[str, str]) -> Space:
    """The space back from :func:`space_to_json`."""
    return {name: json_to_distribution(text) for name, text in data.items()}
