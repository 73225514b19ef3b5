"""Turn the per-machine simulation results into canonical tables and ground-truth frames.

Columns are built as Arrow arrays (strings as dictionary arrays over small label lists, so no
Python object is created per row), conformed to :mod:`workbench.schema` and given their
``event_id`` by :func:`workbench.schema.with_event_ids` in one vectorised pass per table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from workbench import schema
from workbench.simulate.calendar import KIND_NAMES, Calendar
from workbench.simulate.catalog import CODE_INFO, CUSTOMERS, REASON_CODES, Catalog
from workbench.simulate.machine import ALL_CAUSES, DOWN, PRECURSOR_KINDS, STATE_NAMES
from workbench.simulate.production import REJECT_REASONS, MaterialLots
from workbench.simulate.quality import LIMIT_FACTORS, SUBGROUP_SIZE
from workbench.simulate.signals import METRICS
from workbench.simulate.timeline import HOUR, MINUTE
from workbench.simulate.truth import oee_frame

if TYPE_CHECKING:
    from workbench.simulate.config import PlantConfig
    from workbench.simulate.plant import MachineRun

SOURCE = "simulator"
_PANDAS_TYPES = {pa.int32(): pd.Int32Dtype(), pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}
PRECURSOR_METRICS: dict[str, tuple[str, ...]] = {
    "vibration": ("vibration_rms",), "hydraulic": ("hydraulic_pressure",),
    "drive": ("motor_current", "drive_temp"),
}
INSPECTION_DELAY = 20 * MINUTE


# --------------------------------------------------------------------------------------------
# arrow helpers


def _ts(ms: Any) -> pa.Array:
    return pa.array(np.asarray(ms, dtype=np.int64) * 1000, type=pa.timestamp("us", tz="UTC"))


def _dict(codes: Any, labels: list[str]) -> pa.Array:
    codes = np.asarray(codes, dtype=np.int64)
    mask = codes < 0
    idx = pa.array(np.where(mask, 0, codes).astype(np.int32), type=pa.int32(),
                   mask=mask if mask.any() else None)
    return pa.DictionaryArray.from_arrays(idx, pa.array(labels or [""], type=pa.string()))


def _const(value: str, n: int) -> pa.Array:
    return _dict(np.zeros(n, np.int64), [value])


def _label_codes(values: list[str | None]) -> tuple[np.ndarray, list[str]]:
    labels = sorted({v for v in values if v is not None})
    pos = {v: i for i, v in enumerate(labels)}
    return np.array([pos[v] if v is not None else -1 for v in values], dtype=np.int64), labels


def _strs(values: list[str | None]) -> pa.Array:
    codes, labels = _label_codes(values)
    return _dict(codes, labels)


def _frame(name: str, cols: dict[str, Any]) -> pd.DataFrame:
    tbl = schema.TABLES[name]
    n = max((len(v) for v in cols.values()), default=0)
    cols = {"source": _const(SOURCE, n), **cols}
    data = pa.table(cols)
    data = schema.with_event_ids(tbl, data) if tbl.has_event_id else schema.conform(tbl, data, where=name)
    return data.to_pandas(types_mapper=_PANDAS_TYPES.get)


def _cat(parts: list[np.ndarray], dtype: Any = np.int64) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)


# --------------------------------------------------------------------------------------------


def build(cfg: PlantConfig, catalog: Catalog, cal: Calendar, lots: MaterialLots,
          runs: list[MachineRun]) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """Build every canonical table and every ground-truth frame."""
    b = _Builder(cfg, catalog, cal, lots, runs)
    # Tables first: the truth reuses their event ids and labels.
    tables = {
        "machines": b.machines(), "parts": b.parts(), "part_rates": b.part_rates(),
        "shift_calendar": b.shift_calendar(), "planned_stops": b.planned_stops(),
        "reason_codes": b.reason_codes(), "machine_telemetry": b.telemetry(),
        "production_events": b.production_events(), "machine_states": b.machine_states(),
        "downtime_events": b.downtime_events(), "scrap_events": b.scrap_events(),
        "work_orders": b.work_orders(), "quality_measurements": b.quality_measurements(),
        "characteristics": b.characteristics(), "inspections": b.inspections(),
    }
    truth = {
        "oee": b.oee(), "stops": b.stops_truth(tables["downtime_events"]),
        "anomaly_windows": b.anomaly_windows(), "process_shifts": b.process_shifts(),
        "counter_resets": b.counter_resets(), "material_lots": b.material_lots(),
        "no_data": b.no_data(), "subgroups": b.subgroups(), "lots": b.lots(),
    }
    return tables, truth


class _Builder:
    def __init__(self, cfg: PlantConfig, catalog: Catalog, cal: Calendar, lots: MaterialLots,
                 runs: list[MachineRun]) -> None:
        self.cfg, self.cat, self.cal, self.bad_lots, self.runs = cfg, catalog, cal, lots, runs
        self.mids = catalog.machine_ids
        self.lines = [f"L{k + 1}" for k in range(cfg.n_lines)]
        # Work orders: one global label list, machine by machine (the extra order last).
        self.wo_labels: list[str] = []
        self.wo_offset: list[int] = []
        for r in runs:
            self.wo_offset.append(len(self.wo_labels))
            n = len(r.tl.order_part) + 1
            self.wo_labels += [f"WO-{self.mids[r.m]}-{o + 1:04d}" for o in range(n)]
        fault_values = sorted({f for r in runs for f in r.stop_fault if f is not None})
        self.fault_labels = fault_values
        self.fault_pos = {f: i for i, f in enumerate(fault_values)}
        # Filled while building the tables, read by the truth frames (see the order in build()).
        self.dt_ids = np.zeros(0, dtype=object)  # downtime event ids
        self.stop_event: dict[tuple[int, int], int] = {}  # (machine, stop) -> first downtime row
        self.sg_labels: list[str] = []  # subgroup ids
        self.lot_labels: list[str] = []  # inspection lot ids

    # -- helpers ------------------------------------------------------------------------------

    def _gpart(self, r: MachineRun, local: np.ndarray) -> np.ndarray:
        return self.cat.machine_parts[r.m][local]

    def _op(self, r: MachineRun, t: np.ndarray) -> np.ndarray:
        return r.operator_of_shift[np.clip(self.cal.shift_of(t), 0, None)]

    def _stop_fault_idx(self, r: MachineRun) -> np.ndarray:
        idx = [self.fault_pos[f] if f is not None else -1 for f in r.stop_fault]
        return np.array(idx or [-1], dtype=np.int64)

    # -- dimensions ---------------------------------------------------------------------------

    def machines(self) -> pd.DataFrame:
        cat = self.cat
        names = [f"{mt.label} {i + 1:0{len(self.mids[0]) - 1}d}" for i, mt in enumerate(cat.machine_type)]
        return _frame("machines", {
            "machine_id": pa.array(self.mids), "name": pa.array(names),
            "line": pa.array([self.lines[k] for k in cat.machine_line]),
            "area": pa.array([mt.area for mt in cat.machine_type]),
            "site": _const(self.cfg.site, len(self.mids)),
            "machine_type": pa.array([mt.label for mt in cat.machine_type]),
            "ideal_cycle_time_s": pa.array(cat.machine_ideal_s)})

    def parts(self) -> pd.DataFrame:
        cat = self.cat
        return _frame("parts", {"part_number": pa.array(cat.part_numbers),
                                "description": pa.array(cat.part_description),
                                "part_family": pa.array([f.key for f in cat.part_family])})

    def part_rates(self) -> pd.DataFrame:
        cat = self.cat
        m = np.concatenate([np.full(len(p), i) for i, p in enumerate(cat.machine_parts)])
        return _frame("part_rates", {
            "machine_id": _dict(m, self.mids), "part_number": _dict(np.concatenate(cat.machine_parts),
                                                                    cat.part_numbers),
            "ideal_cycle_time_s": pa.array(np.concatenate(cat.rate_ideal_s))})

    def shift_calendar(self) -> pd.DataFrame:
        cal = self.cal
        n = len(cal.shift_start)
        return _frame("shift_calendar", {
            "site": _const(self.cfg.site, n), "shift_date": pa.array(cal.shift_date, type=pa.date32()),
            "shift": pa.array(list(cal.shift_name), type=pa.string()),
            "time_start": _ts(cal.shift_start), "time_end": _ts(cal.shift_end)})

    def planned_stops(self) -> pd.DataFrame:
        cal = self.cal
        n = len(cal.stop_start)
        return _frame("planned_stops", {
            "site": _const(self.cfg.site, n), "line": _dict(cal.stop_line, self.lines),
            "machine_id": _dict(cal.stop_machine, self.mids), "time_start": _ts(cal.stop_start),
            "time_end": _ts(cal.stop_end), "kind": _dict(cal.stop_kind, list(KIND_NAMES)),
            "reason_code": pa.array(cal.stop_code, type=pa.string()),
            "notes": pa.array(cal.stop_notes, type=pa.string())})

    def reason_codes(self) -> pd.DataFrame:
        return _frame("reason_codes", {
            name: pa.array([r[i] for r in REASON_CODES])
            for i, name in enumerate(("code", "category", "subcode", "planned", "description"))})

    def characteristics(self) -> pd.DataFrame:
        cat = self.cat
        nom = cat.part_nominal
        tol = np.array([f.tolerance for f in cat.part_family])
        n = len(nom)
        cols: dict[str, Any] = {
            "part_number": pa.array(cat.part_numbers),
            "characteristic": pa.array([f.characteristic for f in cat.part_family]),
            # Every simulated dimension is cut by a wearing tool: configured as engineers would,
            # with the tool-wear chart (expected wear is no alarm, a jump is).
            "unit": _const("mm", n), "chart_type": _const("tool_wear", n),
            "subgroup_size": pa.array(np.full(n, SUBGROUP_SIZE, np.int32)),
            "rules": _const("western_electric", n)}
        for col, factor in LIMIT_FACTORS.items():
            cols[col] = pa.array(np.round(nom + factor * tol, 6))
        return _frame("characteristics", cols)

    # -- facts --------------------------------------------------------------------------------

    def telemetry(self) -> pd.DataFrame:
        parts = [r for r in self.runs if r.telemetry is not None]
        n_metrics = len(METRICS)
        mach, time, metric, value, unc = [], [], [], [], []
        for r in parts:
            tel = r.telemetry
            assert tel is not None
            n = len(tel.time)
            mach.append(np.full(n * n_metrics, r.m))
            time.append(np.tile(tel.time, n_metrics))
            metric.append(np.repeat(np.arange(n_metrics), n))
            value.append(tel.value.ravel())
            unc.append(tel.uncertain.ravel().astype(np.int64))
        metric_codes = _cat(metric)
        return _frame("machine_telemetry", {
            "time": _ts(_cat(time)), "machine_id": _dict(_cat(mach), self.mids),
            "metric": _dict(metric_codes, [m for m, _ in METRICS]), "value": pa.array(_cat(value, float)),
            "unit": _dict(metric_codes, [u for _, u in METRICS]),
            "quality": _dict(_cat(unc), ["good", "uncertain"])})

    def production_events(self) -> pd.DataFrame:
        cols: dict[str, list[np.ndarray]] = {k: [] for k in
                                             ("m", "time", "part", "wo", "ct", "good", "rej", "reason", "op")}
        for r in self.runs:
            c = r.cycles
            obs = np.flatnonzero(c.observed)
            t, rej, ct = c.time[obs], c.reject[obs].astype(np.int64), c.cycle_ms[obs].astype(float)
            order, reason = c.order[obs], c.reason[obs]
            if not self.cfg.cycle_events and len(obs):
                # One count event per machine-minute of running, stamped at the minute's last cycle
                # (so it lies in the same running interval and shift as the cycles it sums).
                minute = t // MINUTE
                last = np.r_[np.flatnonzero(np.diff(minute)), len(t) - 1]
                first = np.r_[0, last[:-1] + 1]
                n_cyc = last - first + 1
                rej_sum = np.add.reduceat(rej, first)
                ct = np.add.reduceat(ct, first) / n_cyc
                # Reason of the minute's last reject (if any).
                rej_pos = np.where(rej > 0, np.arange(len(t)), -1)
                last_rej = np.maximum.reduceat(rej_pos, first)
                reason = np.where(last_rej >= 0, reason[np.clip(last_rej, 0, None)], -1)
                good = n_cyc - rej_sum
                t, order, rej = t[last], order[last], rej_sum
            else:
                good = 1 - rej
            cols["m"].append(np.full(len(t), r.m))
            cols["time"].append(t)
            cols["part"].append(self._gpart(r, r.tl.order_part[order]))
            cols["wo"].append(self.wo_offset[r.m] + order)
            cols["ct"].append(ct)
            cols["good"].append(good)
            cols["rej"].append(rej)
            cols["reason"].append(reason)
            cols["op"].append(self._op(r, t))
        n = int(sum(len(x) for x in cols["time"]))
        return _frame("production_events", {
            "time": _ts(_cat(cols["time"])), "machine_id": _dict(_cat(cols["m"]), self.mids),
            "event_type": _const("cycle" if self.cfg.cycle_events else "count", n),
            "part_number": _dict(_cat(cols["part"]), self.cat.part_numbers),
            "work_order": _dict(_cat(cols["wo"]), self.wo_labels),
            "cycle_time_ms": pa.array(_cat(cols["ct"], float)),
            "good_count": pa.array(_cat(cols["good"], np.int32)),
            "reject_count": pa.array(_cat(cols["rej"], np.int32)),
            "reject_reason": _dict(_cat(cols["reason"]), list(REJECT_REASONS)),
            "machine_state": _const("running", n),
            "operator_id": _dict(_cat(cols["op"]), self.cat.operator_ids)})

    def machine_states(self) -> pd.DataFrame:
        m, s, e, st, fault = [], [], [], [], []
        for r in self.runs:
            tl = r.tl
            fidx = self._stop_fault_idx(r)
            is_down = (tl.st_state == DOWN) & (tl.st_stop >= 0)
            fault.append(np.where(is_down, fidx[np.clip(tl.st_stop, 0, None)], -1))
            m.append(np.full(len(tl.st_start), r.m))
            s.append(tl.st_start)
            e.append(tl.st_end)
            st.append(tl.st_state)
        return _frame("machine_states", {
            "machine_id": _dict(_cat(m), self.mids), "time_start": _ts(_cat(s)), "time_end": _ts(_cat(e)),
            "state": _dict(_cat(st), list(STATE_NAMES)), "fault_code": _dict(_cat(fault), self.fault_labels)})

    def downtime_events(self) -> pd.DataFrame:
        rows: dict[str, list[Any]] = {k: [] for k in ("m", "s", "e", "code", "shift", "wo", "op", "fault",
                                                      "notes")}
        for r in self.runs:
            tl, k = r.tl, r.dt_index
            sh = self.cal.shift_of(tl.st_start[k])
            fidx = self._stop_fault_idx(r)
            stop = tl.st_stop[k]
            rows["m"].append(np.full(len(k), r.m))
            rows["s"].append(tl.st_start[k])
            rows["e"].append(tl.st_end[k])
            rows["code"] += r.dt_code
            rows["shift"].append(sh)
            rows["wo"].append(np.where(stop >= 0, self.wo_offset[r.m] + tl.st_order[k], -1))
            rows["op"].append(r.operator_of_shift[np.clip(sh, 0, None)])
            rows["fault"].append(np.where(stop >= 0, fidx[np.clip(stop, 0, None)], -1))
            rows["notes"] += r.dt_notes
        s, e = _cat(rows["s"]), _cat(rows["e"])
        codes = rows["code"]
        shift_letter = np.array([str(x) for x in self.cal.shift_name] or ["A"])
        sh = _cat(rows["shift"])
        return _frame("downtime_events", {
            "machine_id": _dict(_cat(rows["m"]), self.mids), "time_start": _ts(s), "time_end": _ts(e),
            "duration_min": pa.array((e - s) / MINUTE),
            "reason_code": _strs(codes),
            "reason_category": _strs([CODE_INFO[c][0] if c else None for c in codes]),
            "planned": pa.array([CODE_INFO[c][2] if c else None for c in codes], type=pa.bool_()),
            "shift": pa.array(shift_letter[sh].tolist(), type=pa.string()),
            "work_order": _dict(_cat(rows["wo"]), self.wo_labels),
            "operator_id": _dict(_cat(rows["op"]), self.cat.operator_ids),
            "fault_code": _dict(_cat(rows["fault"]), self.fault_labels),
            "notes": pa.array(rows["notes"], type=pa.string())})

    def scrap_events(self) -> pd.DataFrame:
        cols: dict[str, list[np.ndarray]] = {k: [] for k in ("m", "t", "part", "wo", "qty", "reason", "mat",
                                                             "lab")}
        for r in self.runs:
            c = r.cycles
            sel = np.flatnonzero(c.observed & c.reject)
            if not len(sel):
                continue
            t, order, reason = c.time[sel], c.order[sel], c.reason[sel]
            key = ((t // HOUR) * (len(r.tl.order_part) + 1) + order) * len(REJECT_REASONS) + reason
            uniq, inv = np.unique(key, return_inverse=True)
            qty = np.bincount(inv)
            # Stamp each group at its last reject: unique even when two orders of one part share an hour.
            last_t = np.zeros(len(uniq), np.int64)
            np.maximum.at(last_t, inv, t)
            g_order = np.zeros(len(uniq), np.int64)
            g_order[inv] = order
            g_reason = np.zeros(len(uniq), np.int64)
            g_reason[inv] = reason
            local = r.tl.order_part[g_order]
            gpart = self._gpart(r, local)
            labor_rate = self.cat.machine_type[r.m].labor_rate
            cols["m"].append(np.full(len(uniq), r.m))
            cols["t"].append(last_t)
            cols["part"].append(gpart)
            cols["wo"].append(self.wo_offset[r.m] + g_order)
            cols["qty"].append(qty)
            cols["reason"].append(g_reason)
            cols["mat"].append(qty * self.cat.part_material_cost[gpart])
            cols["lab"].append(qty * self.cat.rate_ideal_s[r.m][local] / 3600.0 * labor_rate)
        reasons = list(REJECT_REASONS)
        reason_codes = _cat(cols["reason"])
        return _frame("scrap_events", {
            "time": _ts(_cat(cols["t"])), "machine_id": _dict(_cat(cols["m"]), self.mids),
            "part_number": _dict(_cat(cols["part"]), self.cat.part_numbers),
            "work_order": _dict(_cat(cols["wo"]), self.wo_labels),
            "quantity": pa.array(_cat(cols["qty"], np.int32)),
            "scrap_reason": _dict(reason_codes, reasons),
            "scrap_category": _dict(reason_codes, [CODE_INFO[c][0] for c in reasons]),
            "material_cost": pa.array(np.round(_cat(cols["mat"], float), 2)),
            "labor_cost": pa.array(np.round(_cat(cols["lab"], float), 2))})

    def work_orders(self) -> pd.DataFrame:
        cat, tz = self.cat, self.cfg.tz
        cols: dict[str, list[Any]] = {k: [] for k in ("part", "m", "qty", "done", "scrap", "cust", "due",
                                                      "status", "rel", "closed")}
        for r in self.runs:
            tl = r.tl
            n = len(tl.order_part)
            x_part, x_qty, x_rel, x_due, x_cust = r.extra_order
            cols["part"].append(self._gpart(r, np.r_[tl.order_part, x_part].astype(np.int64)))
            cols["m"].append(np.full(n + 1, r.m))
            cols["qty"].append(np.r_[tl.order_qty, x_qty])
            cols["done"].append(np.r_[r.order_good, 0])
            cols["scrap"].append(np.r_[r.order_rejects, 0])
            cols["cust"].append(np.r_[r.order_customer, x_cust])
            cols["due"].append(np.r_[r.order_due_ms, x_due])
            status = np.where(tl.order_finished, 2, 1)
            cols["status"].append(np.r_[status, 0])
            cols["rel"].append(np.r_[r.order_released, x_rel])
            cols["closed"].append(np.r_[np.where(tl.order_finished, r.order_wall_end, -1), -1])
        gpart = _cat(cols["part"])
        due = pd.to_datetime(_cat(cols["due"]), unit="ms", utc=True).tz_convert(tz).date
        closed = _cat(cols["closed"])
        rate = np.array([mt.labor_rate for mt in cat.machine_type])
        return _frame("work_orders", {
            "work_order": pa.array(self.wo_labels, type=pa.string()),
            "part_number": _dict(gpart, cat.part_numbers), "machine_id": _dict(_cat(cols["m"]), self.mids),
            "order_qty": pa.array(_cat(cols["qty"], np.int32)),
            "completed_qty": pa.array(_cat(cols["done"], np.int32)),
            "scrap_qty": pa.array(_cat(cols["scrap"], np.int32)),
            "material_cost_per_unit": pa.array(cat.part_material_cost[gpart]),
            "labor_rate_per_hour": pa.array(rate[_cat(cols["m"])]),
            "customer": _dict(_cat(cols["cust"]), list(CUSTOMERS)),
            "due_date": pa.array(list(due), type=pa.date32()),
            "status": _dict(_cat(cols["status"]), ["released", "in_progress", "closed"]),
            "released_at": _ts(_cat(cols["rel"])),
            "closed_at": pa.array(np.where(closed >= 0, closed, 0) * 1000, type=pa.timestamp("us", tz="UTC"),
                                  mask=closed < 0)})

    def quality_measurements(self) -> pd.DataFrame:
        cols: dict[str, list[Any]] = {k: [] for k in ("m", "t", "part", "sg", "no", "v")}
        sg_labels: list[np.ndarray] = []
        n_sg = 0
        for r in self.runs:
            sub, c = r.subgroups, r.cycles
            n = len(sub.cycle)
            if not n:
                continue
            first_t = c.time[sub.cycle[:, 0]]
            hours = np.datetime_as_string(first_t.astype("datetime64[ms]"), unit="h")
            sg_labels.append(np.char.add(f"{self.mids[r.m]}-", np.char.replace(hours, "T", "-")))
            cols["m"].append(np.full(n * SUBGROUP_SIZE, r.m))
            cols["t"].append(c.time[sub.cycle].ravel())
            cols["part"].append(np.repeat(self._gpart(r, c.part[sub.cycle[:, 0]]), SUBGROUP_SIZE))
            cols["sg"].append(np.repeat(np.arange(n_sg, n_sg + n), SUBGROUP_SIZE))
            cols["no"].append(np.tile(np.arange(1, SUBGROUP_SIZE + 1), n))
            cols["v"].append(sub.values.ravel())
            n_sg += n
        gpart = _cat(cols["part"])
        chars = [f.characteristic for f in self.cat.part_family]
        labels = np.concatenate(sg_labels).tolist() if sg_labels else []
        self.sg_labels = labels
        return _frame("quality_measurements", {
            "time": _ts(_cat(cols["t"])), "machine_id": _dict(_cat(cols["m"]), self.mids),
            "part_number": _dict(gpart, self.cat.part_numbers), "characteristic": _dict(gpart, chars),
            "subgroup_id": _dict(_cat(cols["sg"]), labels), "sample_no": pa.array(_cat(cols["no"], np.int32)),
            "value": pa.array(_cat(cols["v"], float)), "unit": _const("mm", len(gpart))})

    def inspections(self) -> pd.DataFrame:
        cols: dict[str, list[Any]] = {k: [] for k in ("t", "wo", "part", "size", "n", "d", "dec")}
        for r in self.runs:
            o = r.insp_order
            cols["t"].append(r.order_wall_end[o] + INSPECTION_DELAY)
            cols["wo"].append(self.wo_offset[r.m] + o)
            cols["part"].append(self._gpart(r, r.tl.order_part[o]))
            cols["size"].append(r.order_good[o])
            cols["n"].append(r.insp_sample)
            cols["d"].append(r.insp_defects)
            cols["dec"].append((r.insp_defects > r.insp_accept).astype(np.int64))
        wo = _cat(cols["wo"])
        n = len(wo)
        self.lot_labels = [f"LOT-{self.wo_labels[w]}" for w in wo]
        return _frame("inspections", {
            "time": _ts(_cat(cols["t"])), "lot_id": pa.array(self.lot_labels, type=pa.string()),
            "part_number": _dict(_cat(cols["part"]), self.cat.part_numbers),
            "work_order": _dict(wo, self.wo_labels), "lot_size": pa.array(_cat(cols["size"], np.int32)),
            "aql": pa.array(np.full(n, 1.0)), "level": _const("II", n),
            "inspection_type": _const("normal", n), "sample_size": pa.array(_cat(cols["n"], np.int32)),
            "defects": pa.array(_cat(cols["d"], np.int32)),
            "decision": _dict(_cat(cols["dec"]), ["accept", "reject"])})

    # -- ground truth -------------------------------------------------------------------------

    def oee(self) -> pd.DataFrame:
        cal = self.cal
        days = sorted(set(cal.shift_date))
        day_pos = {d: i for i, d in enumerate(days)}
        shift_day = np.array([day_pos[d] for d in cal.shift_date], dtype=np.int64)
        n_days = len(days)
        scheduled = np.zeros(n_days, np.int64)
        np.add.at(scheduled, shift_day, cal.shift_end - cal.shift_start)
        state_ms, produced, rejects, ideal, ideal_good = [], [], [], [], []
        for r in self.runs:
            tl = r.tl
            sh = cal.shift_of(tl.st_start)
            ok = sh >= 0
            mat = np.zeros((n_days, len(STATE_NAMES)), np.int64)
            np.add.at(mat, (shift_day[sh[ok]], tl.st_state[ok]), (tl.st_end - tl.st_start)[ok])
            state_ms.append(mat)
            c = r.cycles
            obs = c.observed
            cd = shift_day[cal.shift_of(c.time[obs])]
            produced.append(np.bincount(cd, minlength=n_days))
            rejects.append(np.bincount(cd, weights=c.reject[obs], minlength=n_days).astype(np.int64))
            ideal.append(np.bincount(cd, weights=c.ideal_ms[obs], minlength=n_days))
            ideal_good.append(np.bincount(cd, weights=c.ideal_ms[obs] * ~c.reject[obs], minlength=n_days))
        n_m = len(self.runs)
        return oee_frame(
            machine_id=[self.mids[r.m] for r in self.runs for _ in range(n_days)],
            day=days * n_m, state_ms=np.concatenate(state_ms) if n_m else np.zeros((0, 6)),
            scheduled_ms=np.tile(scheduled, n_m), produced=_cat(produced), rejects=_cat(rejects),
            ideal_ms=_cat(ideal, float), ideal_good_ms=_cat(ideal_good, float))

    def stops_truth(self, downtime: pd.DataFrame) -> pd.DataFrame:
        rows: dict[str, list[Any]] = {k: [] for k in (
            "stop_id", "machine_id", "state", "cause", "true_code", "entered", "blank", "mislabel",
            "pre_kind", "pre_start", "pre_end")}
        self.stop_event = {}
        offset = 0
        for r in self.runs:
            tl = r.tl
            pre_of_stop = {int(s): i for i, s in enumerate(tl.pre_stop)}
            for i, k in enumerate(r.dt_index):
                stop = int(tl.st_stop[k])
                if stop >= 0:
                    cause = ALL_CAUSES[int(tl.stop_cause[stop])]
                    rows["stop_id"].append(f"{self.mids[r.m]}-S{stop:05d}")
                    rows["cause"].append(cause.name)
                    rows["true_code"].append(cause.code)
                    self.stop_event.setdefault((r.m, stop), offset + i)
                    p = pre_of_stop.get(stop)
                else:
                    plan = int(tl.st_plan[k])
                    rows["stop_id"].append(f"{self.mids[r.m]}-P{plan:05d}")
                    rows["cause"].append(KIND_NAMES[int(self.cal.stop_kind[plan])])
                    rows["true_code"].append(self.cal.stop_code[plan])
                    p = None
                rows["machine_id"].append(self.mids[r.m])
                rows["state"].append(STATE_NAMES[int(tl.st_state[k])])
                if p is not None:
                    rows["pre_kind"].append(PRECURSOR_KINDS[int(tl.pre_kind[p])])
                    rows["pre_start"].append(int(tl.busy.to_host(max(int(tl.pre_b0[p]), 0))))
                    rows["pre_end"].append(int(tl.busy.to_host(int(tl.pre_b1[p]))))
                else:
                    rows["pre_kind"].append(None)
                    rows["pre_start"].append(None)
                    rows["pre_end"].append(None)
            rows["entered"] += r.dt_code
            rows["blank"].append(r.dt_blank)
            rows["mislabel"].append(r.dt_mislabel)
            offset += len(r.dt_index)
        self.dt_ids = downtime["event_id"].to_numpy()
        true_code = rows["true_code"]
        return pd.DataFrame({
            "event_id": pd.array(self.dt_ids, dtype="str"), "stop_id": rows["stop_id"],
            "machine_id": rows["machine_id"], "time_start": downtime["time_start"].to_numpy(),
            "time_end": downtime["time_end"].to_numpy(), "state": rows["state"], "cause": rows["cause"],
            "true_code": true_code, "true_category": [CODE_INFO[c][0] for c in true_code],
            "true_subcode": [CODE_INFO[c][1] for c in true_code],
            "planned": [CODE_INFO[c][2] for c in true_code], "entered_code": rows["entered"],
            "blank": _cat(rows["blank"], bool), "mislabelled": _cat(rows["mislabel"], bool),
            "precursor_kind": rows["pre_kind"], "precursor_start": _to_ts(rows["pre_start"]),
            "precursor_end": _to_ts(rows["pre_end"])})

    def anomaly_windows(self) -> pd.DataFrame:
        rows: list[tuple[Any, ...]] = []
        chars = [f.characteristic for f in self.cat.part_family]
        for r in self.runs:
            tl, mid = r.tl, self.mids[r.m]
            for p in range(len(tl.pre_stop)):
                stop = int(tl.pre_stop[p])
                kind = PRECURSOR_KINDS[int(tl.pre_kind[p])]
                start = int(tl.busy.to_host(max(int(tl.pre_b0[p]), 0)))
                end = int(tl.busy.to_host(int(tl.pre_b1[p])))
                ev = self.stop_event.get((r.m, stop))
                cause = ALL_CAUSES[int(tl.stop_cause[stop])].name
                for metric in PRECURSOR_METRICS[kind]:
                    rows.append((mid, kind, metric, None, start, end, cause, float(tl.pre_mag[p]),
                                 self.dt_ids[ev] if ev is not None else None))
            # Tool end of life: the last 30 % of a tool's life, where dimension scrap climbs.
            for j in np.flatnonzero(tl.tool_stop >= 0):
                a_start = tl.tool_a0[j] + 0.7 * tl.tool_life[j]
                if a_start >= tl.tool_end_a[j]:
                    continue
                start = int(tl.busy.to_host(tl.busy_of_apt(np.int64(max(a_start, 0)))))
                stop = int(tl.tool_stop[j])
                end = int(tl.busy.to_host(int(tl.stop_b0[stop])))
                if end <= start:
                    continue
                ev = self.stop_event.get((r.m, stop))
                rows.append((mid, "tool_wear", "reject_rate", None, start, end,
                             ALL_CAUSES[int(tl.stop_cause[stop])].name, float(tl.tool_drift[j]),
                             self.dt_ids[ev] if ev is not None else None))
            c = r.cycles
            gpart = self._gpart(r, c.part)
            bad = self.bad_lots
            for lot, lp, ls, le, lr in zip(bad.lot_id, bad.part, bad.start, bad.end, bad.rate, strict=True):
                if np.any((gpart == lp) & (c.time >= ls) & (c.time < le)):
                    rows.append((mid, "scrap", "reject_rate", self.cat.part_numbers[lp], int(ls), int(le),
                                 f"bad_material:{lot}", float(lr), None))
            ps = r.shifts
            for o, s, e, size in zip(ps.order, ps.start, ps.end, ps.sigma, strict=True):
                gp = int(self._gpart(r, np.array([tl.order_part[o]]))[0])
                rows.append((mid, "process_shift", chars[gp], self.cat.part_numbers[gp], int(s), int(e),
                             "process_shift", float(size), None))
        cols = ["machine_id", "kind", "metric", "part_number", "time_start", "time_end", "cause", "magnitude",
                "stop_event_id"]
        df = pd.DataFrame(rows, columns=cols)
        df = df.astype({"machine_id": "str", "kind": "str", "metric": "str", "cause": "str",
                        "magnitude": float})
        df["time_start"] = _to_ts(df["time_start"].tolist())
        df["time_end"] = _to_ts(df["time_end"].tolist())
        df["part_number"] = pd.array(df["part_number"].tolist(), dtype="str")
        df["stop_event_id"] = pd.array(df["stop_event_id"].tolist(), dtype="str")
        df = df.sort_values(["machine_id", "time_start", "kind", "metric"], kind="stable")
        return df.reset_index(drop=True)

    def process_shifts(self) -> pd.DataFrame:
        rows: list[tuple[Any, ...]] = []
        chars = [f.characteristic for f in self.cat.part_family]
        for r in self.runs:
            tl, mid = r.tl, self.mids[r.m]
            ps = r.shifts
            for o, s, e, size in zip(ps.order, ps.start, ps.end, ps.sigma, strict=True):
                gp = int(self._gpart(r, np.array([tl.order_part[o]]))[0])
                rows.append((mid, self.cat.part_numbers[gp], chars[gp], "step", int(s), int(e), float(size),
                             np.nan, np.nan, np.nan, self.wo_labels[self.wo_offset[r.m] + int(o)]))
            for j in range(len(tl.tool_a0) if tl.busy.total else 0):
                a0 = max(float(tl.tool_a0[j]), 0.0)
                start = int(tl.busy.to_host(tl.busy_of_apt(np.int64(a0))))
                if tl.tool_stop[j] >= 0:
                    end = int(tl.busy.to_host(int(tl.stop_b0[int(tl.tool_stop[j])])))
                    a_end = float(tl.tool_end_a[j])
                else:
                    end = int(self.cal.horizon_end)
                    a_end = float(tl.apt_of_busy(np.int64(tl.busy.total)))
                if end <= start:
                    continue
                frac_end = min(max((a_end - tl.tool_a0[j]) / tl.tool_life[j], 0.0), 1.0)
                life_h = float(tl.tool_life[j]) / HOUR
                rows.append((mid, None, None, "tool_wear", start, end,
                             float(tl.tool_drift[j] * frac_end**1.5), float(tl.tool_drift[j] / life_h),
                             float(tl.tool_drift[j]), life_h, None))
        cols = ["machine_id", "part_number", "characteristic", "kind", "time_start", "time_end",
                "shift_sigma", "slope_sigma_per_h", "drift_end_sigma", "tool_life_h", "work_order"]
        df = pd.DataFrame(rows, columns=cols)
        for col in ("machine_id", "part_number", "characteristic", "kind", "work_order"):
            df[col] = pd.array(df[col].tolist(), dtype="str")
        for col in ("shift_sigma", "slope_sigma_per_h", "drift_end_sigma", "tool_life_h"):
            df[col] = df[col].astype(float)
        df["time_start"] = _to_ts(df["time_start"].tolist())
        df["time_end"] = _to_ts(df["time_end"].tolist())
        return df.sort_values(["machine_id", "time_start", "kind"], kind="stable").reset_index(drop=True)

    def counter_resets(self) -> pd.DataFrame:
        frames = []
        for r in self.runs:
            for metric, ev in (("part_count_total", r.part_events), ("reject_count_total", r.reject_events)):
                frames.append(pd.DataFrame({
                    "machine_id": pd.array([self.mids[r.m]] * len(ev.time), dtype="str"),
                    "metric": pd.array([metric] * len(ev.time), dtype="str"), "time": _to_ts(ev.time),
                    "kind": pd.array(np.where(ev.kind == 0, "rollover", "reset").tolist(), dtype="str"),
                    "value_before": ev.value_before.astype(np.int64)}))
        df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
            columns=["machine_id", "metric", "time", "kind", "value_before"])
        return df.sort_values(["machine_id", "metric", "time"], kind="stable").reset_index(drop=True)

    def material_lots(self) -> pd.DataFrame:
        lots = self.bad_lots
        return pd.DataFrame({
            "lot_id": pd.array(lots.lot_id, dtype="str"),
            "part_number": pd.array([self.cat.part_numbers[p] for p in lots.part], dtype="str"),
            "time_start": _to_ts(lots.start), "time_end": _to_ts(lots.end), "added_defect_rate": lots.rate})

    def no_data(self) -> pd.DataFrame:
        rows: list[tuple[Any, ...]] = []
        for r in self.runs:
            tl, c = r.tl, r.cycles
            hidden = np.flatnonzero(~c.observed)
            win = np.searchsorted(tl.nd_start, c.time[hidden], side="right") - 1
            for j in range(len(tl.nd_start)):
                in_j = hidden[win == j]
                orders = np.unique(c.order[in_j])
                if not len(orders):
                    rows.append((self.mids[r.m], int(tl.nd_start[j]), int(tl.nd_end[j]), None, 0, 0, 0))
                for o in orders:
                    sel = in_j[c.order[in_j] == o]
                    n_rej = int(c.reject[sel].sum())
                    wo = self.wo_labels[self.wo_offset[r.m] + int(o)]
                    rows.append((self.mids[r.m], int(tl.nd_start[j]), int(tl.nd_end[j]), wo, len(sel),
                                 len(sel) - n_rej, n_rej))
        df = pd.DataFrame(rows, columns=["machine_id", "time_start", "time_end", "work_order", "produced",
                                         "good", "rejects"])
        df["machine_id"] = pd.array(df["machine_id"].tolist(), dtype="str")
        df["work_order"] = pd.array(df["work_order"].tolist(), dtype="str")
        df["time_start"] = _to_ts(df["time_start"].tolist())
        df["time_end"] = _to_ts(df["time_end"].tolist())
        return df.astype({"produced": np.int64, "good": np.int64, "rejects": np.int64})

    def subgroups(self) -> pd.DataFrame:
        keys = ("m", "part", "t0", "t1", "nom", "sigma", "bias", "drift", "shift", "mean")
        parts: dict[str, list[Any]] = {k: [] for k in keys}
        for r in self.runs:
            sub, c = r.subgroups, r.cycles
            if not len(sub.cycle):
                continue
            local = c.part[sub.cycle[:, 0]]
            gp = self._gpart(r, local)
            parts["m"].append(np.full(len(gp), r.m))
            parts["part"].append(gp)
            parts["t0"].append(c.time[sub.cycle[:, 0]])
            parts["t1"].append(c.time[sub.cycle[:, -1]])
            parts["nom"].append(self.cat.part_nominal[gp])
            parts["sigma"].append(r.sigma[local])
            parts["bias"].append(r.bias[local])
            parts["drift"].append(r.sub_drift)
            parts["shift"].append(r.sub_shift)
            parts["mean"].append(self.cat.part_nominal[gp] + r.sub_offset)
        gp = _cat(parts["part"])
        chars = [f.characteristic for f in self.cat.part_family]
        return pd.DataFrame({
            "subgroup_id": pd.array(self.sg_labels, dtype="str"),
            "machine_id": pd.array([self.mids[m] for m in _cat(parts["m"])], dtype="str"),
            "part_number": pd.array([self.cat.part_numbers[p] for p in gp], dtype="str"),
            "characteristic": pd.array([chars[p] for p in gp], dtype="str"),
            "time_start": _to_ts(_cat(parts["t0"])), "time_end": _to_ts(_cat(parts["t1"])),
            "nominal": _cat(parts["nom"], float), "sigma": _cat(parts["sigma"], float),
            "bias": _cat(parts["bias"], float), "drift": _cat(parts["drift"], float),
            "shift": _cat(parts["shift"], float), "true_mean": _cat(parts["mean"], float)})

    def lots(self) -> pd.DataFrame:
        wo, machine, part, size, rate, n, d = [], [], [], [], [], [], []
        for r in self.runs:
            o = r.insp_order
            wo += [self.wo_labels[self.wo_offset[r.m] + int(x)] for x in o]
            machine += [self.mids[r.m]] * len(o)
            part += [self.cat.part_numbers[p] for p in self._gpart(r, r.tl.order_part[o])]
            size.append(r.order_good[o])
            rate.append(r.lot_p[o])
            n.append(r.insp_sample)
            d.append(r.insp_defects)
        return pd.DataFrame({
            "lot_id": pd.array(self.lot_labels, dtype="str"), "work_order": pd.array(wo, dtype="str"),
            "machine_id": pd.array(machine, dtype="str"), "part_number": pd.array(part, dtype="str"),
            "lot_size": _cat(size), "true_defect_rate": _cat(rate, float), "sample_size": _cat(n),
            "defects": _cat(d)})


def _to_ts(ms: Any) -> pd.DatetimeIndex:
    """Milliseconds since the epoch (None for missing) as tz-aware UTC microsecond timestamps."""
    arr = pd.array(list(ms), dtype="Int64")
    us = arr.to_numpy(dtype="int64", na_value=0) * 1000
    values = us.astype("datetime64[us]")
    values[arr.isna()] = np.datetime64("NaT")
    return pd.DatetimeIndex(values).tz_localize("UTC")
