"""Reading a search's saved state without running anything the file contains.

Two kinds of file a user passes reach ``pickle``, and neither may execute code: weights and
checkpoints (read through torch's safe loader, :mod:`nas.checkpoints`) and

* **a search's ``state.pkl``** (the algorithm between asks): read by :class:`StateUnpickler`,
  an allow-list. It returns classes of the project's own packages, of pymoo (whose NSGA-II
  state the ``nsga2`` comparator keeps) and of numpy's array and random-generator types,
  plus the few functions those objects are stored with (not numpy's memmap and the like,
  whose construction opens files). Classes are recreated without
  calling their constructors (``__new__`` and the saved attributes, as pickle's protocol 2
  does), and the only callables a file may invoke while loading are the reconstructors that
  numpy, copyreg and the builtins provide for plain data. Anything else (``os.system``,
  ``builtins.eval``, a constructor with side effects, a function of the project's) is refused
  with the name it asked for.
"""

from __future__ import annotations

import builtins
import copyreg
import io
import pickle
import sys
from typing import Any

import numpy as np
import numpy.random._pickle as np_random_pickle  # numpy's documented pickle helpers
from numpy.random import bit_generator as np_bit_generator

#: packages whose classes a saved search state may hold (the algorithms, the spaces they
#: hold, pymoo's NSGA-II objects)
STATE_PACKAGES = ("nas.", "search_spaces.", "pymoo.")
#: functions a saved state may hold as attributes (never called while loading)
STATE_FUNCTION_PACKAGES = ("pymoo.",)
#: builtins a state may name: plain types (their construction runs no user code)
_BUILTINS = frozenset({"object", "int", "float", "complex", "bool", "str", "bytes",
                       "bytearray", "tuple", "list", "dict", "set", "frozenset", "slice",
                       "range", "type", "NoneType"})


class UnsafeFileError(ValueError):
    """A file asked to load something the allow-list refuses, or could not be read."""


# --------------------------------------------------------------------------------------------
# Search states
# --------------------------------------------------------------------------------------------

# The callables a state may invoke while it loads: reconstructors of plain data.
_RECONSTRUCTORS = {
    ("copyreg", "_reconstructor"): copyreg._reconstructor,  # type: ignore[attr-defined]
    ("copyreg", "__newobj__"): copyreg.__newobj__,  # type: ignore[attr-defined]
    ("numpy", "dtype"): np.dtype,
    ("numpy", "ndarray"): np.ndarray,
}


def _numpy_reconstructors() -> dict[tuple[str, str], Any]:
    """numpy's pickle helpers for arrays, scalars and random generators, under every module
    name a numpy release writes them with."""
    out: dict[tuple[str, str], Any] = {}
    for name in ("__bit_generator_ctor", "__generator_ctor", "__randomstate_ctor"):
        if hasattr(np_random_pickle, name):
            out[("numpy.random._pickle", name)] = getattr(np_random_pickle, name)
    if hasattr(np_bit_generator, "__pyx_unpickle_SeedSequence"):
        out[("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence")] = \
            np_bit_generator.__pyx_unpickle_SeedSequence
    for mod in ("numpy._core.multiarray", "numpy.core.multiarray"):
        m = sys.modules.get(mod) or (np._core.multiarray if mod == "numpy._core.multiarray"
                                     else None)
        if m is None:
            continue
        out[(mod, "_reconstruct")] = m._reconstruct
        out[(mod, "scalar")] = m.scalar
    return out


_RECONSTRUCTORS.update(_numpy_reconstructors())
# numpy classes a state may hold (not numpy.memmap and the like, whose __new__ opens files);
# numpy.random's generators and bit generators are allowed by module
_NUMPY_CLASSES = frozenset({("numpy", "ndarray"), ("numpy", "dtype")})


