"""Hooks as pytrees: the function static, the arrays traced.

A hook is ``fn(value, t) -> value`` at a point of ``nca.model.HOOK_POINTS`` (``t``: the
traced global step index). A plain Python closure is such a hook, but under ``jit`` a
function can only be a static argument, compared by identity: every new closure compiles
a new program (seconds on a CPU), even when all that changed is the arrays it captured
(ablating channel 5 after channel 4).

A ``Hook`` keeps the two apart:

* ``fn``: a module-level function ``fn(value, t, **arrays, **static) -> value``;
* ``static``: hashable settings (a mode, a step window of ints, an offset), part of the
  compiled program, like the function;
* ``arrays``: named arrays (directions, replacement values, a recording, a mask) or child
  hooks: the pytree children, traced under ``jit``, so another hook of the same ``fn`` and
  ``static`` with arrays of the same shapes and dtypes reuses the compiled program.

    h = Hook(_scale, {"w": jnp.ones(16)})     # def _scale(v, t, w): return v * w
    nca.grow(model, 100, key, hooks={"state": h})

A ``Hook`` is registered as a JAX pytree, so a mapping of hooks is an ordinary (traced)
argument of a jitted function (``nca.grow`` passes it so), can be built from traced arrays
inside a jitted or vmapped function, and flattens and unflattens like any pytree.
``as_hook`` wraps a plain callable as a ``Hook`` with no arrays: it works everywhere, but
compiles once per new function, as a closure always did.
"""

from __future__ import annotations

from typing import Any, Callable, Hashable, Mapping

import jax

from .errors import NCAError


@jax.tree_util.register_pytree_node_class
class Hook:
    """``fn(value, t, **arrays, **static)`` as a callable ``hook(value, t) -> value``.

    fn: a function (module-level, so that one function serves every hook of its kind);
    arrays: ``{name: array or pytree}`` (child ``Hook``s included), the traced part;
    static: ``name=value`` settings, hashable, compared by equality when a compiled program
    is looked up. A name may not be both. Do not mutate a Hook (it is a key of jit caches).
    """

    __slots__ = ("fn", "arrays", "static")

    def __init__(self, fn: Callable, arrays: Mapping[str, Any] | None = None, **static: Hashable):
        if not callable(fn):
            raise NCAError(f"a hook's fn must be callable, got {fn!r}")
        try:
            hash(fn)
        except TypeError:
            raise NCAError(f"a hook's fn must be hashable (jit looks compiled programs up by it), got {fn!r}") from None
        arrays = dict(arrays or {})
        both = sorted(set(arrays) & set(static))
        if both:
            raise NCAError(f"hook setting(s) {both} given both as arrays and as static settings")
        frozen = tuple(sorted(static.items()))
        try:
            hash(frozen)
        except TypeError as e:  # an array as a static setting: jit could not look the program up
            raise NCAError(f"a hook's static settings must be hashable ({e}); pass arrays as arrays") from None
        self._set(fn, arrays, frozen)

    def _set(self, fn, arrays, static):
        object.__setattr__(self, "fn", fn)
        object.__setattr__(self, "arrays", arrays)
        object.__setattr__(self, "static", static)

    def __setattr__(self, name, value):
        raise AttributeError("a Hook is immutable")

    def __call__(self, value, t):
        return self.fn(value, t, **self.arrays, **dict(self.static))

    def tree_flatten(self):
        return (self.arrays,), (self.fn, self.static)

    @classmethod
    def tree_unflatten(cls, aux, children):
        # no validation: JAX unflattens with tracers and placeholder objects as leaves
        obj = object.__new__(cls)
        obj._set(aux[0], children[0], aux[1])
        return obj

    def __reduce__(self):  # (copy and pickle would otherwise meet the immutability)
        return self.tree_unflatten, ((self.fn, self.static), (self.arrays,))

    def __repr__(self):
        shapes = {k: getattr(v, "shape", type(v).__name__) for k, v in self.arrays.items()}
        settings = ", ".join(f"{k}={v!r}" for k, v in self.static)
        return f"Hook({getattr(self.fn, '__name__', self.fn)!s}, arrays={shapes}{', ' if settings else ''}{settings})"


def as_hook(fn: Callable) -> Hook:
    """``fn`` itself if it is a ``Hook``; else a ``Hook`` calling the plain callable ``fn(value,
    t)`` with no arrays (static by identity: a new function compiles a new program)."""
    if isinstance(fn, Hook):
        return fn
    if not callable(fn):
        raise NCAError(f"a hook must be callable fn(value, t) -> value, got {fn!r}")
    try:
        hash(fn)
    except TypeError:  # e.g. a callable object with __eq__: compare it by identity instead
        fn = _ByIdentity(fn)
    return Hook(fn)


class _ByIdentity:
    """An unhashable callable, hashed and compared by identity (as jit's static arguments
    once were, for every hook)."""

    __slots__ = ("obj",)

    def __init__(self, obj):
        self.obj = obj

    def __call__(self, value, t):
        return self.obj(value, t)

    def __hash__(self):
        return id(self.obj)

    def __eq__(self, other):
        return isinstance(other, _ByIdentity) and other.obj is self.obj


__all__ = ["Hook", "as_hook"]
