"""The divergence lab: why GANs moved from f-divergences to the Wasserstein distance.

    python train/divergences.py            # full run, a few minutes on 1 CPU core
    python train/divergences.py --quick    # fewer thetas and steps, a smoke run

1. The classic comparison (Arjovsky et al. 2017, example 1): p = (0, Z) and q_theta =
   (theta, Z), Z ~ U[0, 1], two parallel segments. For theta != 0 their supports are
   disjoint, so every f-divergence is constant (squared Hellinger = 2 in the convention
   H^2 = ∫ (sqrt p - sqrt q)^2 = 2 (1 - BC), f(u) = (sqrt u - 1)^2), while W1 = |theta|.
   A critic is trained for each divergence at each theta; the estimate is plotted against
   the exact value, and the derivative of the estimate with respect to theta (what a
   generator would learn from) is measured by autograd through the trained critic.
2. Two Gaussians (closed forms / float64 quadrature): every f-divergence estimator, the
   unbiased MMD^2 and the energy distance.
3. W1 between 2-D point clouds by a critic, against the exact optimal transport (POT).

Writes docs/divergences/{results.md, results.json, theta_sweep.png, gradient_during_training.png}.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import ot
import torch

from genhub.objectives import divergences as dv

HELLINGER = dv.f_divergence("squared_hellinger")
GAUSSIAN_P = (0.0, 1.0)  # mean, std of the data P
GAUSSIAN_Q = (1.0, 1.2)  # mean, std of the model Q


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 thetas, fewer steps (smoke run)")
    parser.add_argument("--thetas", type=int, default=21, help="number of thetas in [-1, 1]")
    parser.add_argument("--steps", type=int, default=500, help="critic steps per theta")
    parser.add_argument("--gaussian-steps", type=int, default=1500, help="critic steps per f-divergence on the Gaussian case")
    parser.add_argument("--cloud-steps", type=int, default=1500, help="critic steps per 2-D point cloud pair")
    parser.add_argument("--cloud-size", type=int, default=1000, help="points per 2-D cloud")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest for these tiny critics)")
    parser.add_argument("--out", default="docs/divergences")
    args = parser.parse_args(argv)
    if args.quick:
        args.thetas, args.steps, args.gaussian_steps, args.cloud_steps = 5, 300, 800, 600
    if args.thetas < 2:
        parser.error("--thetas must be at least 2")
    return args


def segment(theta) -> dv.Sampler:
    """Samples of (theta, Z), Z ~ U[0, 1]; theta may be a tensor that requires grad."""
    theta = torch.as_tensor(theta, dtype=torch.float32)
    return lambda n: torch.stack([theta.expand(n), torch.rand(n)], 1)


def theta_derivative(generator_term, theta: float, n: int = 20_000) -> float:
    """d/dtheta of the estimate, with the critic frozen: only the model's samples move."""
    theta = torch.tensor(float(theta), requires_grad=True)
    (grad,) = torch.autograd.grad(generator_term(segment(theta)(n)), theta)
    return float(grad)


def hellinger_generator_term(critic):
    return lambda q: -HELLINGER.conjugate_of_activation(critic(q)).mean()


def w1_generator_term(critic):
    return lambda q: -critic(q).mean()


