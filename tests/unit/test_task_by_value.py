"""A task whose module is registered with cloudpickle by value travels by value."""

from __future__ import annotations

import sys
import types

import cloudpickle

from slurm._api.task import FunctionRef, _reference_for


def test_registered_module_travels_by_value() -> None:
    module = types.ModuleType("slurm_sdk_test_by_value_module")
    exec("def double(x):\n    return 2 * x\n", module.__dict__)
    sys.modules[module.__name__] = module
    try:
        assert _reference_for(module.double) == FunctionRef(module.__name__, "double")
        cloudpickle.register_pickle_by_value(module)
        try:
            assert _reference_for(module.double) is None
        finally:
            cloudpickle.unregister_pickle_by_value(module)
    finally:
        del sys.modules[module.__name__]