class StateUnpickler(pickle._Unpickler):  # type: ignore[name-defined]
    """Loads a search state and refuses everything outside the allow-list above.

    The pure-Python unpickler, so that the opcodes that call something (REDUCE, INST, OBJ)
    can be checked: only :data:`_RECONSTRUCTORS` and the builtin plain types may be called;
    classes come back through NEWOBJ (``cls.__new__``), which runs no constructor."""

    dispatch = dict(pickle._Unpickler.dispatch)  # type: ignore[attr-defined]

    def __init__(self, file: Any, *, where: str) -> None:
        super().__init__(file)
        self.where = where

    def _refuse(self, what: str) -> UnsafeFileError:
        return UnsafeFileError(f"{self.where} asks to load {what}, which a search state never "
                               f"holds; it was not loaded (nothing in it was run)")

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _RECONSTRUCTORS:
            return _RECONSTRUCTORS[(module, name)]
        if module == "builtins":
            if name in _BUILTINS:
                return getattr(builtins, name) if name != "NoneType" else type(None)
            raise self._refuse(f"{module}.{name}")
        if "." in name or name.startswith("__"):
            raise self._refuse(f"{module}.{name}")
        allowed_class = module.startswith(STATE_PACKAGES) or (module, name) in _NUMPY_CLASSES \
            or module.startswith("numpy.random.")
        allowed_function = module.startswith(STATE_FUNCTION_PACKAGES) or module == "numpy"
        if not (allowed_class or allowed_function):
            raise self._refuse(f"{module}.{name}")
        obj = super().find_class(module, name)
        if isinstance(obj, type) and allowed_class:
            return obj
        if callable(obj) and not isinstance(obj, type) and allowed_function:
            return _NotCallable(obj)
        raise self._refuse(f"{module}.{name}")

    def load_reduce(self) -> None:
        args = self.stack.pop()
        func = self.stack[-1]
        if isinstance(func, _NotCallable) or not _callable_while_loading(func):
            raise self._refuse(f"a call of {getattr(func, '__qualname__', func)!r}")
        self.stack[-1] = func(*args)

    def load_inst(self) -> None:
        raise self._refuse("an old-protocol instance (INST)")

    def load_obj(self) -> None:
        raise self._refuse("an old-protocol instance (OBJ)")

    def load_build(self) -> None:
        state = self.stack[-1]
        if isinstance(state, _NotCallable):
            raise self._refuse("a function as an object's state")
        super().load_build()

    def load(self) -> Any:
        return _unwrap(super().load())


class _NotCallable:
    """A function a state holds as an attribute: kept for after loading, never called while
    loading (:meth:`StateUnpickler.load_reduce` refuses it)."""

    __slots__ = ("fn",)

    def __init__(self, fn: Any) -> None:
        self.fn = fn


def _callable_while_loading(func: Any) -> bool:
    if any(func is f for f in _RECONSTRUCTORS.values()):
        return True
    return isinstance(func, type) and func.__module__ == "builtins" \
        and func.__name__ in _BUILTINS


def _unwrap(obj: Any, memo: dict | None = None) -> Any:
    """Replace every :class:`_NotCallable` in the loaded object graph by its function."""
    memo = {} if memo is None else memo
    if id(obj) in memo:
        return memo[id(obj)]
    if isinstance(obj, _NotCallable):
        return obj.fn
    memo[id(obj)] = obj
    if isinstance(obj, dict):
        for k, v in list(obj.items()):
            obj[k] = _unwrap(v, memo)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            obj[i] = _unwrap(v, memo)
    elif isinstance(obj, tuple):
        new = tuple(_unwrap(v, memo) for v in obj)
        if any(a is not b for a, b in zip(new, obj)):
            memo[id(obj)] = new
            return new
    elif isinstance(obj, np.ndarray):
        if obj.dtype == object:
            for i, v in enumerate(obj.flat):
                obj.flat[i] = _unwrap(v, memo)
    elif hasattr(obj, "__dict__") and not isinstance(obj, type):
        for k, v in list(vars(obj).items()):
            new = _unwrap(v, memo)
            if new is not v:
                object.__setattr__(obj, k, new)
    return obj


StateUnpickler.dispatch[pickle.REDUCE[0]] = StateUnpickler.load_reduce
StateUnpickler.dispatch[pickle.INST[0]] = StateUnpickler.load_inst
StateUnpickler.dispatch[pickle.OBJ[0]] = StateUnpickler.load_obj
StateUnpickler.dispatch[pickle.BUILD[0]] = StateUnpickler.load_build


def load_state_bytes(data: bytes, *, where: str) -> Any:
    """A search state from ``data`` (see :class:`StateUnpickler`)."""
    return StateUnpickler(io.BytesIO(data), where=where).load()


__all__ = ["STATE_PACKAGES", "StateUnpickler", "UnsafeFileError", "load_state_bytes"]
