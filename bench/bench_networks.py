"""Time one training step (forward + backward + Adam, G and D) of the parser and the inpainter on CPU.

    .venv/bin/python -m bench.bench_networks [--params params.yaml] [--repeats 3] [--json out.json]

For each network, size (128x128 batch 8, 256x256 batch 4 by default) and memory format (NCHW,
channels_last) it reports seconds per full step (one D step + one G step with every loss term,
VGG terms included, as the training loop does), images/s, and the shares of the generator's
forward+backward and (inpainter) of the VGG perceptual + style terms.  Inputs are random tensors shaped like a dataset batch (speed does not depend on content).

Right after ours, for each size, it times the same step of FE-GAN's own network of that kind
(``bench.fegan_reference``, NCHW, same losses) and reports its images/s and GFLOP/s and the
ratio ours / reference in images per second (``--no-reference`` skips it).
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from bench.fegan_reference import REFERENCE_STEPS, gan_step, parser_gan_step
from fashion_edit.config import Params, load_params
from fashion_edit.data.labels import NUM_CLASSES
from fashion_edit.hardware import bf16_is_native, median_seconds, probe, resolve_speed
from fashion_edit.networks import (build_inpainter, build_inpainter_criterion, build_inpainter_discriminator,
                                   build_parser, build_parser_discriminator, count_parameters,
                                   inpainter_discriminator_input, parser_input, run_inpainter)

Step = Callable[[], None]


def random_batch(batch_size: int, height: int, width: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(batch_size, 1, height, width)
    mask[:, :, height // 4: 3 * height // 4, width // 4: 3 * width // 4] = 1
    # piecewise-constant parsing like a real map (a few classes meet in the hole), not per-pixel noise
    classes = torch.randint(0, NUM_CLASSES, (6,), generator=g)
    blocks = classes[torch.randint(0, 6, (batch_size, 1, 8, 8), generator=g)].float()
    parsing = torch.nn.functional.interpolate(blocks, size=(height, width), mode="nearest")[:, 0].long()
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


def parser_step(p: Params, batch: dict[str, torch.Tensor], memory_format: torch.memory_format) -> tuple[dict[str, Step], int]:
    generator = build_parser(p).to(memory_format=memory_format)
    discriminator = build_parser_discriminator(p).to(memory_format=memory_format)
    x = parser_input(batch, p.parser.label_strokes)

    def g_only() -> None:
        generator.zero_grad(set_to_none=True)
        generator(x).mean().backward()
    step = parser_gan_step(p, batch, generator, discriminator)
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
    step = gan_step(generate, d_terms, g_terms, generator, discriminator)
    return {"step": step, "g_fwd_bwd": g_only, "vgg_losses": vgg_terms}, count_parameters(generator)


def gflop(fn: Step) -> float:
    """Floating-point operations of one call (convolutions, matmuls, attention), in GFLOP."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


NETWORKS = {"parser": parser_step, "inpainter": inpainter_step}


def measure(build, p: Params, batch: dict[str, torch.Tensor], fmt: torch.memory_format, repeats: int,
            warmup: int = 2) -> tuple[dict[str, float], float, int]:
    """(seconds per call of each part, GFLOP of one step, G parameters) of one built step."""
    torch.manual_seed(0)
    parts, g_params = build(p, batch, fmt)
    work = gflop(parts["step"])
    return {part: median_seconds(fn, repeats, warmup) for part, fn in parts.items()}, work, g_params


def speed_ratio(ours_images_per_s: float, reference_images_per_s: float) -> float:
    """How many times more images per second we train than the reference (same size and batch)."""
    return ours_images_per_s / reference_images_per_s


def reference_fields(reference: dict, ours_images_per_s: float) -> dict:
    """The reference's figures for one of our rows plus the ratio ours / reference."""
    return {"ref_g_params": reference["g_params"], "ref_step_s": round(reference["step_s"], 3),
            "ref_images_per_s": round(reference["images_per_s"], 3),
            "ref_gflop_per_step": round(reference["gflop"], 1), "ref_gflop_per_s": round(reference["gflop_per_s"], 1),
            "ratio_vs_reference": round(speed_ratio(ours_images_per_s, reference["images_per_s"]), 2)}


