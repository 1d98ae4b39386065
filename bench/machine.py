"""What the benchmark scripts say about the CPU they ran on. "AMD EPYC" alone names both this
project's AVX2-only Zen 1 VMs and its AVX-512 Zen 5 ones (~5x apart per iteration), so the family and
model numbers and the vector ISA go with the name."""
import platform


def _cpuinfo():
    """The first processor's fields of /proc/cpuinfo ({} where there is none)."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def cpu_flags():
    return set(_cpuinfo().get("flags", "").split())


def cpu_name():
    """The model name with its family and model numbers: 'AMD EPYC family 23 model 1'."""
    info = _cpuinfo()
    name = info.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in info and "model" in info:
        name += f" family {info['cpu family']} model {info['model']}"
    return name


def cpu_slug():
    """'family25-model17' (for a section name: one per CPU generation), or '' where /proc/cpuinfo has no numbers."""
    info = _cpuinfo()
    return f"family{info['cpu family']}-model{info['model']}" if "cpu family" in info and "model" in info else ""


def cpu_kind(flags=None):
    """The vector ISA that decides stylize's CPU plan: AMX-BF16, AVX512-BF16, AVX-512 or AVX2."""
    flags = cpu_flags() if flags is None else flags
    return ("AMX-BF16" if "amx_bf16" in flags else "AVX512-BF16, no AMX" if "avx512_bf16" in flags
            else "AVX-512" if "avx512f" in flags else "AVX2, no AVX-512" if "avx2" in flags else "no AVX2")


def cpu_description():
    """Name and ISA, as the benchmark sections print it: 'AMD EPYC family 23 model 1 (AVX2, no AVX-512)'."""
    return f"{cpu_name()} ({cpu_kind()})"


def bf16_default(flags=None):
    """Whether this CPU has bf16 dot products (AMX or AVX512-BF16), where `--precision auto` runs a
    fast filter in bf16 and VGG19 in bf16 or mixed (default_precision)."""
    flags = cpu_flags() if flags is None else flags
    return "amx_bf16" in flags or "avx512_bf16" in flags


def default_precision(flags=None):
    """What `--precision auto` runs VGG19 in here (src/engine/runtime.cpp): bf16 with AMX, mixed with
    AVX512-BF16 and no AMX, fp32 otherwise."""
    flags = cpu_flags() if flags is None else flags
    return "bf16" if "amx_bf16" in flags else "mixed" if "avx512_bf16" in flags else "fp32"
