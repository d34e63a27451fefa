"""How near the CPU's arithmetic limit training runs: a model's counted FLOPs and the CPU's peak.

A training arm's GFLOP/s is its images a second times the training FLOPs of
one image, counted from the Keras model's layers; the peak is read from this
machine. Their ratio says how much of the CPU the arithmetic uses, the rest
going to memory-bound work (normalization, activations, pooling, the
optimizer), the input pipeline and per-step overhead.
"""

import os
from pathlib import Path

# Vector widths in 32-bit lanes, widest first, by the /proc/cpuinfo flag that
# provides them and the oneDNN ISA name (ONEDNN_MAX_CPU_ISA) that caps them.
_VECTOR_LANES = (("avx512f", "AVX512", 16), ("avx2", "AVX2", 8), ("sse2", "SSE41", 4))
# The assumption behind the peak: two fused multiply-add units a core, each
# doing one FMA (2 FLOPs) on every float32 lane a cycle, the figure for AMD
# Zen 2-4 and Intel Skylake-SP and later with AVX2. A Zen 4's AVX-512 runs on
# the same 256-bit units (two passes), so its true AVX-512 peak is the AVX2
# one; capped at AVX2 (mnistpipe's default, ONEDNN_MAX_CPU_ISA) both agree.
_FMA_UNITS = 2
_FLOPS_PER_FMA = 2


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The first processor's flags in /proc/cpuinfo; empty where there is none."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_megahertz(cpuinfo: str | None = None) -> float | None:
    """The first processor's clock in /proc/cpuinfo (a VM reports the nominal one)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return None
    for line in cpuinfo.splitlines():
        if line.startswith("cpu MHz"):
            return float(line.split(":", 1)[1])
    return None


def cpu_kind(flags: set[str]) -> str:
    """ "AVX-512", "AVX2" or "SSE": the widest float vectors the CPU has."""
    if "avx512f" in flags:
        return "AVX-512"
    return "AVX2" if "avx2" in flags else "SSE"


def peak(cpuinfo: str | None = None, cores: int | None = None, isa_cap: str | None = None) -> dict:
    """The CPU's float32 peak in GFLOP/s: cores × clock × FLOPs a cycle (see _FMA_UNITS).

    ``isa_cap`` is oneDNN's ONEDNN_MAX_CPU_ISA (read from the environment when
    None): kernels capped at AVX2 cannot use wider vectors, so the peak they
    can reach is the AVX2 one. ``cores`` defaults to the cores this process may
    run on (virtual cores: two hyperthreads of one core would share its units).
    """
    flags = cpu_flags(cpuinfo)
    megahertz = cpu_megahertz(cpuinfo)
    cores = cores or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
    isa_cap = (os.environ.get("ONEDNN_MAX_CPU_ISA", "") if isa_cap is None else isa_cap).upper()
    available = [(name, lanes) for flag, name, lanes in _VECTOR_LANES if flag in flags]
    if isa_cap:
        # "AVX512_CORE", "AVX2_VNNI" and the like cap at their vector width.
        allowed = {name for name, _ in available if isa_cap.startswith(name)}
        capped = [entry for entry in available if entry[0] in allowed] or available[-1:]
        available = capped if capped else available
    lanes = available[0][1] if available else 1
    figures = {
        "cpu_kind": cpu_kind(flags),
        "cpu_cores": cores,
        "cpu_megahertz": megahertz,
        "peak_vector_lanes": lanes,
        "peak_isa_cap": isa_cap or "none",
        "peak_assumption": (
            f"{cores} cores x clock x {_FMA_UNITS} FMA units x {lanes} float32 lanes x "
            f"{_FLOPS_PER_FMA} FLOPs"
        ),
    }
    if megahertz is not None:
        figures["peak_gflops"] = cores * megahertz * 1e-3 * _FMA_UNITS * lanes * _FLOPS_PER_FMA
    return figures


def forward_multiply_adds(model) -> list[int]:
    """Multiply-adds of one image's forward pass, layer by layer (Conv2D and Dense layers).

    The convolutions and matrix products are nearly all of the arithmetic;
    normalization, activations and pooling are a few operations an element,
    bound by memory rather than by the multiply-add units, and not counted.
    Nested models (a subclassed model's layers) are walked.
    """
    import keras

    counts = []
    for layer in _leaf_layers(model):
        if isinstance(layer, keras.layers.Conv2D):
            kernel_height, kernel_width, channels_in, channels_out = layer.kernel.shape
            # The shape the layer was built for: a subclassed model's layers have
            # no symbolic output to read it from.
            _, height, width, _ = layer.compute_output_shape(
                layer._build_shapes_dict["input_shape"]
            )
            counts.append(
                height * width * kernel_height * kernel_width * channels_in * channels_out
            )
        elif isinstance(layer, keras.layers.Dense):
            inputs, outputs = layer.kernel.shape
            counts.append(inputs * outputs)
    return counts


def _leaf_layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            yield from _leaf_layers(layer)
        else:
            yield layer


def training_flops_per_image(model) -> float:
    """FLOPs of one training image: the forward pass, then the input and weight gradients.

    Each gradient costs as many multiply-adds as the forward pass; the first
    layer's input gradient is not computed (nothing before it learns). Two
    FLOPs a multiply-add. The quickstart model gives 17.4 MFLOP, the figure
    README.md's Speed section has used.
    """
    counts = forward_multiply_adds(model)
    if not counts:
        return 0.0
    return 2.0 * (3 * sum(counts) - counts[0])


def serving_flops_per_image(model) -> float:
    """FLOPs of one image's forward pass."""
    return 2.0 * sum(forward_multiply_adds(model))
