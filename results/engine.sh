# Sourced by results/bench, results/conv-ab, results/profile and
# results/jobs-scaling (the native engine only): builds the
# engine they time and sets $redqueen to it. They set $out (where the files
# go) and $default_out (their default folder) first.
#
# ISA=native (the default) builds the usual engine: the widest kernels the
# CPU runs. ISA=avx2 builds it without AVX-512 (`--no-default-features`,
# into target/avx2/) and caps PyTorch at AVX2 the same way (ATen's kernels,
# oneDNN's convolutions, MKL's matrix multiplies), so that a machine with
# AVX-512 can time the code an AVX2-only CPU runs, on both sides. It is the
# same instruction set, not the same machine: an AVX2-only CPU has its own
# caches and clocks, so such figures stand for that Xeon alone.
isa=${ISA:-native}
case $isa in
    native)
        cargo build --release
        redqueen=target/release/redqueen ;;
    avx2)
        # The default folder ($default_out) holds the native engine's files.
        [[ $(realpath -m -- "$out") != "$(realpath -m -- "$default_out")" ]] \
            || { echo "$0: with ISA=avx2, name an output folder other than $default_out (it holds the native engine's files)" >&2; exit 2; }
        grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo \
            || { echo "$0: ISA=avx2 needs a CPU with AVX2 and FMA" >&2; exit 2; }
        cargo build --release --no-default-features --target-dir target/avx2
        redqueen=target/avx2/release/redqueen
        export ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 ;;
    *)
        echo "$0: ISA must be native or avx2, got '$isa'" >&2
        exit 2 ;;
esac

# lscpu.txt, and commit.txt: the engine these numbers are of (the JSON has
# the crate version only), whether the code differed from the commit (the
# output folder itself may be tracked, so only the build's inputs count),
# and the ISA setting.
record_engine() {
    lscpu > "$1/lscpu.txt"
    { git rev-parse --short HEAD 2>/dev/null || echo "no git"
      [[ -n $(git status --porcelain --untracked-files=no -- src Cargo.toml Cargo.lock 2>/dev/null) ]] \
          && echo "with uncommitted changes to src/ or Cargo files"
      [[ $isa == avx2 ]] && echo "ISA=avx2: redqueen built without AVX-512;" \
          "PyTorch with ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2"
    } > "$1/commit.txt" || true
}
