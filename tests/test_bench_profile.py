"""scripts/bench_profile.py: the trace summary that names what bounds the RNN's step on a GPU."""

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))
bench_profile = pytest.importorskip("bench_profile")


def gpu_trace(kernels: list[tuple[str, float, float]], stream: str = "Stream #7(Kernel,MemcpyH2D)") -> dict:
    """A Perfetto trace as JAX writes it on a GPU: a host process, the device's process with a stream line,
    CUPTI's overhead line and a derived "XLA Ops" line that overlap the kernels (and must not count)."""
    meta = [
        {"ph": "M", "pid": 1, "name": "process_name", "args": {"name": "/host:CPU"}},
        {"ph": "M", "pid": 1, "tid": 5, "name": "thread_name", "args": {"name": "python"}},
        {"ph": "M", "pid": 2, "name": "process_name", "args": {"name": "/device:GPU:0"}},
        {"ph": "M", "pid": 2, "tid": 7, "name": "thread_name", "args": {"name": stream}},
        {"ph": "M", "pid": 2, "tid": 8, "name": "thread_name", "args": {"name": "XLA Ops"}},
        {"ph": "M", "pid": 2, "tid": 9, "name": "thread_name", "args": {"name": "CUPTI overhead"}},
    ]
    events = [{"ph": "X", "pid": 2, "tid": 7, "name": n, "ts": ts, "dur": d} for n, ts, d in kernels]
    derived = [{"ph": "X", "pid": 2, "tid": t, "name": "fusion", "ts": 0, "dur": 1000} for t in (8, 9)]
    host = [{"ph": "X", "pid": 1, "tid": 5, "name": "PjitFunction(step)", "ts": 0, "dur": 1000}]
    return {"displayTimeUnit": "ns", "traceEvents": meta + events + derived + host + [{}]}


def summary(kernels, wall_us, steps=1, width=10):
    where, events = bench_profile.device_events(gpu_trace(kernels))
    assert where == "gpu"
    return bench_profile.summarise(events, steps, width, wall_s=wall_us * 1e-6, step_flops=1e9)


def test_launch_bound_step_is_named_by_the_device_idle_time():
    # two steps of ten time steps; a 10 µs kernel every 100 µs: busy 10% of the steps' 1,000 µs
    s = summary([(f"loop_fusion_{i}", i * 100.0, 10.0) for i in range(10)], wall_us=1000, steps=2, width=5)
    assert s["kernels"] == 10 and s["kernels_per_time_step"] == 1.0
    assert s["device_busy"] == 0.1 and s["device_span_busy"] == pytest.approx(100 / 910, abs=1e-3)
    assert s["step_ms"] == 0.5
    assert s["bound"].startswith("launches") and s["lines"] == ["Stream #7(Kernel,MemcpyH2D)"]


def test_matmul_bound_step_and_its_flop_rate():
    kernels = [("sm90_xmma_gemm_bf16bf16_bf16f32", 0.0, 80.0), ("loop_add_fusion", 80.0, 20.0)]
    s = summary(kernels, wall_us=110, steps=2)
    assert s["share"] == {"matmul": 0.8, "copy": 0.0, "other": 0.2}
    assert s["bound"].startswith("the recurrent matmul")
    assert s["matmul_tflops"] == pytest.approx(2 * 1e9 / 80e-6 / 1e12, rel=1e-3)  # two steps' FLOPs
    assert s["top_kernels"][0] == ["sm90_xmma_gemm_bf16bf16_bf16f32", 0.8]


def test_busy_device_of_short_elementwise_kernels_is_memory_bound():
    kernels = [("nvjet_tst_128x64", 0.0, 30.0), ("Memcpy DtoH", 30.0, 10.0), ("input_reduce_fusion", 40.0, 60.0)]
    s = summary(kernels, wall_us=100)
    assert s["share"]["copy"] == 0.1 and s["device_busy"] == 1.0
    assert s["bound"].startswith("memory") and "35.0 µs" in s["bound"]  # the mean of the copy and the fusion


def test_gpu_lines_named_otherwise_still_exclude_the_derived_ones():
    where, events = bench_profile.device_events(gpu_trace([("loop_fusion", 0.0, 10.0)], stream="Compute 7"))
    assert where == "gpu" and [(e["name"], e["line"]) for e in events] == [("loop_fusion", "Compute 7")]


def test_a_trace_without_a_gpu_process_is_taken_for_a_cpu_one_and_its_lines_listed():
    trace = gpu_trace([("loop_fusion", 0.0, 10.0)])
    trace["traceEvents"] = [e for e in trace["traceEvents"] if e.get("pid") != 2]
    assert bench_profile.device_events(trace) == ("cpu", [])
    assert bench_profile.line_names(trace) == ["/host:CPU", "python"]


def test_overlapping_streams_count_once_in_the_busy_time():
    assert bench_profile.busy_time([{"ts": 0, "dur": 10}, {"ts": 5, "dur": 10}, {"ts": 30, "dur": 5}]) == 20


def test_kernels_are_counted_per_time_step_run_padding_included():
    assert bench_profile.processed_width("per-batch", 200, 16) == 224  # its length class
    assert bench_profile.processed_width("per-chunk", 200, 16) == 200  # 12 chunks and a half one
    assert bench_profile.processed_width("per-chunk", 201, 16) == 208


def test_script_profiles_a_real_step_and_a_failed_shape_spares_the_next(tmp_path):
    out = subprocess.run(  # batch 0 fails (no tokens to time); batch 4 must still be profiled
        [sys.executable, str(SCRIPTS / "bench_profile.py"), "--embed", "8", "--hidden", "16", "--tokens", "12",
         "--steps", "1", "--config", "0:float32", "4:float32", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300, check=True)
    failed, figures = (json.loads(x) for x in out.stdout.strip().splitlines() if x.startswith("{"))
    assert failed["batch"] == 0 and "error" in failed and failed["bound"].startswith("unknown")
    assert figures["where"] == "cpu" and figures["kernels"] > 0 and figures["step_ms"] > 0
    assert figures["time_steps"] == 16 and figures["bound"].startswith("not judged on a CPU")  # 12 tokens: a chunk
    trace = next(tmp_path.glob("gru-4-float32-unroll*-chunk16-per-chunk/**/perfetto_trace.json.gz"))
    with gzip.open(trace, "rt") as f:
        assert json.load(f)["traceEvents"]
