"""The orchestration benchmark's report renders every section from a result of the shape run.py collects."""

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def load_run():
    spec = importlib.util.spec_from_file_location("bench_orchestration_run", REPO / "bench" / "orchestration" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def summary(value):
    return {"median": value, "min": value, "max": value, "n": 1}


def test_report_gives_ratios_against_ganeti_add_plus_startup():
    run = load_run()
    results = {
        "ganeti": {"operations": {"add": summary(4.0), "startup": summary(4.0), "add_to_running": summary(8.0),
                                  "migrate": summary(6.0), "failover": summary(4.0)}},
        "herd_fake": {"add": summary(2.0), "migrate": summary(3.0), "failover": summary(2.0)},
        "herd_kvm": {"add": summary(4.0)},
        "migration": [{"dirty_mib": 128, "bandwidth": 128, "requested_downtime_ms": 30, "task_s": 5.0,
                       "qemu_total_ms": 2000, "downtime_ms": 11, "transferred_mib": 200, "limit_s": 1.0}],
        "evacuation": {"max_parallel=1": 90.0, "max_parallel=6": 30.0},
    }
    text = run.report(results)
    assert "| add | 2.00 | 8.00 | 0.25 |" in text
    assert "| migrate | 3.00 | 6.00 | 0.50 |" in text
    assert "0.50 x Ganeti's fake-hypervisor add" in text
    assert "| 128 | 200 | 128 | 1.56 | 2.00 | 1.28 | 5.00 | 30 | 11 |" in text  # limit = MiB sent / bandwidth
    assert "sequential/parallel = 3.00" in text
