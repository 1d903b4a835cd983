"""The stand-in's device array: a NumPy array behind a wall that CuPy's rules guard.

`ndarray` wraps (never subclasses) a NumPy array, `_a`, which plays the GPU's memory.
Everything that crosses the wall is checked the way CuPy checks it:

* NumPy arrays cannot come in: `device + np.ones(3)`, `cupy.add(device, host)`,
  `cupy.where(host_mask, ...)` raise CuPy's TypeError ("Unsupported type"), and so do
  Python lists where CuPy wants an array. NumPy *scalars* (np.float32(2)) and Python
  numbers are fine, as in CuPy. Only what CuPy copies over takes host data: cupy.array /
  asarray / asanyarray, `ndarray.set`, indices, a 0-d array in a comparison or `fill`.
* Device arrays cannot go out except through a copy: `np.asarray(device)` raises
  TypeError (`__array__` refuses, as in CuPy), there is no `__index__` (nor a device
  array accepted as a shape or an axis), no `.ctypes`, no buffer. NumPy's own functions
  and ufuncs called on a device array (`np.exp(device)`, `np.sum(device)`) are refused
  too; real CuPy would run those through `__array_ufunc__` / `__array_function__`, but
  the project's rule is that ops use `xp`, and a NumPy call that happens to work on CuPy
  hides host/device confusion. The one NumPy path allowed is a NumPy scalar on the left
  of an operator (`np.float32(2) * device`), which Python routes through the ufunc.
* Results look like CuPy's: reductions give 0-d device arrays and scalar indexing 0-d
  views, not NumPy scalars; every freshly computed array (ufuncs, reductions, advanced
  indexing, ...) is C-ordered, whatever the layout of its inputs (NumPy keeps the
  inputs' layout); views stay views; `*_like`, `astype` and `copy(order='K')` keep the
  layout, as CuPy's do. Out-of-bounds integer indices wrap around, as in CuPy, instead
  of raising IndexError.
* What a GPU leaves undefined fails: fresh `empty` memory holds garbage (NaN), an
  assignment naming an element twice and a copy between overlapping regions raise.
* Host synchronisations are counted (`SYNCS`) and refused inside
  `cupyx.allow_synchronize(False)`: `.get()`, `cupy.asnumpy`, `.item()`, `.tolist()`,
  `int()/float()/bool()`, printing, and the data-dependent shapes (boolean masks,
  `nonzero`, `unique`, ...) that make CuPy wait for the GPU.
* Device memory is accounted: bytes of live arrays in 512-byte units (`MEMORY.used`), the
  pool's high-water mark, and an optional limit that raises OutOfMemoryError.
"""

import threading
import weakref

import numpy as np

from . import _api

# ----- host synchronisation ---------------------------------------------------------------
_sync_state = threading.local()
SYNCS = {"count": 0}


class DeviceSynchronized(RuntimeError):
    """Raised when the device would synchronise inside cupyx.allow_synchronize(False)."""

    def __init__(self, message=None):
        super().__init__(message or "Device synchronization was detected while disallowed.")


def sync_allowed():
    return getattr(_sync_state, "allowed", True)


def set_sync_allowed(flag):
    old = sync_allowed()
    _sync_state.allowed = bool(flag)
    return old


def synchronize(what, declared=True):
    """The host waits for the device here (to read a value, or a data-dependent shape). Refused
    inside allow_synchronize(False) where CuPy 14.2 declares it (declared=False: CuPy waits but
    does not check there, e.g. Stream.synchronize; it is only counted)."""
    if declared and not sync_allowed():
        raise DeviceSynchronized(f"Device synchronization was detected while disallowed: {what}")
    SYNCS["count"] += 1


# ----- device memory ------------------------------------------------------------------------
class OutOfMemoryError(MemoryError):
    """cupy.cuda.memory.OutOfMemoryError: the pool's limit would be exceeded."""

    def __init__(self, size, total, limit=0):
        super().__init__(f"Out of memory allocating {size:,} bytes (allocated so far: {total:,} bytes"
                         + (f", limit set to: {limit:,} bytes" if limit else "") + ").")


