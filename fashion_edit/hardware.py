"""Hardware-aware speed settings: probe the device once, decide every ``auto`` setting, log why.

Machines differ (DESIGN.md §9.1): on a CPU without native bf16 (capability below AVX512 or no
oneDNN bf16) bf16 autocast is emulated and a VGG loss under it runs >10x slower than fp32, and
channels_last only pays where oneDNN's blocked kernels do.  So ``vgg.bf16`` and
``train_*.channels_last`` default to ``auto``; :func:`resolve_speed` turns them into plain bools
with a reason each, :func:`describe` gives the one line for stage logs and :func:`as_tags` the
MLflow tags.

:func:`probe` is cached once per process; :func:`resolve_speed` calls it through this module's
attribute, so tests can ``monkeypatch.setattr(fashion_edit.hardware, "probe", lambda: fake)``.
"""
from __future__ import annotations

import functools
import statistics
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Literal

import torch

Auto = Literal["auto"]
AVX512_OR_BETTER = ("AVX512",)  # torch capability names starting like this (AVX512, AVX512_VNNI, AVX512_BF16, ...)
CUDA_CHANNELS_LAST_MIN = (7, 0)  # tensor cores: NHWC kernels pay from Volta on


@dataclass(frozen=True)
class HardwareProbe:
    device: str                                   # "cpu" | "cuda"
    cpu_capability: str                           # torch.backends.cpu.get_cpu_capability(): AVX2, AVX512, ...
    native_bf16: bool                             # CPU: oneDNN bf16 supported; CUDA: torch.cuda.is_bf16_supported()
    cuda_capability: tuple[int, int] | None = None
    threads: int = 1                              # torch.get_num_threads() when probed


def detect() -> HardwareProbe:
    """Probe the device now (uncached); :func:`probe` is the cached version the code uses."""
    capability = str(torch.backends.cpu.get_cpu_capability())
    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability()
        return HardwareProbe("cuda", capability, bool(torch.cuda.is_bf16_supported()), (int(major), int(minor)),
                             torch.get_num_threads())
    try:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # older/other builds without the op: assume emulated
        native = False
    return HardwareProbe("cpu", capability, native, None, torch.get_num_threads())


@functools.cache
def _cached_probe() -> HardwareProbe:
    return detect()


def probe() -> HardwareProbe:
    """The device this process runs on, probed once (``_cached_probe.cache_clear()`` re-probes)."""
    return _cached_probe()


def _avx512_or_better(hw: HardwareProbe) -> bool:
    return hw.cpu_capability.upper().startswith(AVX512_OR_BETTER)


def _cuda_name(hw: HardwareProbe) -> str:
    return f"sm_{hw.cuda_capability[0]}{hw.cuda_capability[1]}" if hw.cuda_capability else "unknown capability"


def bf16_is_native(hw: HardwareProbe) -> bool:
    """bf16 runs on real hardware paths: CUDA with bf16 support, or an AVX512+ CPU with oneDNN bf16."""
    if hw.device == "cuda":
        return hw.native_bf16
    return hw.native_bf16 and _avx512_or_better(hw)


@dataclass(frozen=True)
class SpeedSettings:
    bf16: bool
    channels_last: bool
    threads: int
    reasons: dict[str, str] = field(default_factory=dict)  # "bf16" | "channels_last" | "threads" -> why


def _resolve_bf16(bf16: bool | Auto | None, hw: HardwareProbe) -> tuple[bool, str]:
    native = bf16_is_native(hw)
    if bf16 is None:
        return False, "not used by this stage"
    if bf16 == "auto":
        return native, "auto: native" if native else "auto: not native"
    if not isinstance(bf16, bool):
        raise ValueError(f"bf16 must be true, false or 'auto'; got {bf16!r}")
    if bf16 and not native:
        if hw.device == "cuda":
            where = f"this GPU ({_cuda_name(hw)}, no bf16 support)"
        else:
            why = "no native bf16" if not hw.native_bf16 else "oneDNN bf16 unused below AVX512"
            where = f"this CPU (capability {hw.cpu_capability}, {why})"
        message = (f"bf16 is emulated on {where}: expect >10x slower VGG terms; set vgg.bf16: auto")
        warnings.warn(message, RuntimeWarning, stacklevel=3)
        return True, "explicit; emulated here, expect >10x slower VGG terms"
    return bf16, "explicit"


# channels_last is chosen on a CPU only when the timed step is at least this much faster (noise margin)
LAYOUT_GAIN = 0.95
LayoutTimer = Callable[[], tuple[float, float]]  # -> seconds of one step in (NCHW, channels_last)