# -- 1. parallel segments ---------------------------------------------------------------------
def theta_sweep(args) -> list[dict]:
    rows = []
    p = segment(0.0)
    for theta in np.linspace(-1, 1, args.thetas):
        theta = round(float(theta), 6)
        torch.manual_seed(args.seed)
        hellinger = dv.estimate_f_divergence("squared_hellinger", p, segment(theta), steps=args.steps)
        torch.manual_seed(args.seed)
        w1 = dv.estimate_w1(p, segment(theta), steps=args.steps)
        torch.manual_seed(args.seed)
        clipped = dv.estimate_w1(p, segment(theta), steps=args.steps, clip=0.1, lr=5e-4, normalize=False)
        rows.append(
            {
                "theta": theta,
                "hellinger_exact": 0.0 if theta == 0 else 2.0,
                "hellinger_estimate": hellinger.value,
                "hellinger_derivative": theta_derivative(hellinger_generator_term(hellinger.critic), theta),
                "w1_exact": abs(theta),
                "w1_estimate": w1.value,
                "w1_derivative": theta_derivative(w1_generator_term(w1.critic), theta),
                "w1_clipped_estimate": clipped.value,
            }
        )
        row = rows[-1]
        print(
            f"theta {theta:+.2f}  H^2 {row['hellinger_estimate']:.4f} (exact {row['hellinger_exact']:.0f}, "
            f"dH/dtheta {row['hellinger_derivative']:+.2e})  W1 {row['w1_estimate']:.4f} (exact {abs(theta):.2f}, "
            f"dW/dtheta {row['w1_derivative']:+.3f})  clipped {row['w1_clipped_estimate']:.4f}",
            flush=True,
        )
    return rows


def gradient_during_training(args, theta: float = 0.5, every: int = 10) -> dict:
    """|d estimate / d theta| as the critic trains, at one theta (Arjovsky & Bottou 2017, fig. 2)."""
    curves = {}
    p, q = segment(0.0), segment(theta)
    for name, loss, term in (
        ("squared_hellinger", lambda c, a, b: -HELLINGER.bound(c(a), c(b)), hellinger_generator_term),
        ("w1", lambda c, a, b: -dv.wasserstein_bound(c(a), c(b)) + 10 * dv.gradient_penalty(c, a, b), w1_generator_term),
    ):
        torch.manual_seed(args.seed)
        steps, norms = [], []

        def record(step, critic):
            if step % every == 0:
                steps.append(step)
                norms.append(abs(theta_derivative(term(critic), theta, n=4096)))

        dv.train_critic(dv.make_critic(2), loss, p, q, steps=args.steps, on_step=record)
        curves[name] = {"steps": steps, "derivative_norm": norms}
    return curves


# -- 2. two Gaussians ---------------------------------------------------------------------------
def normal(mean: float, std: float) -> dv.Sampler:
    return lambda n: mean + std * torch.randn(n, 1)


def gaussian_case(args) -> dict:
    (mean_p, std_p), (mean_q, std_q) = GAUSSIAN_P, GAUSSIAN_Q
    rows = []
    for name, divergence in dv.F_DIVERGENCES.items():
        torch.manual_seed(args.seed)
        estimate = dv.estimate_f_divergence(name, normal(mean_p, std_p), normal(mean_q, std_q), steps=args.gaussian_steps)
        exact = dv.exact_f_divergence_normal(name, mean_p, std_p, mean_q, std_q)
        rows.append(
            {
                "name": name,
                "definition": divergence.definition,
                "estimate": estimate.value,
                "exact": exact,
                "relative_error": (estimate.value - exact) / abs(exact),
            }
        )
        print(f"{name:18s} estimate {estimate.value:+.4f} exact {exact:+.4f} relative error {rows[-1]['relative_error']:+.3f}", flush=True)
    closed_forms = {
        "kl": dv.kl_normal(mean_p, std_p, mean_q, std_q),
        "reverse_kl": dv.kl_normal(mean_q, std_q, mean_p, std_p),
        "squared_hellinger": dv.squared_hellinger_normal(mean_p, std_p, mean_q, std_q),
    }
    quadrature_check = {name: abs(value - next(r["exact"] for r in rows if r["name"] == name)) for name, value in closed_forms.items()}

    # kernel and energy distances: closed form from samples, repeated to show they are unbiased
    torch.manual_seed(args.seed)
    repeats, size = 20, 1000
    mmd = [float(dv.mmd2_unbiased(normal(mean_p, std_p)(size), normal(mean_q, std_q)(size))) for _ in range(repeats)]
    energy = [float(dv.energy_distance(normal(mean_p, std_p)(size), normal(mean_q, std_q)(size))) for _ in range(repeats)]
    sample_based = []
    for name, values, exact in (
        (
            "mmd2 (unbiased, bandwidths " + ", ".join(map(str, dv.DEFAULT_BANDWIDTHS)) + ")",
            mmd,
            dv.mmd2_normal([mean_p], [[std_p**2]], [mean_q], [[std_q**2]]),
        ),
        ("energy distance", energy, dv.energy_distance_normal(mean_p, std_p, mean_q, std_q)),
    ):
        mean, error = float(np.mean(values)), float(np.std(values, ddof=1) / math.sqrt(repeats))
        sample_based.append({"name": name, "mean": mean, "standard_error": error, "exact": exact, "z": (mean - exact) / error})
        print(f"{name}: mean of {repeats} x n={size}: {mean:.4f} ± {error:.4f}, exact {exact:.4f}", flush=True)
    return {
        "f_divergences": rows,
        "closed_form_minus_quadrature": quadrature_check,
        "sample_based": sample_based,
        "repeats": repeats,
        "size": size,
    }