class _Memory:
    """Bytes held by live device arrays; the pool keeps its high-water mark until freed."""

    def __init__(self):
        self.used = 0
        self.held = 0
        self.limit = 0                 # 0: no limit
        self._owners = {}              # id(numpy owner array) -> nbytes

    def track(self, array):
        owner = array
        while isinstance(owner.base, np.ndarray):
            owner = owner.base
        if owner.base is not None or id(owner) in self._owners:   # foreign memory, or known
            return
        size = -(-owner.nbytes // 512) * 512      # CuPy's pool hands out multiples of 512 bytes
        if self.limit and self.used + size > self.limit:
            raise OutOfMemoryError(size, self.used, self.limit)
        self._owners[id(owner)] = size
        self.used += size
        self.held = max(self.held, self.used)
        weakref.finalize(owner, self._release, id(owner))

    def _release(self, key):
        self.used -= self._owners.pop(key, 0)


MEMORY = _Memory()

# ----- crossing the wall ----------------------------------------------------------------------
_SCALARS = (bool, int, float, complex, np.generic)
_PASSIVE = (str, bytes, slice, type(Ellipsis), type(None), np.dtype, type, range)


def unsupported(obj):
    return TypeError(f"Unsupported type {type(obj)}")


def wrap(value, c_order=True, inputs=()):
    """A NumPy result as CuPy would return it (see the module docstring)."""
    if isinstance(value, np.ndarray):
        if c_order and not value.flags.c_contiguous and not any(
                np.may_share_memory(value, a) for a in inputs if isinstance(a, np.ndarray)):
            value = np.ascontiguousarray(value)     # a fresh result: CuPy allocates it C-ordered
        return ndarray._from_numpy(value)
    if isinstance(value, np.generic):
        return ndarray._from_numpy(np.array(value))  # reductions, scalar indexing: 0-d arrays
    if isinstance(value, tuple):
        return tuple(wrap(v, c_order, inputs) for v in value)
    if isinstance(value, list):
        return [wrap(v, c_order, inputs) for v in value]
    return value


def unwrap(value, where, allow_host=False):
    """The NumPy array behind a device array; refuses host arrays (unless allow_host) and
    objects CuPy would not take. Lists and tuples are unwrapped item by item."""
    if isinstance(value, ndarray):
        return value._a
    if isinstance(value, np.ndarray):
        if allow_host:
            return value
        raise TypeError(f"{where}: Unsupported type {type(value)}: a NumPy array cannot be mixed into "
                        f"a device computation (move it with cupy.asarray first)")
    if isinstance(value, (list, tuple)):
        return type(value)(unwrap(v, where, allow_host) for v in value)
    if isinstance(value, _SCALARS + _PASSIVE) or callable(value):
        return value
    raise TypeError(f"{where}: Unsupported type {type(value)}")


def poison(a):
    """Fill fresh, uninitialised memory with garbage (NaN for floats), as a GPU would leave it:
    code that reads what it never wrote fails here instead of reading NumPy's zeros."""
    if a.dtype.kind in "fc":
        a.fill(np.nan)
    elif a.dtype.kind in "iu":
        a.fill(np.iinfo(a.dtype).max // 3)
    return a


def unwrap_all(args, kwargs, where, allow_host=False):
    return ([unwrap(a, where, allow_host) for a in args],
            {k: unwrap(v, where, allow_host) for k, v in kwargs.items()})


# Parameters that CuPy's functions use as arrays (`a.sum(...)`, `condition.astype(...)`): a list,
# a Python number or None there fails in CuPy, though NumPy would convert it.
_ARRAY_PARAMS = {"a", "ary", "arr", "array", "ar", "m", "condition"}
# Parameters that must be Python integers: a device array there has no __index__ in CuPy.
_INT_PARAMS = {"shape", "newshape", "axis", "axes", "axis1", "axis2", "source", "destination", "start",
               "stop", "step", "num", "N", "M", "k", "ndim", "ndmin", "decimals", "ddof", "minlength",
               "reps", "repeats", "n", "indices_or_sections"}


def check_parameters(qualname, params, args, kwargs):
    sig = _api.signature(params)
    if sig is None:
        return
    for pname, value in sig.bind(*args, **kwargs).arguments.items():
        if pname in _ARRAY_PARAMS and (value is None or isinstance(value, (list, tuple, bool, int, float))):
            raise TypeError(f"{qualname}: Unsupported type {type(value)} for '{pname}' (CuPy wants a "
                            "cupy.ndarray there; NumPy would have converted it)")
        values = value if isinstance(value, (list, tuple)) else (value,)
        if pname in _INT_PARAMS and any(isinstance(v, ndarray) for v in values):
            raise TypeError(f"{qualname}: '{pname}' must be a Python int, not a device array "
                            "(cupy.ndarray has no __index__: read it with int(), a synchronisation)")


# ----- indexing -------------------------------------------------------------------------------
def _index(key, shape):
    """A NumPy index from a CuPy one: device arrays unwrapped, host index arrays accepted (CuPy
    copies them over), integer-array indices wrapped around as CuPy does, and a sync counted
    for boolean masks (their result's size depends on the data)."""
    parts = list(key) if isinstance(key, tuple) else [key]
    converted = []
    for p in parts:
        if isinstance(p, ndarray):
            p = p._a
        elif isinstance(p, list):
            p = np.asarray([q._a if isinstance(q, ndarray) else q for q in p])
        if isinstance(p, np.ndarray):
            if p.dtype == np.bool_:
                synchronize("indexing with a boolean mask (the result's size depends on the data)")
            elif p.dtype.kind not in "iu":
                raise IndexError("arrays used as indices must be of integer or boolean type. "
                                 f"(actual: {p.dtype.type})")
        elif isinstance(p, (float, np.floating)):
            raise IndexError("only integers, slices (`:`), ellipsis (`...`), numpy.newaxis (`None`) and "
                             "integer or boolean arrays are valid indices")
        converted.append(p)
    # The axis each part indexes: None takes none, a boolean mask as many as it has, `...` the rest.
    taken = sum(p.ndim if isinstance(p, np.ndarray) and p.dtype == np.bool_ else 1
                for p in converted if p is not None and p is not Ellipsis)
    axis, wrapped = 0, []
    for p in converted:
        if isinstance(p, np.ndarray) and p.dtype.kind in "iu" and axis < len(shape) and shape[axis]:
            p = p % shape[axis]                        # out-of-bounds indices wrap around, as in CuPy
        wrapped.append(p)
        if p is Ellipsis:
            axis += len(shape) - taken
        elif p is not None:
            axis += p.ndim if isinstance(p, np.ndarray) and p.dtype == np.bool_ else 1
    return tuple(wrapped) if isinstance(key, tuple) else wrapped[0]


def _refuse_duplicate_targets(index, shape):
    """x[idx] = v with an element named twice: which value lands is undefined on the GPU."""
    try:
        hits = np.zeros(shape, np.int64)
        np.add.at(hits, index, 1)
    except (IndexError, ValueError, TypeError):
        return
    if hits.max(initial=0) > 1:
        raise ValueError("advanced-index assignment names an element more than once: the stored value "
                         "is undefined on the GPU (CuPy's documentation); use cupyx.scatter_add to add")


def _is_basic(key):
    parts = key if isinstance(key, tuple) else (key,)
    return all(isinstance(p, (int, np.integer, slice)) or p is None or p is Ellipsis for p in parts)


# ----- the array ------------------------------------------------------------------------------
_NDARRAY = "cupy.ndarray"
_VIEWS = {"reshape", "transpose", "swapaxes", "squeeze", "ravel", "view", "diagonal"}
_KEEP_LAYOUT = {"astype", "copy"}                              # order='K' keeps strides, as in CuPy
_SYNCING_METHODS = {"nonzero", "compress", "tobytes", "tofile", "dump", "dumps", "tolist"}
_TAKE_HOST = {"take", "put", "fill"}
_NOT_MODELLED = {"scatter_add", "scatter_max", "scatter_min", "reduced_view", "mdspan", "cstruct",
                 "toDlpack", "partition", "argpartition"}


class Flags:
    """cupy.ndarray.flags: only these three (there is no `writeable` on the device)."""

    def __init__(self, a):
        self.c_contiguous = bool(a.flags.c_contiguous)
        self.f_contiguous = bool(a.flags.f_contiguous)
        self.owndata = bool(a.flags.owndata)

    fnc = property(lambda self: self.f_contiguous and not self.c_contiguous)
    forc = property(lambda self: self.f_contiguous or self.c_contiguous)

    def __getitem__(self, name):
        return {"C_CONTIGUOUS": self.c_contiguous, "F_CONTIGUOUS": self.f_contiguous,
                "OWNDATA": self.owndata}[name]

    def __repr__(self):
        return f"  C_CONTIGUOUS : {self.c_contiguous}\n  F_CONTIGUOUS : {self.f_contiguous}\n  OWNDATA : {self.owndata}"


class MemoryPointer:
    """cupy.cuda.MemoryPointer: `.ptr` is the device address (here: where the NumPy data lives)."""

    def __init__(self, array):
        self.ptr = array.ctypes.data if array.size else 0
        self._array = array                       # keeps the memory alive as CuPy's pointer does
        self.device_id = 0

    def __int__(self):
        return self.ptr


_COMPARISONS = {"__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__"}


def _binary(name):
    def op(self, other):
        if isinstance(other, ndarray):
            other = other._a
        elif isinstance(other, np.ndarray):
            if not (name in _COMPARISONS and other.ndim == 0):
                raise unsupported(other)
            other = other.item()             # CuPy's comparisons take a 0-d host array by value
        elif other is None:
            raise TypeError(f"operand type(s) all returned NotImplemented: cupy.ndarray {name} None")
        elif not isinstance(other, _SCALARS):
            if getattr(other, "__array_priority__", 0) > ndarray.__array_priority__:
                return NotImplemented            # e.g. a Tensor: its reflected operator runs
            if isinstance(other, (list, tuple)):
                raise unsupported(other)
            return NotImplemented
        return wrap(getattr(self._a, name)(other))
    op.__name__ = name
    return op


def _inplace(name):
    def op(self, other):
        if isinstance(other, ndarray):
            other = other._a
        elif not isinstance(other, _SCALARS):
            raise unsupported(other)
        getattr(self._a, name)(other)
        return self
    op.__name__ = name
    return op


def _unary(name):
    def op(self):
        return wrap(getattr(self._a, name)())
    op.__name__ = name
    return op


class ndarray:
    """cupy.ndarray in the stand-in: a NumPy array, `_a`, that stays "on the device"."""

    __module__ = "cupy"
    __array_priority__ = 100
    __slots__ = ("_a", "__weakref__")
    __hash__ = None

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        if memptr is not None or strides is not None:
            raise NotImplementedError("the CuPy stand-in does not model ndarray(memptr=, strides=)")
        self._a = poison(np.empty(shape, dtype, order=order))
        MEMORY.track(self._a)

    @classmethod
    def _from_numpy(cls, a):
        self = object.__new__(cls)
        self._a = a
        MEMORY.track(a)
        return self

    # ----- attributes -------------------------------------------------------------------------
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: Flags(self._a))
    data = property(lambda self: MemoryPointer(self._a))
    T = property(lambda self: self if self._a.ndim < 2 else wrap(self._a.T, c_order=False))
    mT = property(lambda self: wrap(self._a.mT, c_order=False))
    real = property(lambda self: wrap(self._a.real, c_order=False))
    imag = property(lambda self: wrap(self._a.imag, c_order=False))
    flat = property(lambda self: _not_modelled("ndarray.flat"))

    @property
    def shape(self):
        return self._a.shape

    @shape.setter
    def shape(self, value):
        self._a.shape = value

    @property
    def base(self):
        return None if not isinstance(self._a.base, np.ndarray) else wrap(self._a.base, c_order=False)

    @property
    def device(self):
        from .cuda import Device
        return Device(0)

    @property
    def __cuda_array_interface__(self):
        return {"shape": self.shape, "typestr": self.dtype.str, "data": (self.data.ptr, False),
                "strides": None if self._a.flags.c_contiguous else self.strides, "version": 3}

    # ----- leaving the device (each one a synchronisation) -------------------------------------
    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to "
                        "construct a NumPy array explicitly.")

    def get(self, stream=None, order="C", out=None, blocking=True):
        synchronize("ndarray.get()")
        if out is not None:
            if not isinstance(out, np.ndarray):
                raise TypeError("Only numpy.ndarray can be obtained from cupy.ndarray")
            out[...] = self._a
            return out
        return np.array(self._a, order=order, copy=True)

    def set(self, arr, stream=None):
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"Only numpy.ndarray can be set to cupy.ndarray, got {type(arr)}")
        if arr.shape != self.shape:
            raise ValueError(f"Shape mismatch. Old shape: {self.shape}, new shape: {arr.shape}")
        if arr.dtype != self.dtype:
            raise TypeError(f"{arr.dtype} array cannot be set to {self.dtype} array")
        self._a[...] = arr

    def item(self):
        synchronize("ndarray.item()")
        return self._a.item()

    def tolist(self):
        synchronize("ndarray.tolist()")
        return self._a.tolist()

    def _scalar(self, kind, convert):
        if self._a.ndim != 0 and kind != "bool":
            raise TypeError(f"only 0-dimensional arrays can be converted to Python scalars ({kind}() of "
                            f"shape {self.shape})")
        synchronize(f"{kind}() of a device array")
        return convert(self._a.reshape(()).item())

    def __int__(self):
        return self._scalar("int", int)

    def __float__(self):
        return self._scalar("float", float)

    def __complex__(self):
        return self._scalar("complex", complex)

    def __bool__(self):
        if self._a.size != 1:
            raise ValueError("The truth value of an array with more than one element is ambiguous.")
        return self._scalar("bool", bool)

    def __format__(self, spec):
        synchronize("formatting a device array")
        return self._a.__format__(spec) if self._a.ndim else self._a.item().__format__(spec)

    def __repr__(self):
        synchronize("repr() of a device array")
        return repr(self._a)

    def __str__(self):
        synchronize("str() of a device array")
        return str(self._a)

    def __reduce__(self):
        raise TypeError("the CuPy stand-in does not pickle device arrays (the project never pickles)")

    # ----- NumPy's protocols: refused (see the module docstring) -------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        for x in inputs:                 # `np.ones(3) * device` comes here: CuPy refuses it as well
            if isinstance(x, np.ndarray):
                raise unsupported(x)
        scalars = [x for x in inputs if isinstance(x, np.generic)]
        others_ok = all(isinstance(x, (ndarray, bool, int, float, complex, np.generic)) for x in inputs)
        if method == "__call__" and scalars and others_ok and not kwargs:
            # np.float32(2) * device: Python asked the NumPy scalar first, and it handed over.
            return wrap(ufunc(*[x._a if isinstance(x, ndarray) else x for x in inputs]))
        raise TypeError(f"NumPy's ufunc {ufunc.__name__}.{method} was called with a device array. The "
                        "project computes with xp = backend.get_array_module(...), never numpy, on tensor "
                        "data (real CuPy would dispatch this call; the stand-in refuses it).")

    def __array_function__(self, func, types, args, kwargs):
        raise TypeError(f"NumPy's {func.__module__}.{func.__name__}() was called with a device array. The "
                        "project computes with xp = backend.get_array_module(...), never numpy, on tensor "
                        "data (real CuPy would dispatch this call; the stand-in refuses it).")

    # ----- indexing ---------------------------------------------------------------------------
    def __getitem__(self, key):
        if _is_basic(key):               # a view, 0-d included (CuPy's a[1] shares a's memory)
            parts = key if isinstance(key, tuple) else (key,)
            view = self._a[parts if Ellipsis in parts else parts + (Ellipsis,)]
            return wrap(view, c_order=False)
        index = _index(key, self.shape)
        return wrap(self._a[index], inputs=(self._a,))

    def __setitem__(self, key, value):
        index = _index(key, self.shape)
        basic = _is_basic(key)
        if isinstance(value, ndarray):
            target = self._a[index] if basic else None
            if target is not None and np.may_share_memory(target, value._a) and not (
                    target.shape == value.shape and target.strides == value._a.strides
                    and target.__array_interface__["data"] == value._a.__array_interface__["data"]):
                raise ValueError("assignment between overlapping regions of one device array (e.g. "
                                 "y[1:] = y[:-1]): CuPy copies with memcpy, whose result is undefined "
                                 "when source and destination overlap")
            value = value._a
        elif isinstance(value, np.ndarray):
            if basic and value.ndim:         # CuPy fills basic slices with a scalar only
                raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
        elif basic and isinstance(value, (list, tuple)):
            raise TypeError(f"Unsupported type {type(value)}: CuPy fills a basic slice with a scalar "
                            "or copies a device array into it")
        elif not isinstance(value, _SCALARS + (list, tuple)):
            raise unsupported(value)
        if not basic:
            _refuse_duplicate_targets(index, self.shape)
        self._a[index] = value

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self._a)))

    # (operators: set after the class, from the lists below)

    def __copy__(self):
        return wrap(self._a.copy(order="K"))

    def __deepcopy__(self, memo):
        return self.__copy__()

    # ----- methods: checked against CuPy's signatures, computed by NumPy ------------------------
    def __getattr__(self, name):
        entry = _api.method_entry(_NDARRAY, name)          # AttributeError for what CuPy lacks
        if entry["kind"] != "method":
            raise AttributeError(f"the CuPy stand-in does not model ndarray.{name}")
        if name in _NOT_MODELLED:
            return lambda *a, **k: _not_modelled(f"ndarray.{name}")
        return _Method(self, name, entry["params"])


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or", "xor",
              "lshift", "rshift", "divmod"):
    setattr(ndarray, f"__{_name}__", _binary(f"__{_name}__"))
    setattr(ndarray, f"__r{_name}__", _binary(f"__r{_name}__"))
    if _name not in ("divmod", "matmul"):          # CuPy 14 has no in-place @=: Python falls back to @
        setattr(ndarray, f"__i{_name}__", _inplace(f"__i{_name}__"))
