"""The one exception type a user can cause. The CLI turns it into a message and exit code 2."""


# Most outputs one call makes (samples, variations, interpolation steps): a mistyped count fails
# with a message instead of a failed allocation of many gigabytes.
MAX_OUTPUTS = 1_000_000


class VaekitError(Exception):
    """An error caused by the user's input (path, file, shape, flag): shown as one clear line."""


def check_count(name: str, value, minimum: int = 1, maximum: int | None = None) -> int:
    """value as an int if it is a whole number in [minimum, maximum], else a VaekitError naming it."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):  # ints, numpy ints; not 2.0
        raise VaekitError(f"{name} must be a whole number, got {value!r}")
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"from {minimum:,} to {maximum:,}" if maximum is not None else f"of at least {minimum:,}"
        raise VaekitError(f"{name} must be a whole number {bound}, got {value:,}")
    return value


def check_finite(name: str, value, minimum: float | None = None) -> float:
    """value as a float if it is a finite number (at least `minimum`), else a VaekitError naming it."""
    import math

    try:
        value = float(value)
    except (TypeError, ValueError):
        raise VaekitError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(value) or (minimum is not None and value < minimum):
        raise VaekitError(f"{name} must be a finite number" + (f" of at least {minimum:g}" if minimum is not None
                                                                 else "") + f", got {value}")
    return value
