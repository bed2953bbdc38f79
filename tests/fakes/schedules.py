"""Small scheduling cases with their optimum found by brute force over every assignment
(for the exact and the local search of optimal mode)."""

from __future__ import annotations

import itertools

import numpy as np

from energykernel.sim import ComputeEnvironment, ComputeInstance, Resource, Task, Workflow
from energykernel.sim.result import SimulationResult
from energykernel.sim.schedule import run_schedule


def exact_search(env, wf, deadline_s=None):
    """(problem, optimal's branch and bound) for a case, started from its heuristics."""
    from energykernel.sim import optimal as opt
    from energykernel.sim.schedule import compile_problem

    prob = compile_problem(env, wf)
    _, weight = opt._weights(prob, "energy")
    search = opt._Search(prob, weight, deadline_s)
    opt._heuristic(prob, search, weight)
    return prob, opt.branch_and_bound(prob, search, weight)


def brute_force(prob, deadline_s=None, carbon=False) -> float:
    """The least objective over every assignment that fits (and meets the deadline)."""
    best = np.inf
    cap = np.array(prob.cap).T
    for assign in itertools.product(range(prob.n), repeat=len(prob.steps)):
        if any((prob.demand[k] > cap[i]).any() for k, i in zip(prob.steps, assign, strict=True)):
            continue
        r = SimulationResult.build(prob, "x", *run_schedule(prob, "assigned", list(assign)))
        if deadline_s is not None and r.makespan_s > deadline_s * (1 + 1e-9):
            continue
        best = min(best, r.emissions_g if carbon else r.energy_j)
    return best


def instance(name, rng, cpu, idle, speed, intensity, ram=None, scale=1.0):
    res = {"cpu": Resource(cpu, 4.0 * scale)}
    if ram is not None:
        res["ram"] = Resource(ram, 0.4 * scale)
    return ComputeInstance(name, res, speed=speed, idle_power_w=idle, pue=1.2,
                           intensity_g_per_kwh=intensity)


def random_case(rng):
    """Three instances — sometimes twins, sometimes one dominating another — and six steps
    with dependencies and demands near the capacities (so steps wait and block)."""
    kind = rng.integers(0, 3)
    cpu = float(rng.integers(2, 5))
    if kind == 0:  # identical twins and a third
        a = dict(cpu=cpu, idle=float(rng.choice([0, 20, 60])), speed=1.0, intensity=300.0)
        instances = [instance("a", rng, **a), instance("b", rng, **a),
                     instance("c", rng, cpu=float(rng.integers(2, 5)), idle=float(rng.choice([0, 40])),
                              speed=2.0, intensity=100.0, ram=8.0, scale=3.0)]
    elif kind == 1:  # b like a but dearer (dominated)
        a = dict(cpu=cpu, idle=30.0, speed=1.0, intensity=200.0)
        instances = [instance("a", rng, **a), instance("b", rng, **a, scale=1.5),
                     instance("c", rng, cpu=8.0, idle=0.0, speed=0.5, intensity=500.0, ram=16.0)]
    else:  # all different
        instances = [instance(f"i{j}", rng, cpu=float(rng.integers(2, 6)),
                              idle=float(rng.choice([0, 10, 80])), speed=float(rng.choice([0.5, 1, 2])),
                              intensity=float(rng.uniform(50, 500)), scale=float(rng.uniform(0.5, 3)))
                     for j in range(3)]
    tasks = [Task(f"t{k}", float(rng.integers(1, 30)), {"cpu": float(rng.integers(1, 3))},
                  after=tuple(f"t{p}" for p in range(k) if rng.random() < 0.3))
             for k in range(6)]
    return ComputeEnvironment(instances), Workflow(tasks)


def independent_case(seed: int, n_tasks: int = 50):
    """``n_tasks`` independent steps × 10 instances of random sizes, all with idle power:
    the makespan trades against each step's cheapest instance."""
    rng = np.random.default_rng(seed)
    env = ComputeEnvironment([
        ComputeInstance(f"m{i}", {"cpu": Resource(int(rng.integers(4, 33)), float(rng.uniform(2, 10))),
                                  "ram": Resource(64, float(rng.uniform(0.1, 0.5)))},
                        speed=float(rng.uniform(0.5, 2)), idle_power_w=float(rng.uniform(10, 100)))
        for i in range(10)])
    wf = Workflow([Task(f"t{k}", float(rng.uniform(10, 300)),
                        {"cpu": int(rng.integers(1, 5)), "ram": int(rng.integers(1, 16))})
                   for k in range(n_tasks)])
    return env, wf


def hard_case():
    """50 independent steps × 10 instances with idle power: the exact search does not
    finish it in seconds."""
    return independent_case(0)


def capacity_case(rng):
    """Seven independent steps on three small instances with idle power: the cheapest
    instance cannot take every step within the makespan (the capacity prices bind)."""
    instances = [instance(f"i{j}", rng, cpu=float(rng.integers(2, 5)),
                          idle=float(rng.uniform(5, 60)), speed=float(rng.choice([0.5, 1, 2])),
                          intensity=300.0, scale=float(rng.uniform(0.3, 3)))
                 for j in range(3)]
    tasks = [Task(f"t{k}", float(rng.integers(5, 60)), {"cpu": float(rng.integers(1, 3))})
             for k in range(7)]
    return ComputeEnvironment(instances), Workflow(tasks)
