"""Hardware-in-the-loop matrix: deploy every cell of a TOML matrix to its device, gate the measurements, report.

    matrix (TOML) -> cells (model, method, ratio, repair, target, backend [, fault])          matrix.py
                  -> lanes: one per device (cells on one device run in sequence,             devices.py, runner.py
                     lanes run in parallel)
                  -> each cell: `edgefold deploy ... --out DIR/cells/<id>/deploy` as a       supervise.py
                     subprocess in its own process group (a crash or hang cannot take the
                     matrix down; a timeout kills its whole process tree)
                  -> DIR/cells/<id>/cell.json (written atomically: the unit of resume)        state.py
                  -> gates (agreement, accuracy, latency vs baseline, RAM/Flash budgets,      gates.py, baseline.py
                     output CRC)
                  -> DIR/hil.json, JUnit XML, DIR/summary.md, optionally a new baseline       outputs.py

Gates are evaluated from the stored measurements every time, so a resumed run (or a re-run with another baseline)
gives verdicts consistent with the baseline it was given, without deploying again.
"""

from __future__ import annotations

from edgefold.hil.baseline import BASELINE_SCHEMA, baseline_entry, load_baseline, write_baseline
from edgefold.hil.devices import Lane, resolve_lane
from edgefold.hil.gates import (
    NO_BASELINE,
    GateResult,
    Gates,
    evaluate_gates,
    latency_gate,
    parse_bytes,
    parse_fraction,
)
from edgefold.hil.matrix import AXES, Cell, DeviceConfig, Matrix, load_matrix, target_info
from edgefold.hil.outputs import (
    HIL_SCHEMA,
    HISTORY_SCHEMA,
    append_history,
    gates_off,
    history_record,
    junit_xml,
    summary_markdown,
    write_outputs,
)
from edgefold.hil.runner import run_matrix
from edgefold.hil.state import (
    CELL_SCHEMA,
    ERROR,
    FAILED,
    PASSED,
    PENDING,
    SKIPPED,
    STATE_SCHEMA,
    CellOutcome,
    HilRun,
)
from edgefold.hil.supervise import RESULT_SCHEMA, Interrupted, deploy_argv, kill_tree, run_cell, validate_result

__all__ = [
    "AXES", "BASELINE_SCHEMA", "CELL_SCHEMA", "ERROR", "FAILED", "HIL_SCHEMA", "HISTORY_SCHEMA", "NO_BASELINE",
    "PASSED", "PENDING", "RESULT_SCHEMA", "SKIPPED", "STATE_SCHEMA", "Cell", "CellOutcome", "DeviceConfig",
    "GateResult", "Gates", "HilRun", "Interrupted", "Lane", "Matrix", "append_history", "baseline_entry",
    "deploy_argv", "evaluate_gates", "gates_off", "history_record", "junit_xml", "kill_tree", "latency_gate",
    "load_baseline", "load_matrix", "parse_bytes", "parse_fraction", "resolve_lane", "run_cell", "run_matrix",
    "summary_markdown", "target_info", "validate_result", "write_baseline", "write_outputs",
]