# -- 3. 2-D point clouds against exact optimal transport -----------------------------------------
def point_clouds(n: int, generator: torch.Generator) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    angles = torch.randint(0, 8, (n,), generator=generator) * (2 * math.pi / 8)
    ring = 2 * torch.stack([angles.cos(), angles.sin()], 1) + 0.1 * torch.randn(n, 2, generator=generator)
    return {
        "N(0, I) vs N((1.5, 0.5), I)": (
            torch.randn(n, 2, generator=generator),
            torch.randn(n, 2, generator=generator) + torch.tensor([1.5, 0.5]),
        ),
        "ring of 8 Gaussians vs N(0, 0.5^2 I)": (ring, 0.5 * torch.randn(n, 2, generator=generator)),
        "uniform square vs scaled uniform square": (
            2 * torch.rand(n, 2, generator=generator) - 1,
            3 * torch.rand(n, 2, generator=generator) - 1.5,
        ),
    }


def cloud_sampler(points: torch.Tensor) -> dv.Sampler:
    return lambda n: points[torch.randint(0, points.shape[0], (n,))]


def point_cloud_case(args) -> list[dict]:
    rows = []
    clouds = point_clouds(args.cloud_size, torch.Generator().manual_seed(args.seed))
    for name, (x, y) in clouds.items():
        started = time.perf_counter()
        exact = float(ot.emd2(ot.unif(len(x)), ot.unif(len(y)), ot.dist(x.double().numpy(), y.double().numpy(), metric="euclidean")))
        ot_seconds = time.perf_counter() - started
        torch.manual_seed(args.seed)
        critic = dv.estimate_w1(cloud_sampler(x), cloud_sampler(y), steps=args.cloud_steps, eval_size=2).critic
        # evaluated on the whole clouds, so it is the W1 between the two empirical measures
        with torch.no_grad():
            bound = dv.wasserstein_bound(critic(x), critic(y))
        pairs = torch.randint(0, len(x), (20_000,)), torch.randint(0, len(y), (20_000,))
        estimate = float(bound / dv.mean_gradient_norm(critic, x[pairs[0]], y[pairs[1]]))
        rows.append({"case": name, "exact_ot": exact, "critic": estimate, "difference": estimate - exact, "ot_seconds": ot_seconds})
        print(f"{name}: critic {estimate:.4f} exact OT {exact:.4f} ({estimate - exact:+.4f})", flush=True)
    return rows