for _name in ("lt", "le", "gt", "ge", "eq", "ne"):
    setattr(ndarray, f"__{_name}__", _binary(f"__{_name}__"))
for _name in ("neg", "pos", "abs", "invert"):
    setattr(ndarray, f"__{_name}__", _unary(f"__{_name}__"))
del _name


class _Method:
    """A bound ndarray method: signature checked, arguments unwrapped, result wrapped."""

    __slots__ = ("array", "name", "params")

    def __init__(self, array, name, params):
        self.array, self.name, self.params = array, name, params

    def __call__(self, *args, **kwargs):
        name, a = self.name, self.array._a
        _api.check_call(f"cupy.ndarray.{name}", self.params, args, kwargs)
        check_parameters(f"cupy.ndarray.{name}", self.params, args, kwargs)
        out = kwargs.get("out")
        if out is not None and not isinstance(out, ndarray):
            raise TypeError("Output arguments type must be cupy.ndarray")
        # take, put and fill copy host indices and values over (fill: a 0-d array's value)
        args, kwargs = unwrap_all(args, kwargs, f"cupy.ndarray.{name}", allow_host=name in _TAKE_HOST)
        if name == "astype":
            bound = dict(zip(("dtype", "order", "casting", "subok", "copy"), args), **kwargs)
            if bound.get("casting") is not None:
                raise TypeError("casting is not supported yet")
            if not bound.get("copy", True) and np.dtype(bound["dtype"]) == a.dtype:
                return self.array                  # copy=False and nothing to do: the array itself
            args, kwargs = (bound["dtype"],), {k: v for k, v in bound.items()
                                               if k in ("order", "copy") and v is not None}
        if name == "view" and kwargs.pop("type", None) is not None:
            _not_modelled("ndarray.view(type=)")
        if name in ("argmax", "argmin") and kwargs.get("dtype") is not None:
            dtype = kwargs.pop("dtype")            # a CuPy-only keyword: the index type
            return wrap(getattr(a, name)(*args, **kwargs).astype(dtype), inputs=(a,))
        if name == "take":
            return wrap(_take(a, *args, **kwargs), inputs=(a,))
        if name == "put" and len(args) < 3:
            kwargs.setdefault("mode", "wrap")      # CuPy's default mode is 'wrap'
        if name == "fill" and isinstance(args[0], np.ndarray):
            if args[0].ndim:
                raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
            args = [args[0].item()]
        if name in _SYNCING_METHODS:
            synchronize(f"ndarray.{name}()")
        result = getattr(a, name)(*args, **kwargs)
        if out is not None and result is out._a:
            return out
        if name in _VIEWS or name in _KEEP_LAYOUT:
            return wrap(result, c_order=False)
        return wrap(result, inputs=(a,))


def _take(a, indices, axis=None, out=None):
    """a.take(indices, axis) with CuPy's wrap-around of out-of-bounds indices."""
    n = a.size if axis is None else a.shape[axis]
    indices = np.asarray(indices)
    return np.take(a, indices % n if n else indices, axis=axis, out=out)


def _not_modelled(what):
    raise NotImplementedError(f"the CuPy stand-in does not model {what}; add it to tests/standin if the "
                              "project starts to use it")