def time_ours(name: str, p: Params, size: tuple[int, int, int], channels_last: bool,
              repeats: int) -> tuple[dict, float]:
    """(JSON row, unrounded images/s) of our network in one memory format."""
    height, width, batch_size = size
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    batch = _to_format(random_batch(batch_size, height, width), channels_last)
    seconds, work, g_params = measure(NETWORKS[name], p, batch, fmt, repeats)
    row = {"network": name, "size": f"{height}x{width}", "batch": batch_size,
           "channels_last": channels_last, "g_params": g_params,
           "images_per_s": round(batch_size / seconds["step"], 2),
           "gflop_per_step": round(work, 1), "gflop_per_s": round(work / seconds["step"], 1),
           **{f"{part}_s": round(value, 3) for part, value in seconds.items()}}
    shares = ", ".join(f"{part} {value:.3f} s" for part, value in seconds.items() if part != "step")
    print(f"{name:9s} {height}x{width} b{batch_size} channels_last={channels_last!s:5s} "
          f"step {seconds['step']:.3f} s ({batch_size / seconds['step']:.1f} img/s, "
          f"{work:.0f} GFLOP, {work / seconds['step']:.0f} GFLOP/s); {shares}", flush=True)
    return row, batch_size / seconds["step"]


def time_reference(name: str, p: Params, size: tuple[int, int, int], repeats: int) -> dict:
    """FE-GAN's network of the same kind, NCHW; one warm-up call (the FLOP count already ran a step)."""
    height, width, batch_size = size
    seconds, work, g_params = measure(REFERENCE_STEPS[name], p, random_batch(batch_size, height, width),
                                      torch.contiguous_format, repeats, warmup=1)
    step = seconds["step"]
    print(f"{name:9s} {height}x{width} b{batch_size} FE-GAN reference      step {step:.3f} s "
          f"({batch_size / step:.2f} img/s, {work:.0f} GFLOP, {work / step:.0f} GFLOP/s), "
          f"G {g_params / 1e6:.1f} M params", flush=True)
    return {"g_params": g_params, "step_s": step, "images_per_s": batch_size / step, "gflop": work,
            "gflop_per_s": work / step}


def print_ratios(rows: list[dict]) -> None:
    for row in rows:
        print(f"{'':9s} ours/reference channels_last={row['channels_last']!s:5s} {row['ratio_vs_reference']:.2f}x "
              f"per image ({row['images_per_s']:.2f} vs {row['ref_images_per_s']:.2f} img/s; "
              f"{row['gflop_per_s']:.0f} vs {row['ref_gflop_per_s']:.0f} GFLOP/s)", flush=True)


def run(p: Params, sizes: list[tuple[int, int, int]], repeats: int, networks: list[str],
        reference: bool = True) -> list[dict]:
    rows = []
    for name in networks:
        for size in sizes:
            timed = [time_ours(name, p, size, channels_last, repeats) for channels_last in (False, True)]
            ours = [row for row, _ in timed]
            if reference:
                figures = time_reference(name, p, size, repeats)
                ours = [{**row, **reference_fields(figures, images_per_s)} for row, images_per_s in timed]
                print_ratios(ours)
            rows += ours
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", default="128x128x8,256x256x4", help="HxWxBATCH,... (default: %(default)s)")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    parser.add_argument("--vgg-bf16", action="store_true", help="override vgg.bf16 to true (loss VGG in bfloat16)")
    parser.add_argument("--networks", default="parser,inpainter", help="which networks (default: %(default)s)")
    parser.add_argument("--no-reference", action="store_true", help="skip timing FE-GAN's reference networks")
    args = parser.parse_args()
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    p = load_params(args.params)
    if args.vgg_bf16:
        p = p.model_copy(update={"vgg": p.vgg.model_copy(update={"bf16": True})})
    hw = probe()  # speed claims are ratios measured in one run: say which machine (DESIGN.md §9.1)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, cpu capability {hw.cpu_capability}, "
          f"native bf16 {'yes' if bf16_is_native(hw) else 'no'}, "
          f"vgg.bf16={p.vgg.bf16} -> {resolve_speed(p.vgg.bf16, 'auto', hw=hw).bf16}")
    print(f"cpu capability {hw.cpu_capability}, mkldnn bf16 native {'yes' if hw.native_bf16 else 'no'}; "
          f"FE-GAN reference {'skipped' if args.no_reference else 'timed (NCHW) after ours'}")
    rows = run(p, sizes, args.repeats, args.networks.split(","), not args.no_reference)  # type: ignore[arg-type]
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