# -- report -------------------------------------------------------------------------------------
def plot_sweep(rows: list[dict], path: Path) -> None:
    theta = [r["theta"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    axes[0].plot(theta, [r["hellinger_exact"] for r in rows], "k-", lw=1, label="exact $H^2$ = 2(1 - BC)")
    axes[0].plot(theta, [r["hellinger_estimate"] for r in rows], "o", color="tab:red", label="critic estimate")
    axes[0].set_title("squared Hellinger: a step, no slope")
    axes[1].plot(theta, [r["w1_exact"] for r in rows], "k-", lw=1, label="exact $W_1 = |\\theta|$")
    axes[1].plot(theta, [r["w1_estimate"] for r in rows], "o", color="tab:blue", label="critic estimate (gradient penalty)")
    axes[1].set_title("Wasserstein-1: grows with the distance")
    axes[2].semilogy(
        theta,
        [max(abs(r["hellinger_derivative"]), 1e-12) for r in rows],
        "o-",
        color="tab:red",
        label="$|dH^2/d\\theta|$ (0 drawn at 1e-12)",
    )
    axes[2].semilogy(theta, [max(abs(r["w1_derivative"]), 1e-12) for r in rows], "o-", color="tab:blue", label="$|dW_1/d\\theta|$")
    axes[2].set_title("learning signal for $\\theta$ through the trained critic")
    for axis in axes:
        axis.set_xlabel("$\\theta$")
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_training(curves: dict, path: Path, theta: float = 0.5) -> None:
    fig, axis = plt.subplots(figsize=(6, 4))
    for name, color in (("squared_hellinger", "tab:red"), ("w1", "tab:blue")):
        curve = curves[name]
        axis.semilogy(curve["steps"], [max(v, 1e-12) for v in curve["derivative_norm"]], color=color, label=name)
    axis.set_xlabel("critic training steps")
    axis.set_ylabel(f"|d estimate / d theta| at theta = {theta} (0 drawn at 1e-12)")
    axis.set_title("the better the critic, the less Hellinger tells the generator")
    axis.legend()
    axis.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(results: dict) -> str:
    sweep, gauss, clouds, bars = results["theta_sweep"], results["gaussian"], results["point_clouds"], results["bars"]
    lines = [
        "# Divergence lab: squared Hellinger vs Wasserstein-1",
        "",
        f"Made by `python train/divergences.py{' --quick' if results['args']['quick'] else ''}` on {results['machine']} "
        f"in {results['seconds']:.0f} s (load average at start {results['load_average']}).",
        "Critics: MLP 2-64-64-1 (SiLU), Adam; every estimate is evaluated on fresh samples the critic never saw.",
        "Conventions: $H^2 = \\int(\\sqrt p - \\sqrt q)^2 = 2(1 - BC)$, $f(u) = (\\sqrt u - 1)^2$, so $H^2 = 2$ for disjoint supports;",
        "W1 critics use the gradient penalty 10 of WGAN-GP; since a penalised critic's slope settles near $1 + W_1/20$,",
        "each W1 estimate is the dual bound divided by the critic's mean gradient norm between the two distributions.",
        "",
        "## 1. p = (0, Z), q = (theta, Z), Z ~ U[0, 1]",
        "",
        "![theta sweep](theta_sweep.png)",
        "",
        f"Bars: W1 within 0.05 of exact at every theta: **{'met' if bars['w1'] else 'NOT met'}** (worst error {bars['w1_worst']:.4f}); "
        f"H^2 within 10% of exact for theta != 0: **{'met' if bars['hellinger'] else 'NOT met'}** "
        f"(worst relative error {bars['hellinger_worst']:.4f}).",
        "",
        "| theta | H^2 exact | H^2 estimate | dH^2/dtheta | W1 exact | W1 estimate | dW1/dtheta | clipped critic (c = 0.1) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sweep:
        lines.append(
            f"| {r['theta']:+.1f} | {r['hellinger_exact']:.0f} | {r['hellinger_estimate']:.4f} | {r['hellinger_derivative']:.1e} | "
            f"{r['w1_exact']:.1f} | {r['w1_estimate']:.4f} | {r['w1_derivative']:+.3f} | {r['w1_clipped_estimate']:.4f} |"
        )
    lines += [
        "",
        "The derivative columns are what a generator moving theta would receive: d/dtheta of the estimate with the",
        "critic frozen, by autograd through 20,000 samples. The Hellinger critic saturates (its conjugate term",
        "$e^v - 1$ sits at -1 on the model's samples), so the derivative is 0 or nearly so; the W1 critic has slope",
        "about 1 toward the data at every theta. The weight-clipped critic only estimates K * W1 for an unknown K.",
        "",
        "![gradient during training](gradient_during_training.png)",
        "",
        "## 2. Two Gaussians: P = N(%g, %g^2), Q = N(%g, %g^2)" % (*GAUSSIAN_P, *GAUSSIAN_Q),
        "",
        "Exact values by float64 quadrature of $\\int q f(p/q)$; for KL, reverse KL and $H^2$ the closed forms agree to "
        + ", ".join(f"{v:.1e}" for v in gauss["closed_form_minus_quadrature"].values())
        + f". Bar: every f-divergence within 10%: **{'met' if bars['gaussian'] else 'NOT met'}**.",
        "",
        "| f-divergence | definition | estimate | exact | relative error |",
        "|---|---|---:|---:|---:|",
    ]
    for r in gauss["f_divergences"]:
        lines.append(f"| {r['name']} | {r['definition']} | {r['estimate']:.4f} | {r['exact']:.4f} | {100 * r['relative_error']:+.1f}% |")
    lines += [
        "",
        f"Closed form from samples (no critic): mean of {gauss['repeats']} estimates, each from {gauss['size']} + {gauss['size']} samples.",
        "",
        "| distance | mean estimate | standard error | exact | (mean - exact) / s.e. |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in gauss["sample_based"]:
        lines.append(f"| {r['name']} | {r['mean']:.4f} | {r['standard_error']:.4f} | {r['exact']:.4f} | {r['z']:+.2f} |")
    lines += [
        "",
        "## 3. W1 between 2-D point clouds: critic vs exact optimal transport (POT `ot.emd2`)",
        "",
        f"{results['args']['cloud_size']} points per cloud; the critic trains on the clouds and is evaluated on all their points,",
        "so both numbers are the W1 between the same two empirical measures.",
        "",
        "| clouds | exact OT | critic | critic - exact |",
        "|---|---:|---:|---:|",
    ]
    for r in clouds:
        lines.append(f"| {r['case']} | {r['exact_ot']:.4f} | {r['critic']:.4f} | {r['difference']:+.4f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    load = " / ".join(f"{v:.1f}" for v in __import__("os").getloadavg())
    print("== parallel segments ==", flush=True)
    sweep = theta_sweep(args)
    curves = gradient_during_training(args)
    print("== two Gaussians ==", flush=True)
    gauss = gaussian_case(args)
    print("== 2-D point clouds vs exact OT ==", flush=True)
    clouds = point_cloud_case(args)
    w1_errors = [abs(r["w1_estimate"] - r["w1_exact"]) for r in sweep]
    hellinger_errors = [abs(r["hellinger_estimate"] - 2) / 2 for r in sweep if r["theta"] != 0]
    bars = {
        "w1_worst": max(w1_errors),
        "w1": max(w1_errors) <= 0.05,
        "hellinger_worst": max(hellinger_errors),
        "hellinger": max(hellinger_errors) <= 0.10,
        "gaussian_worst": max(abs(r["relative_error"]) for r in gauss["f_divergences"]),
        "gaussian": all(abs(r["relative_error"]) <= 0.10 for r in gauss["f_divergences"]),
    }
    results = {
        "args": vars(args),
        "machine": f"{platform.machine()} CPU, {__import__('os').cpu_count()} cores, {args.threads} torch thread(s), no GPU used",
        "load_average": load,
        "seconds": time.perf_counter() - started,
        "bars": bars,
        "theta_sweep": sweep,
        "gradient_during_training": curves,
        "gaussian": gauss,
        "point_clouds": clouds,
    }
    plot_sweep(sweep, out / "theta_sweep.png")
    plot_training(curves, out / "gradient_during_training.png")
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    (out / "results.md").write_text(markdown(results), encoding="utf-8")
    print(json.dumps(bars, indent=2))
    print(f"wrote {out}/results.md, results.json, theta_sweep.png, gradient_during_training.png in {results['seconds']:.0f} s")
    return results


if __name__ == "__main__":
    main()
