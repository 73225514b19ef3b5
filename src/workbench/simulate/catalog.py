"""Static knowledge of the simulated plant: downtime taxonomy, causes, machine types, parts.

The reason-code taxonomy is the plant's agreed list from DESIGN.md (nine categories). The causes
below are what *really* stops a machine in the simulation; each maps to one true reason code, a
PLC fault code that correlates with it (noisily) and, for some, a precursor the telemetry shows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workbench.simulate.config import PlantConfig

# --------------------------------------------------------------------------------------------
# reason codes: (code, category, subcode, planned, description)

REASON_CODES: tuple[tuple[str, str, str, bool, str], ...] = (
    ("MECH-BRG", "Mechanical Failure", "bearing", False, "bearing failure"),
    ("MECH-HYD", "Mechanical Failure", "hydraulic", False, "hydraulic system failure"),
    ("MECH-PNE", "Mechanical Failure", "pneumatic", False, "pneumatic system failure"),
    ("MECH-SPN", "Mechanical Failure", "spindle", False, "spindle failure"),
    ("ELEC-DRV", "Electrical Failure", "drive", False, "drive / servo amplifier fault"),
    ("ELEC-SEN", "Electrical Failure", "sensor", False, "sensor fault"),
    ("ELEC-WIR", "Electrical Failure", "wiring", False, "wiring / connector fault"),
    ("ELEC-PWR", "Electrical Failure", "power", False, "power loss"),
    ("TOOL-BRK", "Tooling", "tool break", False, "tool breakage"),
    ("TOOL-WEAR", "Tooling", "tool wear", False, "tool worn, changed early"),
    ("TOOL-CHG", "Tooling", "tool change", False, "tool change at end of tool life"),
    ("MAT-DEF", "Material", "defect", False, "defective material"),
    ("MAT-WRG", "Material", "wrong material", False, "wrong material delivered"),
    ("MAT-SHT", "Material", "shortage", False, "material shortage"),
    ("OPR-SETUP", "Operator", "setup error", False, "operator setup error"),
    ("OPR-PROG", "Operator", "programming error", False, "NC programming error"),
    ("OPR-TRN", "Operator", "training", False, "operator training"),
    ("QH-DIM", "Quality Hold", "dimension OOT", False, "dimension out of tolerance"),
    ("QH-SURF", "Quality Hold", "surface finish", False, "surface finish defect"),
    ("QH-VIS", "Quality Hold", "visual defect", False, "visual defect"),
    ("CHG-SETUP", "Changeover", "setup", False, "changeover setup"),
    ("CHG-FA", "Changeover", "first article", False, "first-article inspection"),
    ("CHG-PROG", "Changeover", "program change", False, "program change"),
    ("PM-PM", "Scheduled Maintenance", "PM", True, "preventive maintenance"),
    ("PM-CAL", "Scheduled Maintenance", "calibration", True, "calibration"),
    ("PM-CLN", "Scheduled Maintenance", "cleaning", True, "cleaning"),
    ("ND-NOORD", "No Demand", "no order", True, "no order"),
    ("ND-SCHED", "No Demand", "scheduling gap", True, "scheduling gap"),
)
CODE_INFO: dict[str, tuple[str, str, bool]] = {c: (cat, sub, pl) for c, cat, sub, pl, _ in REASON_CODES}

#: What an operator plausibly enters instead of the true code (never a planned code).
CONFUSIONS: dict[str, tuple[str, ...]] = {
    "MECH-BRG": ("MECH-SPN", "MECH-HYD"), "MECH-HYD": ("MECH-PNE", "MECH-BRG"),
    "MECH-PNE": ("MECH-HYD",), "MECH-SPN": ("MECH-BRG", "ELEC-DRV"),
    "ELEC-DRV": ("ELEC-WIR", "ELEC-PWR", "MECH-SPN"), "ELEC-SEN": ("ELEC-WIR",),
    "ELEC-WIR": ("ELEC-SEN", "ELEC-PWR"), "ELEC-PWR": ("ELEC-DRV",),
    "TOOL-BRK": ("TOOL-WEAR",), "TOOL-WEAR": ("TOOL-CHG", "TOOL-BRK"), "TOOL-CHG": ("TOOL-WEAR",),
    "MAT-DEF": ("QH-VIS", "MAT-WRG"), "MAT-WRG": ("MAT-DEF",), "MAT-SHT": ("MAT-DEF",),
    "OPR-SETUP": ("CHG-SETUP", "OPR-PROG"), "OPR-PROG": ("CHG-PROG",), "OPR-TRN": ("OPR-SETUP",),
    "QH-DIM": ("TOOL-WEAR", "QH-SURF"), "QH-SURF": ("QH-VIS",), "QH-VIS": ("QH-SURF",),
    "CHG-SETUP": ("OPR-SETUP", "CHG-FA"), "CHG-FA": ("CHG-SETUP",), "CHG-PROG": ("OPR-PROG",),
}

GENERIC_FAULTS: tuple[str, ...] = ("F0001", "F0900")  # E-stop, general fault


@dataclass(frozen=True)
class Cause:
    """A true cause of a stop.

    ``hazard`` is ``"exp"`` (constant rate ``rate_per_h`` of run time) or ``"weibull"`` (renewal
    with shape ``shape`` and scale ``eta_h`` hours of run time: wear-out); tool causes are driven by
    the tool-life model instead (``hazard="tool"``).
    """

    name: str
    code: str
    hazard: str
    rate_per_h: float = 0.0
    shape: float = 1.0
    eta_h: float = 0.0
    median_min: float = 20.0
    sigma: float = 0.6
    fault: str | None = None
    precursor: str | None = None  # vibration / hydraulic / drive
    precursor_h: tuple[float, float] = (0.0, 0.0)
    reset_prob: float = 0.0  # chance the PLC restarts (counters reset to 0)
    notes: tuple[str, ...] = ()


CAUSES: tuple[Cause, ...] = (
    Cause("bearing_wear", "MECH-BRG", "weibull", shape=2.5, eta_h=260.0, median_min=120.0, sigma=0.5,
          fault="F2110", precursor="vibration", precursor_h=(4.0, 24.0),
          notes=("bearing noise, replaced", "spindle bearing hot, replaced", "vibration alarm, new bearing")),
    Cause("hydraulic_leak", "MECH-HYD", "weibull", shape=2.0, eta_h=300.0, median_min=60.0, sigma=0.5,
          fault="F3301", precursor="hydraulic", precursor_h=(1.0, 6.0),
          notes=("low hydraulic pressure, fixed leak", "hydraulic hose replaced", "topped up oil")),
    Cause("pneumatic", "MECH-PNE", "exp", rate_per_h=1 / 220, median_min=20.0, fault="F3401",
          notes=("air leak at clamp", "air pressure low")),
    Cause("spindle", "MECH-SPN", "weibull", shape=1.5, eta_h=900.0, median_min=150.0, sigma=0.6,
          fault="F2100", notes=("spindle alarm", "spindle not reaching speed")),
    Cause("drive_fault", "ELEC-DRV", "weibull", shape=2.0, eta_h=320.0, median_min=45.0, sigma=0.5,
          fault="F4410", precursor="drive", precursor_h=(0.5, 2.0), reset_prob=0.15,
          notes=("drive tripped, reset", "servo overcurrent", "drive fan replaced")),
    Cause("sensor_fault", "ELEC-SEN", "exp", rate_per_h=1 / 110, median_min=10.0, fault="F5120",
          notes=("sensor dirty, cleaned", "prox switch replaced", "door sensor fault")),
    Cause("wiring", "ELEC-WIR", "exp", rate_per_h=1 / 500, median_min=40.0, fault="F5200",
          notes=("loose connector", "cable chafed, replaced")),
    Cause("power_loss", "ELEC-PWR", "exp", rate_per_h=1 / 1400, median_min=20.0, fault="F6000",
          reset_prob=1.0, notes=("power dip, restarted", "breaker tripped")),
    Cause("material_shortage", "MAT-SHT", "exp", rate_per_h=1 / 160, median_min=25.0, fault="F8001",
          notes=("waiting for material", "bar feeder empty")),
    Cause("wrong_material", "MAT-WRG", "exp", rate_per_h=1 / 900, median_min=35.0,
          notes=("wrong bar stock", "wrong blanks at machine")),
    Cause("setup_error", "OPR-SETUP", "exp", rate_per_h=1 / 220, median_min=15.0, fault="F0001",
          notes=("offset wrong, corrected", "fixture not seated")),
    Cause("programming_error", "OPR-PROG", "exp", rate_per_h=1 / 450, median_min=25.0, fault="F9100",
          notes=("program alarm", "wrong program loaded")),
    Cause("training", "OPR-TRN", "exp", rate_per_h=1 / 700, median_min=30.0,
          notes=("new operator", "training on machine")),
    Cause("dimension_hold", "QH-DIM", "exp", rate_per_h=1 / 350, median_min=20.0, fault="F9200",
          notes=("diameter out, checked", "gauge check failed")),
    Cause("surface_hold", "QH-SURF", "exp", rate_per_h=1 / 600, median_min=20.0,
          notes=("chatter marks", "rough finish")),
    Cause("visual_hold", "QH-VIS", "exp", rate_per_h=1 / 700, median_min=15.0,
          notes=("scratches", "burrs on parts")),
)
TOOL_CAUSES: dict[str, Cause] = {
    "tool_change": Cause("tool_change", "TOOL-CHG", "tool", median_min=8.0, sigma=0.4, fault="F7103",
                         notes=("tool life reached", "insert changed")),
    "tool_wear": Cause("tool_wear", "TOOL-WEAR", "tool", median_min=14.0, sigma=0.4, fault="F7102",
                       notes=("tool worn, sizes drifting", "insert worn")),
    "tool_break": Cause("tool_break", "TOOL-BRK", "tool", median_min=45.0, sigma=0.5, fault="F7101",
                        notes=("tool broke", "insert chipped, crash")),
}
CHANGEOVERS: dict[str, tuple[float, float]] = {  # code -> (median minutes, sigma)
    "CHG-SETUP": (55.0, 0.4), "CHG-PROG": (35.0, 0.4), "CHG-FA": (15.0, 0.3),
}
#: The PLC fault → reason-code table (the "fault mapping" a plant keeps): each specific fault of a
#: cause maps to the cause's code; the generic faults (E-stop, general fault) map to nothing, since
#: they are raised by several causes and only the operator can say which.
ALL_CODES_BY_FAULT: dict[str, str] = {
    c.fault: c.code for c in (*CAUSES, *TOOL_CAUSES.values())
    if c.fault is not None and c.fault not in GENERIC_FAULTS}
CHANGEOVER_NOTES: tuple[str, ...] = ("changeover", "new jaws", "first piece ok", "program loaded")

# --------------------------------------------------------------------------------------------
# machine types, part families, characteristics


@dataclass(frozen=True)
class MachineType:
    key: str
    label: str
    area: str
    families: tuple[str, ...]
    default_ct_s: float
    labor_rate: float
    pressure_bar: float


MACHINE_TYPES: tuple[MachineType, ...] = (
    MachineType("cnc_lathe", "CNC lathe", "Turning", ("shaft",), 55.0, 52.0, 45.0),
    MachineType("grinder", "Cylindrical grinder", "Grinding", ("shaft",), 70.0, 55.0, 30.0),
    MachineType("cnc_mill", "CNC mill", "Milling", ("housing",), 75.0, 50.0, 60.0),
    MachineType("machining_center", "Machining center", "Milling", ("housing", "bracket"), 65.0, 58.0, 70.0),
    MachineType("press", "Stamping press", "Stamping", ("bracket",), 25.0, 42.0, 180.0),
)


@dataclass(frozen=True)
class Family:
    key: str
    prefix: str
    description: str
    characteristic: str
    nominals: tuple[float, ...]
    tolerance: float
    ideal_s: tuple[float, float]
    material_cost: tuple[float, float]
    wear_sign: float  # which way the dimension moves as the tool wears


FAMILIES: tuple[Family, ...] = (
    Family("shaft", "SH", "drive shaft", "od_diameter", (18.0, 20.0, 22.0, 25.0), 0.030, (35.0, 90.0),
           (4.0, 12.0), +1.0),
    Family("housing", "HS", "bearing housing", "bore_diameter", (25.0, 32.0, 40.0), 0.050, (45.0, 90.0),
           (8.0, 25.0), -1.0),
    Family("bracket", "BR", "mounting bracket", "hole_pitch", (40.0, 60.0, 80.0), 0.100, (20.0, 40.0),
           (1.5, 5.0), +1.0),
)
CUSTOMERS: tuple[str, ...] = ("Acme Drives", "Northwind Pumps", "Contoso Motors", "Fabrikam Axles",
                              "Globex Hydraulics", "Initech Fluid Power")


@dataclass(frozen=True)
class Catalog:
    """Plant master data drawn once per seed (plain Python/numpy; frames are built later)."""

    machine_ids: list[str]
    machine_line: np.ndarray  # int, 0-based line index per machine
    machine_type: list[MachineType]
    machine_ideal_s: np.ndarray
    part_numbers: list[str]
    part_family: list[Family]
    part_description: list[str]
    part_nominal: np.ndarray
    part_ideal_s: np.ndarray
    part_material_cost: np.ndarray
    machine_parts: list[np.ndarray]  # per machine: part indices it runs
    rate_ideal_s: list[np.ndarray]  # per machine: ideal cycle time of each of its parts
    operator_ids: list[str]
    operator_blank_p: np.ndarray
    operator_mislabel_p: np.ndarray
    crew_operators: dict[tuple[int, str], list[int]]  # (line, shift) -> operator indices
    floaters: dict[str, list[int]]  # shift -> operator indices


def build_catalog(cfg: PlantConfig, rng: np.random.Generator) -> Catalog:
    """Draw machines, parts, part rates and operators from the plant random stream."""
    n = cfg.n_machines
    machine_ids = cfg.machine_ids
    line = (np.arange(n) * cfg.n_lines) // n

    n_fam = int(rng.integers(2, 4))
    fam_idx = np.sort(rng.choice(len(FAMILIES), size=n_fam, replace=False))
    families = [FAMILIES[i] for i in fam_idx]
    per_family = [2] * n_fam
    # Two or three parts per family, four to eight in all.
    extra = min(int(rng.integers(0, 8 - 2 * n_fam + 1)), n_fam)
    for i in rng.choice(n_fam, size=extra, replace=False):
        per_family[int(i)] += 1

    part_numbers, part_family, part_desc, nominal, ideal, mat_cost = [], [], [], [], [], []
    for fi, fam in enumerate(families):
        noms = rng.choice(fam.nominals, size=per_family[fi], replace=len(fam.nominals) < per_family[fi])
        for j in range(per_family[fi]):
            part_numbers.append(f"{fam.prefix}-{1000 * (int(fam_idx[fi]) + 1) + j + 1}")
            part_family.append(fam)
            part_desc.append(f"{fam.description} {float(noms[j]):g} mm")
            nominal.append(float(noms[j]))
            ideal.append(round(float(rng.uniform(*fam.ideal_s)), 1))
            mat_cost.append(round(float(rng.uniform(*fam.material_cost)), 2))
    fam_keys = {f.key for f in families}
    usable = [mt for mt in MACHINE_TYPES if fam_keys & set(mt.families)]

    machine_type: list[MachineType] = []
    machine_parts: list[np.ndarray] = []
    rate_ideal: list[np.ndarray] = []
    for _m in range(n):
        mt = usable[int(rng.integers(0, len(usable)))]
        candidates = [p for p, fam in enumerate(part_family) if fam.key in mt.families]
        k = int(rng.integers(min(2, len(candidates)), min(4, len(candidates)) + 1))
        parts = np.sort(rng.choice(candidates, size=k, replace=False))
        machine_type.append(mt)
        machine_parts.append(parts.astype(np.int64))
        factor = rng.uniform(0.88, 1.15, size=k)
        rate_ideal.append(np.round(np.asarray(ideal)[parts] * factor, 1))
    machine_ideal = np.array([mt.default_ct_s for mt in machine_type], dtype=float)

    # One operator tends two machines of a line; each shift has its own crew plus floaters.
    operator_ids: list[str] = []
    crew: dict[tuple[int, str], list[int]] = {}
    floaters: dict[str, list[int]] = {}
    for shift in "ABC":
        for ln in range(cfg.n_lines):
            n_line = int(np.sum(line == ln))
            crew[(ln, shift)] = list(range(len(operator_ids), len(operator_ids) + (n_line + 1) // 2))
            operator_ids += [f"OP{len(operator_ids) + 1:03d}" for _ in crew[(ln, shift)]]
        n_float = max(1, cfg.n_lines)
        floaters[shift] = list(range(len(operator_ids), len(operator_ids) + n_float))
        operator_ids += [f"OP{len(operator_ids) + 1:03d}" for _ in floaters[shift]]
    # Operators differ in how diligently they enter reasons (~15 % blank, ~5.5 % wrong on average).
    blank_p = np.clip(rng.normal(0.15, 0.05, size=len(operator_ids)), 0.03, 0.35)
    mislabel_p = np.clip(rng.normal(0.055, 0.015, size=len(operator_ids)), 0.02, 0.1)

    return Catalog(machine_ids=machine_ids, machine_line=line, machine_type=machine_type,
                   machine_ideal_s=machine_ideal, part_numbers=part_numbers, part_family=part_family,
                   part_description=part_desc, part_nominal=np.asarray(nominal),
                   part_ideal_s=np.asarray(ideal), part_material_cost=np.asarray(mat_cost),
                   machine_parts=machine_parts, rate_ideal_s=rate_ideal, operator_ids=operator_ids,
                   operator_blank_p=blank_p, operator_mislabel_p=mislabel_p, crew_operators=crew,
                   floaters=floaters)
