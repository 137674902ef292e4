"""Vmapped meta-update vs a per-task Python loop (learn2learn-style), same gradients.

Both compute the gradient of the MAML outer loss (mean over tasks of the query TD loss
after `inner_steps` inner steps) with respect to the meta-parameters, then take one Adam
step. The loop adapts task by task with torch.autograd.grad(create_graph=...), as
learn2learn's `clone()` + `adapt()` does. Reported: time per meta-update and the ratio.

    python benchmarks/meta_update.py [--device cuda] [--tasks 8 32 128] [--batch 64]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from metadqn.meta import InnerLoop, maml_loss
from metadqn.nets import NetSpec, build_qnet, init_params
from metadqn.replay import Batch
from metadqn.td import td_loss


def make_batch(n_tasks: int, batch: int, obs: int, n_actions: int, device: str, gen: torch.Generator) -> Batch:
    def r(*s):
        return torch.randn(*s, generator=gen).to(device)
    return Batch(r(n_tasks, batch, obs), torch.randint(0, n_actions, (n_tasks, batch), generator=gen).to(device),
                 r(n_tasks, batch), r(n_tasks, batch, obs), torch.rand(n_tasks, batch, generator=gen).to(device))


def loop_grads(net, params, target, support, query, lr, steps, first_order):
    n_tasks = support.obs.shape[0]
    total = 0.0
    for i in range(n_tasks):
        p = dict(params)
        for _ in range(steps):
            g = torch.autograd.grad(td_loss(net, p, support.row(i), target=target), list(p.values()),
                                    create_graph=not first_order)
            p = {k: v - lr * (gk.detach() if first_order else gk) for (k, v), gk in zip(p.items(), g)}
        total = total + td_loss(net, p, query.row(i), target=target)
    return torch.autograd.grad(total / n_tasks, list(params.values()))


def vmap_grads(net, params, target, support, query, lr, steps, first_order):
    per_task, _ = maml_loss(net, params, support, query, InnerLoop(lr=lr, steps=steps, first_order=first_order),
                            inner_target=target, outer_target=target)
    return torch.autograd.grad(per_task.mean(), list(params.values()))


def timed(fn, opt, params, device, repeats):
    def once():
        grads = fn()
        for p, g in zip(params.values(), grads):
            p.grad = g
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
    once()
    t = time.perf_counter()
    for _ in range(repeats):
        once()
    return (time.perf_counter() - t) / repeats


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tasks", type=int, nargs="+", default=[8, 32, 128])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--hidden", type=int, nargs="+", default=[64, 64])
    ap.add_argument("--inner-steps", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = leave as is)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    obs, n_actions = 8, 4
    net = build_qnet(NetSpec(hidden=tuple(args.hidden)), (obs,), n_actions).to(args.device)
    params = {k: v.to(args.device).requires_grad_() for k, v in init_params(net, 0).items()}
    target = {k: v.detach().clone() for k, v in params.items()}
    opt = torch.optim.Adam(params.values(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    print(f"device={args.device} ({torch.cuda.get_device_name() if args.device == 'cuda' else platform.processor() or platform.machine()}), "
          f"threads={torch.get_num_threads()}, MLP {obs}-{'-'.join(map(str, args.hidden))}-{n_actions}, "
          f"batch {args.batch}, inner steps {args.inner_steps}, torch {torch.__version__}")
    print(f"{'order':>6} {'tasks':>6} {'loop ms':>9} {'vmap ms':>9} {'speed-up':>9} {'max rel grad diff':>18}")
    rows = []
    for order in ("second", "first"):
        first_order = order == "first"
        for n_tasks in args.tasks:
            support = make_batch(n_tasks, args.batch, obs, n_actions, args.device, gen)
            query = make_batch(n_tasks, args.batch, obs, n_actions, args.device, gen)
            g_loop = loop_grads(net, params, target, support, query, 0.1, args.inner_steps, first_order)
            g_vmap = vmap_grads(net, params, target, support, query, 0.1, args.inner_steps, first_order)
            diff = max(((a - b).norm() / b.norm().clamp_min(1e-12)).item() for a, b in zip(g_vmap, g_loop))
            reps = max(2, args.repeats * 8 // n_tasks)
            t_loop = timed(lambda: loop_grads(net, params, target, support, query, 0.1, args.inner_steps, first_order),
                           opt, params, args.device, reps)
            t_vmap = timed(lambda: vmap_grads(net, params, target, support, query, 0.1, args.inner_steps, first_order),
                           opt, params, args.device, reps)
            rows.append({"order": order, "tasks": n_tasks, "loop_ms": t_loop * 1e3, "vmap_ms": t_vmap * 1e3,
                         "speedup": t_loop / t_vmap, "grad_rel_diff": diff})
            print(f"{order:>6} {n_tasks:>6} {t_loop * 1e3:>9.2f} {t_vmap * 1e3:>9.2f} {t_loop / t_vmap:>8.1f}x {diff:>18.1e}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
