"""Time one training step (forward + backward + Adam, G and D) of the parser and the inpainter on CPU.

    .venv/bin/python -m bench.bench_networks [--params params.yaml] [--repeats 3] [--json out.json]

For each network, size (128x128 batch 8, 256x256 batch 4 by default) and memory format (NCHW,
channels_last) it reports seconds per full step (one D step + one G step with every loss term,
VGG terms included, as the training loop does), images/s, and the shares of the generator's
forward+backward and (inpainter) of the VGG perceptual + style terms.  Inputs are random tensors shaped like a dataset batch (speed does not depend on content).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from fashion_edit.config import Params, load_params
from fashion_edit.data.labels import NUM_CLASSES
from fashion_edit.networks import (build_inpainter, build_inpainter_criterion, build_inpainter_discriminator,
                                   build_parser, build_parser_criterion, build_parser_discriminator,
                                   count_parameters, inpainter_discriminator_input, parser_discriminator_input,
                                   parser_input, run_inpainter)

Step = Callable[[], None]


def random_batch(batch_size: int, height: int, width: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(batch_size, 1, height, width)
    mask[:, :, height // 4: 3 * height // 4, width // 4: 3 * width // 4] = 1
    parsing = torch.randint(0, NUM_CLASSES, (batch_size, height, width), generator=g)
    return {
        "image": torch.rand(batch_size, 3, height, width, generator=g) * 2 - 1,
        "parsing": parsing,
        "mask": mask,
        "sketch": (torch.rand(batch_size, 1, height, width, generator=g) > 0.9).float() * mask,
        "colour": (torch.rand(batch_size, 3, height, width, generator=g) * 2 - 1) * mask,
        "noise": torch.randn(batch_size, 1, height, width, generator=g) * mask,
        "known_fg": (1 - mask) * (parsing != 0).unsqueeze(1).float(),
    }


def _to_format(batch: dict[str, torch.Tensor], channels_last: bool) -> dict[str, torch.Tensor]:
    if not channels_last:
        return batch
    return {k: v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v for k, v in batch.items()}


def _adam(module: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(module.parameters(), lr=lr, betas=(0.0, 0.9))


def _gan_step(generate, d_terms, g_terms, generator, discriminator) -> Step:
    """One D step then one G step on a shared generator forward (the training loop's order)."""
    opt_g, opt_d = _adam(generator, 1e-4), _adam(discriminator, 4e-4)

    def step() -> None:
        generated = generate()
        opt_d.zero_grad(set_to_none=True)
        sum(d_terms(generated).values()).backward()
        opt_d.step()
        discriminator.requires_grad_(False)
        opt_g.zero_grad(set_to_none=True)
        sum(g_terms(generated).values()).backward()
        opt_g.step()
        discriminator.requires_grad_(True)
    return step


def parser_step(p: Params, batch: dict[str, torch.Tensor], memory_format: torch.memory_format) -> tuple[dict[str, Step], int]:
    generator = build_parser(p).to(memory_format=memory_format)
    discriminator = build_parser_discriminator(p).to(memory_format=memory_format)
    criterion = build_parser_criterion(p)
    x = parser_input(batch)

    def generate():
        return generator(x)

    def d_terms(logits):
        real = discriminator(parser_discriminator_input(x, batch["parsing"]))
        fake = discriminator(parser_discriminator_input(x, logits.detach().softmax(1)))
        return criterion.discriminator_losses(real, fake)

    def g_terms(logits):
        real = discriminator(parser_discriminator_input(x, batch["parsing"]))
        fake = discriminator(parser_discriminator_input(x, logits.softmax(1)))
        return criterion.generator_losses(logits, batch["parsing"], fake, real)

    def g_only() -> None:
        generator.zero_grad(set_to_none=True)
        generator(x).mean().backward()
    step = _gan_step(generate, d_terms, g_terms, generator, discriminator)
    return {"step": step, "g_fwd_bwd": g_only}, count_parameters(generator)


def inpainter_step(p: Params, batch: dict[str, torch.Tensor], memory_format: torch.memory_format) -> tuple[dict[str, Step], int]:
    generator = build_inpainter(p).to(memory_format=memory_format)
    discriminator = build_inpainter_discriminator(p).to(memory_format=memory_format)
    criterion = build_inpainter_criterion(p).to(memory_format=memory_format)
    labels = batch["parsing"]

    def generate():
        return run_inpainter(generator, batch, labels)

    def d_terms(out):
        real = discriminator(inpainter_discriminator_input(p, batch, batch["image"], labels))
        fake = discriminator(inpainter_discriminator_input(p, batch, out[1].detach(), labels))
        return criterion.discriminator_losses(real, fake)

    def g_terms(out):
        generated, composited = out
        fake = discriminator(inpainter_discriminator_input(p, batch, composited, labels))
        return criterion.generator_losses(generated, composited, batch["image"], batch["mask"], batch["known_fg"],
                                          labels, fake)

    def g_only() -> None:
        generator.zero_grad(set_to_none=True)
        run_inpainter(generator, batch, labels)[0].mean().backward()

    def vgg_terms() -> None:  # the perceptual + style share of the step
        fake = batch["image"].detach().clone().requires_grad_()
        sum(criterion._vgg_terms(fake, batch["image"]).values()).backward()
    step = _gan_step(generate, d_terms, g_terms, generator, discriminator)
    return {"step": step, "g_fwd_bwd": g_only, "vgg_losses": vgg_terms}, count_parameters(generator)


def seconds_per_call(fn: Step, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def gflop(fn: Step) -> float:
    """Floating-point operations of one call (convolutions, matmuls, attention), in GFLOP."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


NETWORKS = {"parser": parser_step, "inpainter": inpainter_step}


def run(p: Params, sizes: list[tuple[int, int, int]], repeats: int, networks: list[str]) -> list[dict]:
    rows = []
    for name in networks:
        build = NETWORKS[name]
        for height, width, batch_size in sizes:
            for channels_last in (False, True):
                torch.manual_seed(0)
                fmt = torch.channels_last if channels_last else torch.contiguous_format
                batch = _to_format(random_batch(batch_size, height, width), channels_last)
                parts, g_params = build(p, batch, fmt)
                work = gflop(parts["step"])
                seconds = {part: seconds_per_call(fn, repeats) for part, fn in parts.items()}
                rows.append({"network": name, "size": f"{height}x{width}", "batch": batch_size,
                             "channels_last": channels_last, "g_params": g_params,
                             "images_per_s": round(batch_size / seconds["step"], 2),
                             "gflop_per_step": round(work, 1), "gflop_per_s": round(work / seconds["step"], 1),
                             **{f"{part}_s": round(value, 3) for part, value in seconds.items()}})
                shares = ", ".join(f"{part} {value:.3f} s" for part, value in seconds.items() if part != "step")
                print(f"{name:9s} {height}x{width} b{batch_size} channels_last={channels_last!s:5s} "
                      f"step {seconds['step']:.3f} s ({batch_size / seconds['step']:.1f} img/s, "
                      f"{work:.0f} GFLOP, {work / seconds['step']:.0f} GFLOP/s); {shares}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", default="128x128x8,256x256x4", help="HxWxBATCH,... (default: %(default)s)")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    parser.add_argument("--vgg-bf16", action="store_true", help="override vgg.bf16 to true (loss VGG in bfloat16)")
    parser.add_argument("--networks", default="parser,inpainter", help="which networks (default: %(default)s)")
    args = parser.parse_args()
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    p = load_params(args.params)
    if args.vgg_bf16:
        p = p.model_copy(update={"vgg": p.vgg.model_copy(update={"bf16": True})})
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, vgg.bf16={p.vgg.bf16}")
    rows = run(p, sizes, args.repeats, args.networks.split(","))  # type: ignore[arg-type]
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