def _resolve_channels_last(channels_last: bool | Auto, hw: HardwareProbe,
                           layout_timer: LayoutTimer | None = None) -> tuple[bool, str]:
    if channels_last != "auto":
        if not isinstance(channels_last, bool):
            raise ValueError(f"channels_last must be true, false or 'auto'; got {channels_last!r}")
        return channels_last, "explicit"
    if hw.device == "cuda":
        ok = hw.cuda_capability is not None and hw.cuda_capability >= CUDA_CHANNELS_LAST_MIN
        return ok, f"auto: CUDA {_cuda_name(hw)} {'>=' if ok else '<'} 7.0"
    if layout_timer is not None:  # on a CPU it depends on the network's shapes: measure, don't assume
        nchw, channels_last_s = layout_timer()
        faster = channels_last_s < LAYOUT_GAIN * nchw
        return faster, (f"auto: timed on this {hw.cpu_capability} CPU, generator step {channels_last_s:.3f} s "
                        f"channels_last vs {nchw:.3f} s NCHW")
    if _avx512_or_better(hw):
        return True, f"auto: {hw.cpu_capability} CPU, oneDNN blocked kernels pay"
    return False, f"auto: {hw.cpu_capability} CPU, layout copies cost more than they gain"


def median_seconds(fn: Callable[[], None], repeats: int = 3, warmup: int = 1) -> float:
    """Median wall time of ``fn`` after ``warmup`` untimed calls (oneDNN picks kernels on the first)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def resolve_speed(bf16: bool | Auto | None, channels_last: bool | Auto, threads: int | Auto = "auto",
                  hw: HardwareProbe | None = None, layout_timer: LayoutTimer | None = None) -> SpeedSettings:
    """Turn ``auto`` settings into bools for this machine (``hw``: default the cached :func:`probe`).

    An explicit ``True`` for bf16 where it is emulated stays ``True`` and warns (RuntimeWarning);
    an explicit thread count calls :func:`torch.set_num_threads`.  ``bf16=None``: the stage has no
    bf16 part (resolved to ``False``, no warning). ``layout_timer``: on a CPU, ``auto`` channels_last is
    decided by timing the network both ways (without one, by the CPU capability).
    """
    hw = hw if hw is not None else probe()  # module attribute: a monkeypatched probe is honoured
    bf16_value, bf16_reason = _resolve_bf16(bf16, hw)
    cl_value, cl_reason = _resolve_channels_last(channels_last, hw, layout_timer)
    if threads == "auto":
        n_threads, threads_reason = torch.get_num_threads(), "auto: torch default"
    else:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive int or 'auto'; got {threads!r}")
        torch.set_num_threads(threads)
        n_threads, threads_reason = threads, "explicit"
    return SpeedSettings(bf16_value, cl_value, n_threads,
                         {"bf16": bf16_reason, "channels_last": cl_reason, "threads": threads_reason})


def _on(value: bool) -> str:
    return "on" if value else "off"


def describe(settings: SpeedSettings, hw: HardwareProbe) -> str:
    """One line for stage logs: what was probed and what was decided, with reasons."""
    device = f"cuda {_cuda_name(hw)} (cpu {hw.cpu_capability})" if hw.device == "cuda" else f"cpu {hw.cpu_capability}"
    r = settings.reasons
    return (f"speed: {device}, native bf16 {'yes' if bf16_is_native(hw) else 'no'} -> "
            f"vgg bf16 {_on(settings.bf16)} ({r.get('bf16', '')}), "
            f"channels_last {_on(settings.channels_last)} ({r.get('channels_last', '')}), "
            f"threads {settings.threads}")


def as_tags(settings: SpeedSettings, hw: HardwareProbe) -> dict[str, str]:
    """MLflow tags (``speed.*``) recording the probe and the decisions."""
    tags = {"speed.device": hw.device, "speed.cpu_capability": hw.cpu_capability,
            "speed.native_bf16": str(bf16_is_native(hw)).lower(),
            "speed.vgg_bf16": str(settings.bf16).lower(), "speed.channels_last": str(settings.channels_last).lower(),
            "speed.threads": str(settings.threads)}
    if hw.cuda_capability is not None:
        tags["speed.cuda_capability"] = f"{hw.cuda_capability[0]}.{hw.cuda_capability[1]}"
    tags.update({f"speed.{key}_reason": value for key, value in settings.reasons.items()})
    return tags
